package ota

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nodebake/nodebake/contract"
	"golang.org/x/sys/unix"
)

// Target is where Apply writes: the slot the device is not running, and
// the ESP.
type Target struct {
	Active string // the running slot, "a" or "b" (ActiveSlot); Apply writes the other one
	// Device holds the inactive slot: on a device its partition,
	// /dev/disk/by-partuuid/ + Manifest.Slot(Other(Active)).RootPartUUID;
	// in a test, a disk image file, with Offset at the partition's start.
	Device string
	Offset int64
	Size   int64 // bytes the slot holds; 0 means up to the end of Device
	ESP    ESP
}

// Apply writes a verified bundle into the inactive slot and adds its boot
// entry with three tries, so that the next boot starts the new version and
// falls back to the running one if it never reaches boot-complete.target.
// The package documentation lists the steps and why a power cut at any
// point leaves a slot that boots. A cancelled ctx stops it between chunks,
// before the new entry exists.
func Apply(ctx context.Context, b *Bundle, t Target, progress Progress) error {
	if !b.verified {
		return errors.New("bundle has not been verified: call Verify first")
	}
	if t.Active != "a" && t.Active != "b" {
		return fmt.Errorf("running slot %q: want a or b", t.Active)
	}
	slot := Other(t.Active)
	m := &b.Manifest

	entries, err := tidyEntries(t.ESP)
	if err != nil {
		return err
	}
	active, ok := SlotEntry(entries, t.Active)
	if !ok {
		return fmt.Errorf("the running slot %s has no boot entry on the ESP: refusing to overwrite slot %s, the only other slot", t.Active, slot)
	}
	if st := active.State(); st == Pending || st == Bad {
		return fmt.Errorf("the running slot %s is not marked good (entry %s is %s): replacing slot %s now could leave no slot known to boot; update after boot-complete.target has blessed this boot",
			t.Active, active.File, st, slot)
	}

	if err := clearSlot(t.ESP, slot); err != nil {
		return err
	}
	if active.State() == Standby {
		if _, err := moveEntry(t.ESP, active, -1, 0); err != nil {
			return err
		}
	}
	if err := writeRoot(ctx, b, t, slot, progress); err != nil {
		return err
	}
	for _, f := range []struct{ dest, name string }{{contract.KernelFile, KernelFile}, {contract.InitrdFile, InitrdFile}} {
		if err := writeESPFile(ctx, t.ESP, contract.SlotDir(slot)+"/"+f.dest, b, f.name, progress); err != nil {
			return err
		}
	}

	entry := entryName{slot: slot, left: triesNew}.file()
	conf := contract.EntryConf(m.Name, m.Version, m.KernelArgs, m.Slot(slot))
	if err := writeESP(t.ESP, contract.EntriesDir+"/"+entry+".tmp", conf); err != nil {
		return err
	}
	if err := t.ESP.Rename(contract.EntriesDir+"/"+entry+".tmp", contract.EntriesDir+"/"+entry); err != nil {
		return fmt.Errorf("ESP: %w", err)
	}

	if bootsNext(t.ESP, slot) == nil {
		return nil
	}
	// A downgrade (or a re-install of the same version) sorts below the
	// running entry: set that aside so that the new one boots.
	if entries, err = ReadEntries(t.ESP); err != nil {
		return err
	}
	if active, ok = SlotEntry(entries, t.Active); ok {
		if _, err := demote(t.ESP, active); err != nil {
			return err
		}
	}
	return bootsNext(t.ESP, slot)
}

// clearSlot removes a slot's boot entry first, then its kernel and
// initramfs, including the temporary files of an interrupted Apply.
func clearSlot(esp ESP, slot string) error {
	names, err := esp.ReadDir(contract.EntriesDir)
	if err != nil {
		return fmt.Errorf("ESP: %w", err)
	}
	for _, name := range names {
		if strings.HasPrefix(name, "nodebake-"+slot+"+") || strings.HasPrefix(name, "nodebake-"+slot+".") {
			if err := esp.Remove(contract.EntriesDir + "/" + name); err != nil {
				return fmt.Errorf("ESP: %w", err)
			}
		}
	}
	dir := contract.SlotDir(slot)
	if names, err = esp.ReadDir(dir); err != nil {
		return fmt.Errorf("ESP: %w", err)
	}
	for _, name := range names {
		if err := esp.Remove(dir + "/" + name); err != nil {
			return fmt.Errorf("ESP: %w", err)
		}
	}
	return nil
}

// writeRoot streams root.img into the slot while hashing it, then reads
// the slot back from the disk, not the page cache, and hashes it again.
func writeRoot(ctx context.Context, b *Bundle, t Target, slot string, progress Progress) error {
	want := b.Manifest.Root
	label := "root-" + slot
	dev, err := os.OpenFile(t.Device, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	defer dev.Close()
	size := t.Size
	if size == 0 {
		end, err := dev.Seek(0, io.SeekEnd)
		if err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		size = end - t.Offset
	}
	if want.Size > size {
		return fmt.Errorf("%s: the update's root is %d bytes but the slot holds %d: this device's slots are too small for it (reflash with a larger disk.slot_size)",
			label, want.Size, size)
	}

	src, n, err := b.OpenFile(RootFile)
	if err != nil {
		return err
	}
	defer src.Close()
	if n != want.Size {
		return checkFile(RootFile, File{Size: n}, want)
	}
	hw := newHashWriter(io.NewOffsetWriter(dev, t.Offset))
	if err := copyN(ctx, hw, src, want.Size, "write root", progress); err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	if err := checkFile(RootFile, File{Size: want.Size, SHA256: hw.sum()}, want); err != nil {
		return fmt.Errorf("%s changed after it was verified: %w", RootFile, err)
	}
	if err := dev.Sync(); err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	// The written pages are clean now; dropping them makes the read below
	// come from the disk.
	if err := unix.Fadvise(int(dev.Fd()), t.Offset, want.Size, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("%s: dropping cached pages: %w", label, err)
	}
	rb := newHashWriter(io.Discard)
	if err := copyN(ctx, rb, io.NewSectionReader(dev, t.Offset, want.Size), want.Size, "check root", progress); err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	if rb.sum() != want.SHA256 {
		return fmt.Errorf("%s: the bytes read back differ from those written: the disk may be failing", label)
	}
	return nil
}

// writeESPFile copies a bundle file to name on the ESP: under a temporary
// name first, read back and checked, then renamed.
func writeESPFile(ctx context.Context, esp ESP, name string, b *Bundle, file string, progress Progress) error {
	want := b.Manifest.File(file)
	src, _, err := b.OpenFile(file)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := name + ".tmp"
	w, err := esp.Create(tmp)
	if err != nil {
		return fmt.Errorf("ESP: %w", err)
	}
	hw := newHashWriter(w)
	err = copyN(ctx, hw, src, want.Size, "write "+file, progress)
	if cerr := w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("ESP: %s: %w", tmp, cerr)
	}
	if err != nil {
		return err
	}
	if err := checkFile(file, File{Size: want.Size, SHA256: hw.sum()}, want); err != nil {
		return fmt.Errorf("%s changed after it was verified: %w", file, err)
	}
	r, err := esp.Open(tmp)
	if err != nil {
		return fmt.Errorf("ESP: %w", err)
	}
	rb := newHashWriter(io.Discard)
	err = copyN(ctx, rb, r, want.Size, "check "+file, progress)
	r.Close()
	if err != nil {
		return fmt.Errorf("ESP: %s: %w", tmp, err)
	}
	if rb.sum() != want.SHA256 {
		return fmt.Errorf("ESP: /%s reads back differently than it was written: the ESP may be damaged (run fsck.fat)", tmp)
	}
	if err := esp.Rename(tmp, name); err != nil {
		return fmt.Errorf("ESP: %w", err)
	}
	return nil
}

// writeESP writes a small file to the ESP durably.
func writeESP(esp ESP, name string, data []byte) error {
	w, err := esp.Create(name)
	if err != nil {
		return fmt.Errorf("ESP: %w", err)
	}
	_, err = w.Write(data)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("ESP: /%s: %w", name, err)
	}
	return nil
}

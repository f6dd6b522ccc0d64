package ota_test

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/disk"
	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

const testName = "node"

// testKey is one signing key for the whole test binary.
var testPub, testPriv = ota.GenerateKey()

// testSigner signs the channels the tests publish.
var testSigner = bundler.Signer{Key: testPriv}

// fetchManifest fetches what s offers and returns its manifest once
// VerifyChannel accepted its channel statement for a device that trusts
// testPub and has seen none from s.
func fetchManifest(ctx context.Context, s ota.Source) (*ota.Bundle, error) {
	o, err := s.Fetch(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := ota.VerifyChannel(o, testPub, nil, time.Now()); err != nil {
		return nil, err
	}
	return o.Bundle, nil
}

// verified returns b once Verify accepted it for a device running the
// given version (downgrades allowed).
func verified(t *testing.T, b *ota.Bundle, running string) *ota.Bundle {
	t.Helper()
	p := ota.Policy{Key: testPub, Running: ota.Identity{Name: testName, Version: running}, AllowDowngrade: true}
	if err := ota.Verify(context.Background(), b, p, nil); err != nil {
		t.Fatal(err)
	}
	return b
}

// builtEntry is slot a's boot entry as the image builder writes it.
func builtEntry(version string, slot contract.Slot) []byte {
	return contract.EntryConf(testName, version, otatest.KernelArgs, slot)
}

// kernelArgs is a boot entry's options without the slot's parameters.
func kernelArgs(options string) string {
	var keep []string
	for _, f := range strings.Fields(options) {
		if !strings.HasPrefix(f, "nodebake.") {
			keep = append(keep, f)
		}
	}
	return strings.Join(keep, " ")
}

// writeESP writes a small file to an ESP.
func writeESP(t *testing.T, esp ota.ESP, name string, data []byte) {
	t.Helper()
	w, err := esp.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Write(data)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// fatESP is the ESP inside a disk image file, read and written with
// go-diskfs: what Apply sees on a device, minus the kernel's vfat driver.
type fatESP struct {
	f  *os.File
	fs *fat32.FileSystem
}

func openFATESP(t *testing.T, image string) *fatESP {
	t.Helper()
	info, err := disk.Inspect(image)
	if err != nil {
		t.Fatal(err)
	}
	p := otatest.Part(t, info, contract.ESP)
	f, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fs, err := fat32.Read(file.New(f, false), p.Size, p.Start, 512)
	if err != nil {
		t.Fatal(err)
	}
	return &fatESP{f: f, fs: fs}
}

func (e *fatESP) exists(name string) bool {
	if name == "." {
		return true
	}
	names, err := e.ReadDir(path.Dir(name))
	return err == nil && slices.Contains(names, path.Base(name))
}

func (e *fatESP) ReadDir(dir string) ([]string, error) {
	if !e.exists(dir) {
		return nil, nil
	}
	entries, err := e.fs.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, d := range entries {
		names = append(names, d.Name())
	}
	return names, nil
}

func (e *fatESP) Open(name string) (io.ReadCloser, error) {
	if !e.exists(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return e.fs.OpenFile(name, os.O_RDONLY)
}

func (e *fatESP) Create(name string) (io.WriteCloser, error) {
	if dir := path.Dir(name); !e.exists(dir) {
		if err := e.fs.Mkdir(dir); err != nil {
			return nil, err
		}
	}
	if err := e.Remove(name); err != nil {
		return nil, err
	}
	w, err := e.fs.OpenFile(name, os.O_CREATE|os.O_RDWR)
	if err != nil {
		return nil, err
	}
	return syncOnClose{w, e.f}, nil
}

type syncOnClose struct {
	io.WriteCloser
	f *os.File
}

func (s syncOnClose) Close() error {
	if err := s.WriteCloser.Close(); err != nil {
		return err
	}
	return s.f.Sync()
}

func (e *fatESP) Rename(oldname, newname string) error { return e.fs.Rename(oldname, newname) }

func (e *fatESP) Remove(name string) error {
	if !e.exists(name) {
		return nil
	}
	return e.fs.Remove(name)
}

// bootAttempt does what systemd-boot does at power-on: pick the first
// entry of its order and, if it counts boots, rename it with one try less
// and one more done. It returns the entry booted.
func bootAttempt(t *testing.T, esp ota.ESP) ota.Entry {
	t.Helper()
	entries, err := ota.ReadEntries(esp)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := ota.NextBoot(entries)
	if !ok {
		t.Fatal("no entry to boot")
	}
	if e.TriesLeft >= 0 {
		n := ota.EntryFile(e.Slot, max(e.TriesLeft-1, 0), e.TriesDone+1)
		if err := esp.Rename(contract.EntriesDir+"/"+e.File, contract.EntriesDir+"/"+n); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// bless does what systemd-bless-boot does after boot-complete.target:
// drop the counter of the booted slot's entry.
func bless(t *testing.T, esp ota.ESP, slot string) {
	t.Helper()
	entries, err := ota.ReadEntries(esp)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := ota.SlotEntry(entries, slot)
	if !ok {
		t.Fatalf("slot %s has no entry to bless", slot)
	}
	if e.TriesLeft >= 0 {
		if err := esp.Rename(contract.EntriesDir+"/"+e.File, contract.EntriesDir+"/"+contract.EntryName(slot)); err != nil {
			t.Fatal(err)
		}
	}
}

// entryFiles lists the entry file names on esp, sorted.
func entryFiles(t *testing.T, esp ota.ESP) []string {
	t.Helper()
	names, err := esp.ReadDir(contract.EntriesDir)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// nextSlot is the slot systemd-boot boots next.
func nextSlot(t *testing.T, esp ota.ESP) string {
	t.Helper()
	entries, err := ota.ReadEntries(esp)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := ota.NextBoot(entries)
	if !ok {
		t.Fatal("no boot entry")
	}
	return e.Slot
}

// makeBundle builds an image of version and a bundle from it.
func makeBundle(t *testing.T, version string) *ota.Bundle {
	t.Helper()
	return otatest.Bundle(t, testName, version, testPriv)
}

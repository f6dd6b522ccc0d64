package ota

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/atomicfile"
)

// Device is what a running nodebake system says about updating: the image
// it runs, its update key and source, its boot entries, and the versions
// that failed to boot here. The failed-versions file is this package's:
// LoadDevice keeps it up to date.
type Device struct {
	root    string
	Running Identity
	Slot    contract.Slot // the running slot, from the kernel command line
	// BakedKey is the update key the image names; nil: the image accepts
	// no bundle. Key is the key the device trusts: BakedKey, or where
	// the key rotations it accepted (Rotations) lead from it.
	BakedKey, Key ed25519.PublicKey
	Rotations     []Rotation
	Source        Source // zero: the image names none
	// Insecure is the image's update.insecure: sources may be reached
	// over plain HTTP.
	Insecure bool
	// Channels is the newest channel statement accepted from each source,
	// by its text form.
	Channels map[string]ChannelState
	Failed   []string // versions that failed to boot here
	Entries  []Entry  // the ESP's boot entries
}

// LoadDevice reads the system whose root is root ("/" on a device; tests
// lay out a folder the same way) and records, before anything else looks
// at the boot entries, the versions whose entries used up their tries.
func LoadDevice(root string) (*Device, error) {
	d := &Device{root: root}
	m, err := contract.ReadManifest(d.Path(contract.ManifestPath))
	if err != nil {
		return nil, err
	}
	d.Running = Identity{Name: m.Name, Version: m.Version}
	cmdline, err := os.ReadFile(d.Path("/proc/cmdline"))
	if err != nil {
		return nil, err
	}
	if d.Slot, err = contract.Parse(string(cmdline)); err != nil {
		return nil, fmt.Errorf("the kernel command line: %w: was this system booted from a nodebake boot entry?", err)
	}
	if _, err := ActiveSlot(string(cmdline)); err != nil {
		return nil, err
	}
	if d.BakedKey, err = LoadPublicKey(d.Path(contract.UpdateKeyPath)); errors.Is(err, fs.ErrNotExist) {
		d.BakedKey = nil
	} else if err != nil {
		return nil, err
	}
	if d.Rotations, err = LoadRotations(d.Path(contract.KeyRotationsPath)); err != nil {
		return nil, err
	}
	if d.BakedKey != nil {
		// The rotations were checked when they were accepted, and are
		// again: a changed file cannot make the device trust a key.
		if d.Key, _, err = followRotations(d.BakedKey, d.Rotations); err != nil {
			return nil, fmt.Errorf("%s: %w", contract.KeyRotationsPath, err)
		}
	}
	if _, err := os.Stat(d.Path(contract.UpdateInsecurePath)); err == nil {
		d.Insecure = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if b, err := os.ReadFile(d.Path(contract.UpdateSourcePath)); err == nil {
		if d.Source, err = ParseSource(string(b), d.Insecure); err != nil {
			return nil, fmt.Errorf("%s: %w", contract.UpdateSourcePath, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if d.Channels, err = readChannels(d.Path(contract.ChannelStatePath)); err != nil {
		return nil, err
	}
	if d.Failed, err = readFailed(d.Path(contract.FailedVersionsPath)); err != nil {
		return nil, err
	}
	// Looking into the mount point mounts the ESP (efi.automount).
	if _, err := os.Stat(d.Path(contract.ESPMount + "/" + contract.EntriesDir)); err != nil {
		return nil, fmt.Errorf("no ESP with boot entries at %s (%v): see systemctl status efi.automount", contract.ESPMount, err)
	}
	if d.Entries, err = ReadEntries(d.ESP()); err != nil {
		return nil, err
	}
	return d, d.recordFailures()
}

// Path is p (absolute, as on a device) under the device's root.
func (d *Device) Path(p string) string { return filepath.Join(d.root, p) }

// ESP is the device's mounted ESP.
func (d *Device) ESP() ESP { return ESPDir(d.Path(contract.ESPMount)) }

// Partition is the device node of the partition with a PARTUUID.
func (d *Device) Partition(uuid string) string { return d.Path("/dev/disk/by-partuuid/" + uuid) }

// Policy is what this device accepts.
func (d *Device) Policy(allowDowngrade, retryFailed bool) (Policy, error) {
	if d.Key == nil {
		return Policy{}, fmt.Errorf("updates are off: this image has no update key (%s; update.public_key in image.yaml), so it accepts no bundle; flash an image that names one", contract.UpdateKeyPath)
	}
	p := Policy{Key: d.Key, Running: d.Running, Slot: d.Slot, AllowDowngrade: allowDowngrade}
	if !retryFailed {
		p.Failed = d.Failed
	}
	return p, nil
}

// AcceptChannel checks the channel statement a source offers
// (VerifyChannel, with the key the device trusts and what it accepted from
// that source before) and remembers it, with the key rotations that led
// to its key, on /data. From then on the device trusts that key: call
// Policy after it.
func (d *Device) AcceptChannel(src Source, o *Offer, now time.Time) (*ChannelCheck, error) {
	if d.Key == nil {
		return nil, fmt.Errorf("updates are off: this image has no update key (%s; update.public_key in image.yaml), so it accepts no bundle; flash an image that names one", contract.UpdateKeyPath)
	}
	var seen *ChannelState
	if st, ok := d.Channels[src.String()]; ok {
		seen = &st
	}
	c, err := VerifyChannel(o, d.Key, seen, now)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	if len(c.Rotations) > 0 {
		rs := append(slices.Clone(d.Rotations), c.Rotations...)
		if err := os.MkdirAll(filepath.Dir(d.Path(contract.KeyRotationsPath)), 0o755); err != nil {
			return nil, err
		}
		if err := SaveRotations(d.Path(contract.KeyRotationsPath), rs); err != nil {
			return nil, err
		}
		d.Rotations, d.Key = rs, c.Key
	}
	if d.Channels == nil {
		d.Channels = map[string]ChannelState{}
	}
	d.Channels[src.String()] = c.State
	b, err := json.MarshalIndent(d.Channels, "", "  ")
	if err != nil {
		return nil, err
	}
	path := d.Path(contract.ChannelStatePath)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return c, atomicfile.Write(path, append(b, '\n'), 0o644)
}

func readChannels(path string) (map[string]ChannelState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m map[string]ChannelState
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w (move it away to start counting anew)", path, err)
	}
	return m, nil
}

func readFailed(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

// recordFailures remembers the version of the other slot when its entry
// used up its tries (systemd-boot fell back from it), so that it is not
// installed again. The list is on /data: it outlives both slots. With two
// names for the slot (a rename cut off), the one that stands for it
// decides (SlotEntry): a slot that still has a Pending name gets its try.
func (d *Device) recordFailures() error {
	e, ok := SlotEntry(d.Entries, Other(d.Slot.Name))
	if !ok || e.State() != Bad || e.Version == "" || slices.Contains(d.Failed, e.Version) {
		return nil
	}
	d.Failed = append(d.Failed, e.Version)
	path := d.Path(contract.FailedVersionsPath)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, []byte(strings.Join(d.Failed, "\n")+"\n"), 0o644)
}

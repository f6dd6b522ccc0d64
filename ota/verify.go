package ota

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"slices"

	"github.com/nodebake/nodebake/contract"
)

// Policy is what a device accepts.
type Policy struct {
	Key     ed25519.PublicKey // the update key baked into the running image
	Running Identity          // the image the device runs
	// Slot is the running slot (from the kernel command line). When it is
	// set, the bundle's PARTUUIDs must be this disk's: a bundle for
	// another layout would boot a root that is not there.
	Slot           contract.Slot
	AllowDowngrade bool // accept a version that is not newer
	// Failed lists versions that already failed to boot on this device
	// (the device keeps the list on /data). They are refused, so a bad
	// release is not installed again and again; leave it out to force one.
	Failed []string
}

// VerifyManifest checks what the manifest alone can show: the signature,
// then (trusting the manifest from here on) its format, compatibility,
// that the version is newer, and that it has not failed here before. It is
// enough to decide whether an update is worth downloading.
func VerifyManifest(b *Bundle, p Policy) error {
	if len(p.Key) != ed25519.PublicKeySize {
		return fmt.Errorf("no update key: the device image names none, so it cannot accept bundles")
	}
	if err := checkSignature(b.raw, b.sig, p.Key); err != nil {
		return err
	}
	if b.parseErr != nil {
		return b.parseErr
	}
	m := &b.Manifest
	if err := m.validate(); err != nil {
		return err
	}
	if m.Compatible != p.Running.Name {
		return fmt.Errorf("bundle is for %q devices, this device runs %q: refusing an image built for another device", m.Compatible, p.Running.Name)
	}
	if p.Slot.Name != "" {
		if got := m.Slot(p.Slot.Name); got.RootPartUUID != p.Slot.RootPartUUID || got.DataPartUUID != p.Slot.DataPartUUID {
			return fmt.Errorf("bundle puts slot %s on PARTUUID %s and data on %s, but this device runs slot %s from %s with data on %s: refusing a bundle for another disk layout",
				p.Slot.Name, got.RootPartUUID, got.DataPartUUID, p.Slot.Name, p.Slot.RootPartUUID, p.Slot.DataPartUUID)
		}
	}
	if slices.Contains(p.Failed, m.Version) {
		return fmt.Errorf("version %s already failed to boot on this device: not installing it again", m.Version)
	}
	switch c := CompareVersions(m.Version, p.Running.Version); {
	case c == 0 && !p.AllowDowngrade:
		return fmt.Errorf("version %s is already running: nothing to update", m.Version)
	case c < 0 && !p.AllowDowngrade:
		return fmt.Errorf("version %s is older than the running %s: refusing a downgrade unless it is explicitly allowed", m.Version, p.Running.Version)
	}
	return nil
}

// Verify checks the manifest (VerifyManifest) and then every file's size
// and sha256 against it. Only a bundle Verify accepted can be applied.
func Verify(ctx context.Context, b *Bundle, p Policy, progress Progress) error {
	b.verified = false
	if err := VerifyManifest(b, p); err != nil {
		return err
	}
	for _, name := range b.Manifest.Files() {
		if err := b.checkFile(ctx, name, progress); err != nil {
			return err
		}
	}
	b.verified = true
	return nil
}

func (b *Bundle) checkFile(ctx context.Context, name string, progress Progress) error {
	want := b.Manifest.File(name)
	r, size, err := b.OpenFile(name)
	if err != nil {
		return err
	}
	defer r.Close()
	if size != want.Size {
		return checkFile(name, File{Size: size}, want)
	}
	if name == RootFile {
		h := newRootHash(int64(b.Manifest.Verity.HashOffset))
		if err := copyN(ctx, h, r, size, "check "+name, progress); err != nil {
			return err
		}
		return h.check(&b.Manifest)
	}
	hw := newHashWriter(io.Discard)
	if err := copyN(ctx, hw, r, size, "check "+name, progress); err != nil {
		return err
	}
	return checkFile(name, File{Size: size, SHA256: hw.sum()}, want)
}

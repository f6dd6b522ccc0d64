package ota_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

// copyBundle copies a bundle directory so that a test can damage it.
func copyBundle(t *testing.T, b *ota.Bundle) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := bundler.PublishDir(context.Background(), b, dir, testSigner, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestVerify(t *testing.T) {
	t.Parallel()
	b := makeBundle(t, "2.0.0")
	ctx := context.Background()
	policy := ota.Policy{Key: testPub, Running: ota.Identity{Name: testName, Version: "1.0.0"}}
	if err := ota.Verify(ctx, b, policy, nil); err != nil {
		t.Fatalf("a good bundle: %v", err)
	}

	flip := func(name string, at int64) func(dir string) {
		return func(dir string) {
			p := filepath.Join(dir, name)
			data := otatest.ReadFile(t, p)
			if at < 0 {
				at += int64(len(data))
			}
			data[at] ^= 0x01
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	truncate := func(name string) func(dir string) {
		return func(dir string) {
			p := filepath.Join(dir, name)
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, st.Size()/2); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, otherKey := ota.GenerateKey()
	cases := map[string]struct {
		damage func(dir string)
		policy func(p *ota.Policy)
		want   string
	}{
		"flipped byte in root":      {damage: flip(ota.RootFile, 4096*3+17), want: "root.img's filesystem: sha256 is"},
		"flipped byte in verity":    {damage: flip(ota.RootFile, -1), want: "root.img's verity data: sha256 is"},
		"flipped byte in kernel":    {damage: flip(ota.KernelFile, 0), want: "vmlinuz: sha256 is"},
		"flipped byte in initramfs": {damage: flip(ota.InitrdFile, 1000), want: "initrd.img: sha256 is"},
		"flipped byte in manifest":  {damage: flip(ota.ManifestFile, 40), want: "manifest.json does not match its signature"},
		"truncated root": {damage: truncate(ota.RootFile),
			want: fmt.Sprintf("root.img is %d bytes, the signed manifest says %d: the file is truncated", b.Manifest.Root.Size/2, b.Manifest.Root.Size)},
		"truncated initramfs": {damage: truncate(ota.InitrdFile), want: "initrd.img is 256000 bytes"},
		"signed by another key": {
			damage: func(dir string) {
				raw, _ := b.Signed()
				if err := os.WriteFile(filepath.Join(dir, ota.SignatureFile), ota.Sign(raw, otherKey), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			want: "bundle is signed by key " + ota.KeyID(otherKey.Public().(ed25519.PublicKey)) + ", but this device accepts only key " + ota.KeyID(testPub),
		},
		"wrong compatibility": {policy: func(p *ota.Policy) { p.Running.Name = "other-node" }, want: `bundle is for "node" devices, this device runs "other-node"`},
		"same version":        {policy: func(p *ota.Policy) { p.Running.Version = "2.0.0" }, want: "version 2.0.0 is already running"},
		"older version":       {policy: func(p *ota.Policy) { p.Running.Version = "2.0.1" }, want: "version 2.0.0 is older than the running 2.0.1: refusing a downgrade"},
		"failed before":       {policy: func(p *ota.Policy) { p.Failed = []string{"1.5.0", "2.0.0"} }, want: "version 2.0.0 already failed to boot on this device"},
		"no key":              {policy: func(p *ota.Policy) { p.Key = nil }, want: "no update key"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := copyBundle(t, b)
			if c.damage != nil {
				c.damage(dir)
			}
			p := policy
			if c.policy != nil {
				c.policy(&p)
			}
			got, err := ota.Open(dir)
			if err == nil {
				err = ota.Verify(ctx, got, p, nil)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			if got != nil && ota.Verified(got) {
				t.Error("a refused bundle is marked verified")
			}
		})
	}

	t.Run("downgrade allowed", func(t *testing.T) {
		p := policy
		p.Running.Version, p.AllowDowngrade = "3.0.0", true
		if err := ota.Verify(ctx, b, p, nil); err != nil {
			t.Fatalf("an explicitly allowed downgrade: %v", err)
		}
	})
}

// A bundle whose PARTUUIDs are not the running disk's is refused before
// anything is downloaded: its boot entry would name partitions that are
// not there.
func TestVerifyLayout(t *testing.T) {
	t.Parallel()
	b := makeBundle(t, "2.0.0")
	running := b.Manifest.Slot("a")
	p := ota.Policy{Key: testPub, Running: ota.Identity{Name: testName, Version: "1.0.0"}, Slot: running}
	if err := ota.VerifyManifest(b, p); err != nil {
		t.Fatalf("the disk's own layout: %v", err)
	}
	for name, change := range map[string]func(*ota.Partitions){
		"root-a": func(p *ota.Partitions) { p.RootA = "0b6d0c6a-0000-4000-8000-000000000001" },
		"data":   func(p *ota.Partitions) { p.Data = "0b6d0c6a-0000-4000-8000-000000000002" },
	} {
		m := b.Manifest
		change(&m.Partitions)
		raw, sig, err := ota.Seal(&m, testPriv)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		for f, data := range map[string][]byte{ota.ManifestFile: raw, ota.SignatureFile: sig} {
			if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		other, err := ota.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := ota.VerifyManifest(other, p); err == nil || !strings.Contains(err.Error(), "refusing a bundle for another disk layout") {
			t.Errorf("%s changed: %v", name, err)
		}
	}
}

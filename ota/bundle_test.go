package ota

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/disk"
)

func TestCreateFromImage(t *testing.T) {
	t.Parallel()
	img := buildImage(t, testName, "2.0.0")
	dir := filepath.Join(t.TempDir(), "bundle")
	b, err := Create(context.Background(), img, testPriv, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := slices.Clone(files)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("bundle directory holds %v, want %v", names, want)
	}

	m := b.Manifest
	if m.Format != Format || m.Name != testName || m.Version != "2.0.0" || m.Compatible != testName || m.KernelArgs != testKernelArgs {
		t.Errorf("manifest identity: %+v", m)
	}
	if m.Partitions != (Partitions{RootA: partUUID(testName, "root-a"), RootB: partUUID(testName, "root-b"), Data: partUUID(testName, "data")}) {
		t.Errorf("manifest partitions: %+v", m.Partitions)
	}

	// root.img is root-a's content, byte for byte, up to the end of the
	// verity data; the kernel and initramfs are the ESP's.
	info, err := disk.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	rootA := part(t, info, contract.RootA)
	root := readFile(t, filepath.Join(dir, RootFile))
	if int64(len(root)) != m.Root.Size || int64(len(root)) <= int64(m.Verity.HashOffset) {
		t.Fatalf("root.img is %d bytes, manifest says %d, hash offset %d", len(root), m.Root.Size, m.Verity.HashOffset)
	}
	if !bytes.Equal(root, readRegion(t, img, rootA.Start, int64(len(root)))) {
		t.Error("root.img differs from root-a's content")
	}
	// The manifest records the filesystem and the verity data apart too.
	split := m.Verity.HashOffset
	for _, p := range []struct {
		name string
		got  File
		want []byte
	}{{"filesystem", m.RootFS, root[:split]}, {"verity data", m.VerityData, root[split:]}} {
		sum := sha256.Sum256(p.want)
		if p.got != (File{int64(len(p.want)), hex.EncodeToString(sum[:])}) {
			t.Errorf("manifest: root %s %+v, want %d bytes with sha256 %x", p.name, p.got, len(p.want), sum)
		}
	}
	slot, err := contract.Parse(info.ESP.Entries[0].Options)
	if err != nil {
		t.Fatal(err)
	}
	if m.Slot("a") != slot {
		t.Errorf("manifest slot a = %+v, the image's entry says %+v", m.Slot("a"), slot)
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, KernelFile)), random("2.0.0kernel", 300<<10)) ||
		!bytes.Equal(readFile(t, filepath.Join(dir, InitrdFile)), random("2.0.0initrd", 500<<10)) {
		t.Error("kernel or initramfs differs from the ESP's")
	}
	// The manifest file is exactly what was signed, and it is JSON that
	// names every field.
	var fields map[string]any
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, ManifestFile)), &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"format", "name", "version", "compatible", "kernel_args", "partitions", "verity", "root", "kernel", "initrd"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("manifest.json lacks %q", k)
		}
	}

	if _, err := Create(context.Background(), img, testPriv, dir, nil); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("Create into an existing directory: %v", err)
	}
}

func TestCreateRefusesDamagedImage(t *testing.T) {
	t.Parallel()
	img := buildImage(t, testName, "2.0.0")
	info, err := disk.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	// Flip a byte inside the squashfs payload, past its superblock, so the
	// image still looks whole to a casual reader.
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	off := part(t, info, contract.RootA).Start + disk.MiB
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dir := filepath.Join(t.TempDir(), "bundle")
	_, err = Create(context.Background(), img, testPriv, dir, nil)
	if err == nil || !strings.Contains(err.Error(), "the image is damaged") {
		t.Fatalf("Create from a damaged image: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a failed Create left %s behind", dir)
	}
}

// copyBundle copies a bundle directory so that a test can damage it.
func copyBundle(t *testing.T, b *Bundle) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := PublishDir(context.Background(), b, dir, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestVerify(t *testing.T) {
	t.Parallel()
	b := makeBundle(t, "2.0.0")
	ctx := context.Background()
	policy := Policy{Key: testPub, Running: Identity{Name: testName, Version: "1.0.0"}}
	if err := Verify(ctx, b, policy, nil); err != nil {
		t.Fatalf("a good bundle: %v", err)
	}

	// The single-file form verifies the same way.
	tarPath := filepath.Join(t.TempDir(), "node-2.0.0.bundle.tar")
	if err := WriteTar(b, tarPath); err != nil {
		t.Fatal(err)
	}
	fromTar, err := Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(ctx, fromTar, policy, nil); err != nil {
		t.Fatalf("the bundle as a tar file: %v", err)
	}
	again := tarPath + ".again"
	if err := WriteTar(fromTar, again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, tarPath), readFile(t, again)) {
		t.Error("writing the same bundle twice gives different tar files")
	}

	flip := func(name string, at int64) func(dir string) {
		return func(dir string) {
			p := filepath.Join(dir, name)
			data := readFile(t, p)
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
	_, otherKey := GenerateKey()
	cases := map[string]struct {
		damage func(dir string)
		policy func(p *Policy)
		want   string
	}{
		"flipped byte in root":      {damage: flip(RootFile, 4096*3+17), want: "root.img's filesystem: sha256 is"},
		"flipped byte in verity":    {damage: flip(RootFile, -1), want: "root.img's verity data: sha256 is"},
		"flipped byte in kernel":    {damage: flip(KernelFile, 0), want: "vmlinuz: sha256 is"},
		"flipped byte in initramfs": {damage: flip(InitrdFile, 1000), want: "initrd.img: sha256 is"},
		"flipped byte in manifest":  {damage: flip(ManifestFile, 40), want: "manifest.json does not match its signature"},
		"truncated root": {damage: truncate(RootFile),
			want: fmt.Sprintf("root.img is %d bytes, the signed manifest says %d: the file is truncated", b.Manifest.Root.Size/2, b.Manifest.Root.Size)},
		"truncated initramfs": {damage: truncate(InitrdFile), want: "initrd.img is 256000 bytes"},
		"signed by another key": {
			damage: func(dir string) {
				if err := os.WriteFile(filepath.Join(dir, SignatureFile), sign(b.raw, otherKey), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			want: "bundle is signed by key " + KeyID(otherKey.Public().(ed25519.PublicKey)) + ", but this device accepts only key " + KeyID(testPub),
		},
		"wrong compatibility": {policy: func(p *Policy) { p.Running.Name = "other-node" }, want: `bundle is for "node" devices, this device runs "other-node"`},
		"same version":        {policy: func(p *Policy) { p.Running.Version = "2.0.0" }, want: "version 2.0.0 is already running"},
		"older version":       {policy: func(p *Policy) { p.Running.Version = "2.0.1" }, want: "version 2.0.0 is older than the running 2.0.1: refusing a downgrade"},
		"failed before":       {policy: func(p *Policy) { p.Failed = []string{"1.5.0", "2.0.0"} }, want: "version 2.0.0 already failed to boot on this device"},
		"no key":              {policy: func(p *Policy) { p.Key = nil }, want: "no update key"},
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
			got, err := Open(dir)
			if err == nil {
				err = Verify(ctx, got, p, nil)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			if got != nil && got.verified {
				t.Error("a refused bundle is marked verified")
			}
		})
	}

	t.Run("downgrade allowed", func(t *testing.T) {
		p := policy
		p.Running.Version, p.AllowDowngrade = "3.0.0", true
		if err := Verify(ctx, b, p, nil); err != nil {
			t.Fatalf("an explicitly allowed downgrade: %v", err)
		}
	})
}

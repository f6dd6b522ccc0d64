package bundler_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/bytesize"
	"github.com/nodebake/nodebake/internal/disk"
	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

func TestCreateFromImage(t *testing.T) {
	t.Parallel()
	img := otatest.Image{Name: testName, Version: "2.0.0"}.Build(t, t.TempDir())
	dir := filepath.Join(t.TempDir(), "bundle")
	b, err := bundler.Create(context.Background(), img, testPriv, dir, nil)
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
	want := b.FileNames()
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("bundle directory holds %v, want %v", names, want)
	}

	m := b.Manifest
	if m.Format != ota.Format || m.Name != testName || m.Version != "2.0.0" || m.Compatible != testName || m.KernelArgs != otatest.KernelArgs {
		t.Errorf("manifest identity: %+v", m)
	}
	if m.Partitions != (ota.Partitions{RootA: contract.UUID(testName, contract.RootA), RootB: contract.UUID(testName, contract.RootB), Data: contract.UUID(testName, contract.Data)}) {
		t.Errorf("manifest partitions: %+v", m.Partitions)
	}

	// root.img is root-a's content, byte for byte, up to the end of the
	// verity data; the kernel and initramfs are the ESP's.
	info, err := disk.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	rootA := otatest.Part(t, info, contract.RootA)
	root := otatest.ReadFile(t, filepath.Join(dir, ota.RootFile))
	if int64(len(root)) != m.Root.Size || int64(len(root)) <= int64(m.Verity.HashOffset) {
		t.Fatalf("root.img is %d bytes, manifest says %d, hash offset %d", len(root), m.Root.Size, m.Verity.HashOffset)
	}
	if !bytes.Equal(root, otatest.ReadRegion(t, img, rootA.Start, int64(len(root)))) {
		t.Error("root.img differs from root-a's content")
	}
	// The manifest records the filesystem and the verity data apart too.
	split := m.Verity.HashOffset
	for _, p := range []struct {
		name string
		got  ota.File
		want []byte
	}{{"filesystem", m.RootFS, root[:split]}, {"verity data", m.VerityData, root[split:]}} {
		sum := sha256.Sum256(p.want)
		if p.got != (ota.File{Size: int64(len(p.want)), SHA256: hex.EncodeToString(sum[:])}) {
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
	if !bytes.Equal(otatest.ReadFile(t, filepath.Join(dir, ota.KernelFile)), otatest.Random("2.0.0kernel", otatest.KernelSize)) ||
		!bytes.Equal(otatest.ReadFile(t, filepath.Join(dir, ota.InitrdFile)), otatest.Random("2.0.0initrd", otatest.InitrdSize)) {
		t.Error("kernel or initramfs differs from the ESP's")
	}
	// The manifest file is exactly what was signed, and it is JSON that
	// names every field.
	var fields map[string]any
	if err := json.Unmarshal(otatest.ReadFile(t, filepath.Join(dir, ota.ManifestFile)), &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"format", "name", "version", "compatible", "kernel_args", "partitions", "verity", "root", "kernel", "initrd"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("manifest.json lacks %q", k)
		}
	}

	if _, err := bundler.Create(context.Background(), img, testPriv, dir, nil); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("Create into an existing directory: %v", err)
	}
}

func TestCreateRefusesDamagedImage(t *testing.T) {
	t.Parallel()
	img := otatest.Image{Name: testName, Version: "2.0.0"}.Build(t, t.TempDir())
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
	off := otatest.Part(t, info, contract.RootA).Start + bytesize.MiB
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
	_, err = bundler.Create(context.Background(), img, testPriv, dir, nil)
	if err == nil || !strings.Contains(err.Error(), "the image is damaged") {
		t.Fatalf("Create from a damaged image: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a failed Create left %s behind", dir)
	}
}

// Package otatest builds small disk images shaped like nodebake's (GPT with
// esp, root-a, root-b, data; a zstd squashfs root with its manifest and
// dm-verity data; slot a's kernel, initramfs and boot entry on the ESP), for
// tests of the update path that cannot afford a real image build. It needs
// mksquashfs (squashfs-tools).
package otatest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/bytesize"
	"github.com/nodebake/nodebake/internal/disk"
	"github.com/nodebake/nodebake/internal/verity"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

// Sizes of the images: the ESP just above FAT32's floor of 65525
// clusters, slots that hold a few MiB of root.
const (
	ESPSize  = 34 * bytesize.MiB
	SlotSize = 8 * bytesize.MiB
	DataSize = 2 * bytesize.MiB
)

// Sizes of slot a's files: the kernel and initramfs on the ESP, and the
// incompressible payload in the root, large enough that root.img spans
// several of the 1 MiB chunks the update code copies in.
const (
	KernelSize  = 300 << 10
	InitrdSize  = 500 << 10
	PayloadSize = 3 * bytesize.MiB
)

// KernelArgs are the options of the images' boot entries besides the
// slot's parameters.
const KernelArgs = "console=ttyS0,115200 ro"

// Image describes a test image.
type Image struct {
	Name, Version string
	// UpdateKey, if set, is recorded in the root's manifest as the image
	// builder records update.public_key.
	UpdateKey string
	// DataFormats, if set, is recorded in the root's manifest as the
	// image builder records the formats its programs write.
	DataFormats map[string]int
	// Shared, if set, seeds the payload, kernel and initramfs instead of
	// the name and version: images of different versions then differ
	// only in their manifest and verity data, as a small update does
	// (delta tests).
	Shared string
}

// Build writes the image into dir and returns its path. Its content
// depends only on Name, Version and Shared.
func (im Image) Build(t testing.TB, dir string) string {
	t.Helper()
	work := t.TempDir()
	manifest := map[string]any{"name": im.Name, "version": im.Version}
	if im.UpdateKey != "" {
		manifest["update"] = map[string]string{"public_key": im.UpdateKey}
	}
	if im.DataFormats != nil {
		manifest["data_formats"] = im.DataFormats
	}
	mj, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	seed, bootSeed := im.Name+im.Version, im.Version
	if im.Shared != "" {
		seed, bootSeed = im.Shared, im.Shared
	}
	root := filepath.Join(work, "tree")
	for p, content := range map[string][]byte{
		"usr/share/nodebake/manifest.json": mj,
		"usr/lib/payload":                  Random(seed+"payload", PayloadSize),
	} {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rootImg := filepath.Join(work, "root.img")
	cmd := exec.Command("mksquashfs", root, rootImg, "-comp", "zstd", "-reproducible", "-mkfs-time", "0", "-all-time", "0",
		"-all-root", "-quiet", "-no-progress")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	salt := sha256.Sum256([]byte(im.Name + im.Version))
	var vuuid [16]byte
	copy(vuuid[:], salt[:16])
	v, err := verity.FormatFile(rootImg, salt[:], vuuid)
	if err != nil {
		t.Fatal(err)
	}
	slot := contract.Slot{Name: "a", RootPartUUID: contract.UUID(im.Name, contract.RootA), DataPartUUID: contract.UUID(im.Name, contract.Data), Verity: v}
	esp := filepath.Join(work, "esp.img")
	if err := disk.ESP(esp, ESPSize, map[string][]byte{
		contract.BootLoader: []byte("MZ stands in for systemd-boot"),
		contract.LoaderConf: []byte("timeout 0\n"),
		contract.EntriesDir + "/" + contract.EntryName("a"): contract.EntryConf(im.Name, im.Version, KernelArgs, slot),
		contract.SlotDir("a") + "/" + contract.KernelFile:   Random(bootSeed+"kernel", KernelSize),
		contract.SlotDir("a") + "/" + contract.InitrdFile:   Random(bootSeed+"initrd", InitrdSize),
	}, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, im.Name+"-"+im.Version+".img")
	if err := disk.Write(img, contract.UUID(im.Name, contract.Disk), []disk.Partition{
		{Name: contract.ESP, Type: gpt.EFISystemPartition, UUID: contract.UUID(im.Name, contract.ESP), Size: ESPSize, Content: esp},
		{Name: contract.RootA, Type: gpt.LinuxRootX86_64, UUID: contract.UUID(im.Name, contract.RootA), Size: SlotSize, Content: rootImg},
		{Name: contract.RootB, Type: gpt.LinuxRootX86_64, UUID: contract.UUID(im.Name, contract.RootB), Size: SlotSize},
		{Name: contract.Data, Type: gpt.LinuxFilesystem, UUID: contract.UUID(im.Name, contract.Data), Size: DataSize},
	}, nil); err != nil {
		t.Fatal(err)
	}
	return img
}

// Random returns n bytes that depend only on seed: incompressible content
// that differs between versions.
func Random(seed string, n int) []byte {
	s := sha256.Sum256([]byte(seed))
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

// Server serves Handler(www) over plain HTTP on 127.0.0.1. The caller
// closes it.
func Server(www string) *httptest.Server { return httptest.NewServer(Handler(www)) }

// Handler answers as what a device updates from: an OCI registry
// (go-containerregistry's, in memory) under /v2/ and the bundle folders
// below www under /bundles/. Served over plain HTTP and over TLS at once
// (httptest.NewServer, NewTLSServer), both see the same registry.
func Handler(www string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v2/", registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	mux.Handle("/bundles/", http.FileServer(http.Dir(www)))
	return mux
}

// Bundle builds an image of name and version (Image.Build) and a bundle
// from it, signed with key.
func Bundle(t testing.TB, name, version string, key ed25519.PrivateKey) *ota.Bundle {
	t.Helper()
	img := Image{Name: name, Version: version}.Build(t, t.TempDir())
	b, err := bundler.Create(context.Background(), img, key, filepath.Join(t.TempDir(), "bundle"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// SameFiles checks that two bundles hold the same bytes.
func SameFiles(t testing.TB, want, got *ota.Bundle) {
	t.Helper()
	wantRaw, wantSig := want.Signed()
	gotRaw, gotSig := got.Signed()
	if !bytes.Equal(wantRaw, gotRaw) || !bytes.Equal(wantSig, gotSig) {
		t.Error("manifest or signature differs")
	}
	for _, f := range []string{ota.KernelFile, ota.InitrdFile, ota.RootFile} {
		a, _, err := want.OpenFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := got.OpenFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ab, _ := io.ReadAll(a)
		bb, _ := io.ReadAll(b)
		a.Close()
		b.Close()
		if !bytes.Equal(ab, bb) {
			t.Errorf("%s differs", f)
		}
	}
}

// Part finds a partition of an image.
func Part(t testing.TB, info *disk.Info, name string) disk.PartitionInfo {
	t.Helper()
	for _, p := range info.Partitions {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no partition %s", name)
	return disk.PartitionInfo{}
}

// ReadRegion reads n bytes of a file at off.
func ReadRegion(t testing.TB, path string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// ReadFile reads a whole file.
func ReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

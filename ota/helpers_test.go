package ota

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/uuid"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/disk"
	"github.com/nodebake/nodebake/verity"
)

const (
	testName       = "node"
	testKernelArgs = "console=ttyS0,115200 console=tty0 ro printk.devkmsg=on"
	testESPSize    = 34 * disk.MiB // just above the FAT32 floor of 65525 clusters
	testSlotSize   = 8 * disk.MiB
	testDataSize   = 2 * disk.MiB
	testPayload    = 3 * disk.MiB // incompressible, so the root spans several copy chunks
)

var testNamespace = uuid.MustParse("3c1f1e0a-6a8b-4c3d-9e2f-1a2b3c4d5e6f")

// partUUID derives a PARTUUID from the image name alone, as the builder
// does, so every version of an image agrees on them.
func partUUID(name, role string) string {
	return uuid.NewSHA1(testNamespace, []byte(name+"/"+role)).String()
}

// random returns n bytes that depend only on seed.
func random(seed string, n int) []byte {
	s := sha256.Sum256([]byte(seed))
	r := rand.NewChaCha8(s)
	b := make([]byte, n)
	r.Read(b)
	return b
}

// buildImage makes a real nodebake-shaped disk image of the given version:
// a zstd squashfs root with a manifest and verity data in root-a, an ESP
// with slot a's kernel, initramfs and boot entry written the way the image
// builder writes them, an empty root-b and data partition.
func buildImage(t *testing.T, name, version string) string {
	t.Helper()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	for p, content := range map[string][]byte{
		"usr/share/nodebake/manifest.json": fmt.Appendf(nil, `{"name":%q,"version":%q}`, name, version),
		"etc/hostname":                     []byte(name + "\n"),
		"usr/lib/payload":                  random(name+version+"payload", testPayload),
	} {
		p = filepath.Join(tree, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root := filepath.Join(dir, "root.img")
	cmd := exec.Command("mksquashfs", tree, root, "-comp", "zstd", "-reproducible", "-mkfs-time", "0", "-all-time", "0",
		"-all-root", "-quiet", "-no-progress")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	salt := sha256.Sum256([]byte(name + version))
	v, err := verity.FormatFile(root, salt[:], uuid.NewSHA1(testNamespace, []byte(name+version)))
	if err != nil {
		t.Fatal(err)
	}
	slot := contract.Slot{Name: "a", RootPartUUID: partUUID(name, "root-a"), DataPartUUID: partUUID(name, "data"), Verity: v}
	entry := builtEntry(name, version, slot)
	esp := filepath.Join(dir, "esp.img")
	if err := disk.ESP(esp, testESPSize, map[string][]byte{
		"EFI/BOOT/BOOTX64.EFI":           []byte("MZ stands in for systemd-boot"),
		"loader/loader.conf":             []byte("timeout 0\neditor no\n"),
		"loader/entries/nodebake-a.conf": entry,
		"nodebake/a/vmlinuz":             random(version+"kernel", 300<<10),
		"nodebake/a/initrd.img":          random(version+"initrd", 500<<10),
	}, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, name+"-"+version+".img")
	if err := disk.Write(img, partUUID(name, "disk"), []disk.Partition{
		{Name: contract.ESP, Type: gpt.EFISystemPartition, UUID: partUUID(name, "esp"), Size: testESPSize, Content: esp},
		{Name: contract.RootA, Type: gpt.LinuxRootX86_64, UUID: partUUID(name, "root-a"), Size: testSlotSize, Content: root},
		{Name: contract.RootB, Type: gpt.LinuxRootX86_64, UUID: partUUID(name, "root-b"), Size: testSlotSize},
		{Name: contract.Data, Type: gpt.LinuxFilesystem, UUID: partUUID(name, "data"), Size: testDataSize},
	}, nil); err != nil {
		t.Fatal(err)
	}
	return img
}

// builtEntry is slot a's boot entry as the image builder writes it today:
// no sort-key.
func builtEntry(name, version string, slot contract.Slot) []byte {
	return fmt.Appendf(nil, "title %s %s (slot a)\nversion %s\nlinux /nodebake/a/vmlinuz\ninitrd /nodebake/a/initrd.img\noptions %s %s\n",
		name, version, version, testKernelArgs, slot.Format())
}

// testKey is one signing key for the whole test binary.
var testPub, testPriv = GenerateKey()

// makeBundle builds an image of version and a bundle from it.
func makeBundle(t *testing.T, version string) *Bundle {
	t.Helper()
	b, err := Create(context.Background(), buildImage(t, testName, version), testPriv, filepath.Join(t.TempDir(), "bundle"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// verified returns b once Verify accepted it for a device running the
// given version (downgrades allowed).
func verified(t *testing.T, b *Bundle, running string) *Bundle {
	t.Helper()
	p := Policy{Key: testPub, Running: Identity{Name: testName, Version: running}, AllowDowngrade: true}
	if err := Verify(context.Background(), b, p, nil); err != nil {
		t.Fatal(err)
	}
	return b
}

// part finds a partition of an image.
func part(t *testing.T, info *disk.Info, name string) disk.PartitionInfo {
	t.Helper()
	for _, p := range info.Partitions {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no partition %s", name)
	return disk.PartitionInfo{}
}

// readRegion reads n bytes of a file at off.
func readRegion(t *testing.T, path string, off, n int64) []byte {
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

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
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
	p := part(t, info, contract.ESP)
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
func bootAttempt(t *testing.T, esp ESP) Entry {
	t.Helper()
	entries, err := ReadEntries(esp)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := NextBoot(entries)
	if !ok {
		t.Fatal("no entry to boot")
	}
	if e.TriesLeft >= 0 {
		n := entryName{slot: e.Slot, left: max(e.TriesLeft-1, 0), done: e.TriesDone + 1}
		if err := esp.Rename(entriesDir+"/"+e.File, entriesDir+"/"+n.file()); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// bless does what systemd-bless-boot does after boot-complete.target:
// drop the counter of the booted slot's entry.
func bless(t *testing.T, esp ESP, slot string) {
	t.Helper()
	entries, err := ReadEntries(esp)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := slotEntry(entries, slot)
	if !ok {
		t.Fatalf("slot %s has no entry to bless", slot)
	}
	if e.TriesLeft >= 0 {
		if err := esp.Rename(entriesDir+"/"+e.File, entriesDir+"/nodebake-"+slot+".conf"); err != nil {
			t.Fatal(err)
		}
	}
}

// entryFiles lists the entry file names on esp, sorted.
func entryFiles(t *testing.T, esp ESP) []string {
	t.Helper()
	names, err := esp.ReadDir(entriesDir)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// nextSlot is the slot systemd-boot boots next.
func nextSlot(t *testing.T, esp ESP) string {
	t.Helper()
	entries, err := ReadEntries(esp)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := NextBoot(entries)
	if !ok {
		t.Fatal("no boot entry")
	}
	return e.Slot
}

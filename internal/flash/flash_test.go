package flash

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/klauspost/compress/zstd"
	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/disk"
)

// testImage is a small nodebake-shaped disk made with the builder's own
// code: a FAT32 ESP with files, root-a holding data with zero blocks inside
// and after it, an empty root-b and data.
type testImage struct {
	path     string
	size     int64
	rootA    []byte // root-a's content (zeros after it)
	esp      map[string][]byte
	startOf  map[string]int64
	dataSize int64
}

const (
	espSize  = 40 * mib
	slotSize = 8 * mib
	dataSize = 8 * mib
)

func newTestImage(t *testing.T) testImage {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{
		"/EFI/BOOT/BOOTX64.EFI": random(t, 300_000),
		"/loader/loader.conf":   []byte("timeout 0\n"),
		"/vmlinuz":              random(t, 1_500_000),
	}
	esp := filepath.Join(dir, "esp.img")
	if err := disk.ESP(esp, espSize, files, time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	// root-a: data, a run of zero blocks inside it (verity hashes those
	// too), more data, then nothing.
	rootA := append(append(random(t, 2*mib), make([]byte, 3*blockSize)...), random(t, mib+100)...)
	root := filepath.Join(dir, "root.img")
	if err := os.WriteFile(root, rootA, 0o644); err != nil {
		t.Fatal(err)
	}
	parts := []disk.Partition{
		{Name: contract.ESP, Type: gpt.EFISystemPartition, UUID: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", Size: espSize, Content: esp},
		{Name: contract.RootA, Type: gpt.LinuxRootX86_64, UUID: "11111111-1111-4111-8111-111111111111", Size: slotSize, Content: root},
		{Name: contract.RootB, Type: gpt.LinuxRootX86_64, UUID: "22222222-2222-4222-8222-222222222222", Size: slotSize},
		{Name: contract.Data, Type: gpt.LinuxFilesystem, UUID: "33333333-3333-4333-8333-333333333333", Size: dataSize},
	}
	img := filepath.Join(dir, "minibolt.img")
	if err := disk.Write(img, "44444444-4444-4444-8444-444444444444", parts, nil); err != nil {
		t.Fatal(err)
	}
	return testImage{
		path: img, size: 2*mib + espSize + 2*slotSize + dataSize, rootA: rootA, esp: files,
		startOf: map[string]int64{
			contract.ESP: mib, contract.RootA: mib + espSize, contract.RootB: mib + espSize + slotSize,
			contract.Data: mib + espSize + 2*slotSize,
		},
	}
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func flashTo(t *testing.T, image, dev string) (*Result, error) {
	t.Helper()
	img, err := OpenImage(image)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	f, err := os.OpenFile(dev, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if st.Size() == 0 {
		if err := f.Truncate(img.Size); err != nil {
			t.Fatal(err)
		}
	}
	return Write(context.Background(), img, f, Options{})
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// Onto a new (zero) file, flash gives back the image byte for byte, while
// writing only a fraction of it.
func TestWriteNewFileEqualsImage(t *testing.T) {
	ti := newTestImage(t)
	dev := filepath.Join(t.TempDir(), "disk")
	res, err := flashTo(t, ti.path, dev)
	if err != nil {
		t.Fatal(err)
	}
	if fileSum(t, dev) != fileSum(t, ti.path) {
		t.Fatal("the flashed file differs from the image")
	}
	// Written: 2 MiB of GPT areas, the ESP's metadata and used clusters,
	// root-a's content, 1 MiB each at the start of root-b and data.
	if res.Written >= ti.size/2 || res.Written < int64(len(ti.rootA))+4*mib {
		t.Errorf("wrote %d bytes of a %d-byte image; want root-a's %d bytes, 4 MiB of tables and heads, the ESP's used part, and far less than the image",
			res.Written, ti.size, len(ti.rootA))
	}
	t.Logf("wrote %d of %d bytes in %d runs", res.Written, ti.size, res.Extents)
}

// Onto a disk full of garbage, every region flash skips is one nothing
// reads: the partition table, the ESP (fsck and its files), root-a's
// content are the image's, and the heads of root-b and data are zero.
func TestWriteOverGarbage(t *testing.T) {
	ti := newTestImage(t)
	dev := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(dev, bytes.Repeat([]byte{0xa5, 0x5a, 0xff, 0x01}, int(ti.size/4)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := flashTo(t, ti.path, dev); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(ti.path)
	if err != nil {
		t.Fatal(err)
	}
	equal := func(what string, from, to int64) {
		t.Helper()
		if !bytes.Equal(got[from:to], want[from:to]) {
			t.Errorf("%s (bytes %d–%d) differs from the image", what, from, to)
		}
	}
	equal("MBR and primary GPT", 0, mib)
	equal("backup GPT", ti.size-mib, ti.size)
	a := ti.startOf[contract.RootA]
	equal("root-a's content", a, a+int64(len(ti.rootA)))
	for _, p := range []string{contract.RootB, contract.Data} {
		if s := ti.startOf[p]; !isZero128(got[s : s+mib]) {
			t.Errorf("%s: the first MiB is not zero", p)
		}
	}
	// The kernel's view: the partition table and the ESP read back.
	info, err := disk.Inspect(dev)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Partitions) != 4 || info.Partitions[0].Content != "FAT32" {
		t.Fatalf("partitions read back: %+v", info.Partitions)
	}
	espFile := filepath.Join(t.TempDir(), "esp")
	s := ti.startOf[contract.ESP]
	if err := os.WriteFile(espFile, got[s:s+espSize], 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("fsck.vfat", "-n", espFile).CombinedOutput(); err != nil {
		t.Fatalf("fsck.vfat -n on the flashed ESP: %v\n%s", err, out)
	}
	for p, content := range ti.esp {
		out, err := exec.Command("mtype", "-i", espFile, "::"+p).Output()
		if err != nil {
			t.Fatalf("mtype %s: %v", p, err)
		}
		if !bytes.Equal(out, content) {
			t.Errorf("ESP file %s differs after flashing over garbage", p)
		}
	}
}

func isZero128(b []byte) bool { return bytes.Count(b, []byte{0}) == len(b) }

func TestWriteZst(t *testing.T) {
	ti := newTestImage(t)
	zst := ti.path + ".zst"
	in, err := os.Open(ti.path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(zst)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := zstd.NewWriter(out)
	if _, err := io.Copy(enc, in); err != nil {
		t.Fatal(err)
	}
	enc.Close()
	out.Close()
	in.Close()

	img, err := OpenImage(zst)
	if err != nil {
		t.Fatal(err)
	}
	if img.Size != ti.size || !img.Compressed || len(img.Parts) != 4 {
		t.Fatalf("OpenImage(.zst): size %d compressed %v parts %v; want %d, true, 4 parts", img.Size, img.Compressed, img.Parts, ti.size)
	}
	img.Close()
	dev := filepath.Join(t.TempDir(), "disk")
	if _, err := flashTo(t, zst, dev); err != nil {
		t.Fatal(err)
	}
	if fileSum(t, dev) != fileSum(t, ti.path) {
		t.Fatal("the file flashed from .zst differs from the image")
	}

	// A truncated download fails rather than leaving a disk that looks whole.
	b, _ := os.ReadFile(zst)
	short := filepath.Join(t.TempDir(), "short.img.zst")
	os.WriteFile(short, b[:len(b)*3/4], 0o644)
	if _, err := flashTo(t, short, filepath.Join(t.TempDir(), "disk2")); err == nil {
		t.Fatal("flashing a truncated .zst succeeded")
	}
}

// corrupting flips a byte in one write, as a failing disk might.
type corrupting struct {
	*os.File
	done bool
}

func (c *corrupting) WriteAt(b []byte, off int64) (int, error) {
	if !c.done && off > mib && len(b) > 100 {
		c.done = true
		b = bytes.Clone(b)
		b[100] ^= 0xff
	}
	return c.File.WriteAt(b, off)
}

func TestWriteDetectsMismatch(t *testing.T) {
	ti := newTestImage(t)
	img, err := OpenImage(ti.path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(img.Size)
	_, err = Write(context.Background(), img, &corrupting{File: f}, Options{})
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("Write onto a corrupting device: %v, want ErrMismatch", err)
	}
}

func TestOpenImageRefusesTruncatedRaw(t *testing.T) {
	ti := newTestImage(t)
	if err := os.Truncate(ti.path, ti.size-mib); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenImage(ti.path); err == nil {
		t.Fatal("OpenImage accepted an image shorter than its GPT says")
	}
}

// failing fails the writes past its first few, as a disk pulled out would.
type failing struct {
	*os.File
	left int
}

func (f *failing) WriteAt(b []byte, off int64) (int, error) {
	if f.left == 0 {
		return 0, errors.New("input/output error")
	}
	f.left--
	return f.File.WriteAt(b, off)
}

// A flash that stops half-way leaves no partition table (the first MiB is
// zeroed first and written last), not the disk's old one over new contents.
func TestWriteInterruptedLeavesNoTable(t *testing.T) {
	ti := newTestImage(t)
	old, err := os.ReadFile(ti.path) // the disk's past: a valid table
	if err != nil {
		t.Fatal(err)
	}
	dev := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(dev, old, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := OpenImage(ti.path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Write(context.Background(), img, &failing{File: f, left: 2}, Options{}); err == nil {
		t.Fatal("Write succeeded on a failing device")
	}
	head := make([]byte, mib)
	if _, err := f.ReadAt(head, 0); err != nil {
		t.Fatal(err)
	}
	if !isZero128(head) {
		t.Fatal("an interrupted flash left a partition table in the first MiB")
	}
}

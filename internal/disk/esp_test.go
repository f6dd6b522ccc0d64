package disk

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/nodebake/nodebake/internal/bytesize"
)

// The smallest ESP that UEFI firmware accepts as FAT32.
const testESPSize = 33 * bytesize.MiB

var testMtime = time.Date(2024, 5, 17, 12, 34, 56, 0, time.UTC)

func testESPFiles() map[string][]byte {
	return map[string][]byte{
		"/EFI/BOOT/BOOTX64.EFI":               bytes.Repeat([]byte("systemd-boot"), 9000),
		"/loader/loader.conf":                 []byte("# nodebake\ndefault nodebake-a*\ntimeout\t0\n"),
		"/loader/entries/nodebake-a+3-0.conf": []byte("title Node A\nversion 1.2.3\nlinux /nodebake/a/vmlinuz\ninitrd /nodebake/a/initrd.zst\noptions console=ttyS0\noptions nodebake.slot=a\n"),
		"/loader/entries/nodebake-b.conf":     []byte("title Node B\nlinux /nodebake/b/vmlinuz\n"),
		"/nodebake/a/vmlinuz":                 bytes.Repeat([]byte{0xaa, 0x55, 0x01}, 700_000),
		"/nodebake/a/initrd.zst":              bytes.Repeat([]byte("initrd"), 1000),
	}
}

func TestESPReadBack(t *testing.T) {
	img := filepath.Join(t.TempDir(), "esp.img")
	files := testESPFiles()
	if err := ESP(img, testESPSize, files, testMtime); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != testESPSize {
		t.Errorf("ESP image is %d bytes, want %d", st.Size(), testESPSize)
	}

	// dosfstools exits non-zero on any inconsistency, even with -n.
	out, err := exec.Command("fsck.vfat", "-n", img).CombinedOutput()
	if err != nil {
		t.Fatalf("fsck.vfat -n: %v\n%s", err, out)
	}

	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fs, err := fat32.Read(file.New(f, true), testESPSize, 0, 512)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(fs.Label()); got != ESPLabel {
		t.Errorf("label %q, want %q", got, ESPLabel)
	}
	for name, want := range files {
		got, err := fs.ReadFile(name[1:])
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: read back %d bytes that differ from the %d written", name, len(got), len(want))
		}
		fi, err := fs.Stat(name[1:])
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(testMtime) {
			t.Errorf("%s: mtime %v, want %v", name, fi.ModTime(), testMtime)
		}
	}
}

func TestESPReproducible(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	if err := ESP(a, testESPSize, testESPFiles(), testMtime); err != nil {
		t.Fatal(err)
	}
	// go-diskfs stamps entries with SOURCE_DATE_EPOCH when set and with the
	// clock otherwise: neither may show in the result.
	t.Setenv("SOURCE_DATE_EPOCH", "1000000000")
	if err := ESP(b, testESPSize, testESPFiles(), testMtime); err != nil {
		t.Fatal(err)
	}
	sameBytes(t, a, b)
}

func TestESPRefuses(t *testing.T) {
	img := filepath.Join(t.TempDir(), "esp.img")
	for _, tc := range []struct {
		name  string
		size  int64
		files map[string][]byte
		want  string
	}{
		{"too few clusters", 32 * bytesize.MiB, testESPFiles(),
			"ESP: 32 MiB gives 64496 FAT32 clusters but UEFI firmware needs at least 65525: raise disk.esp_size in image.yaml to at least 33 MiB"},
		{"files too large", testESPSize, map[string][]byte{"/a": make([]byte, 20*bytesize.MiB), "/b": make([]byte, 20*bytesize.MiB)},
			"ESP: files need 40 MiB but the 33 MiB ESP holds 32.5 MiB (34054144 bytes): raise disk.esp_size in image.yaml"},
		{"not whole MiB", testESPSize + 512, testESPFiles(), "not a positive multiple of 1 MiB"},
		{"empty file", testESPSize, map[string][]byte{"/loader/x": {}}, "ESP: /loader/x is empty"},
		{"same name in another case", testESPSize, map[string][]byte{"/EFI/BOOT/x": {1}, "efi/boot/X": {2}}, `name the same file`},
		{"no name", testESPSize, map[string][]byte{"/": {1}}, `ESP: "/" is not a file name`},
	} {
		err := ESP(img, tc.size, tc.files, testMtime)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func sameBytes(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		for i := range min(len(x), len(y)) {
			if x[i] != y[i] {
				t.Fatalf("%s and %s differ, first at byte %d (sizes %d, %d)", a, b, i, len(x), len(y))
			}
		}
		t.Fatalf("%s and %s differ in size: %d, %d", a, b, len(x), len(y))
	}
}

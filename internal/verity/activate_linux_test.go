package verity

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nodebake/nodebake/contract"
)

// Offsets and sizes of struct dm_ioctl and struct dm_target_spec in the
// kernel's include/uapi/linux/dm-ioctl.h on x86_64, written out here so the
// test checks the marshalling against the kernel, not against itself.
const (
	offVersion     = 0
	offDataSize    = 12
	offDataStart   = 16
	offTargetCount = 20
	offFlags       = 28
	offDev         = 40
	offName        = 48
	offUUID        = 176
	sizeDmIoctl    = 312

	offSectorStart = 0
	offLength      = 8
	offStatus      = 16
	offNext        = 20
	offTargetType  = 24
	sizeTargetSpec = 40
)

var testVerity = contract.Verity{
	RootHash:   strings.Repeat("ab", 32),
	Salt:       "0123456789abcdef",
	DataBlocks: 100,
	HashOffset: 100 * 4096,
}

func TestTable(t *testing.T) {
	tg, err := verityTarget("254:2", testVerity)
	if err != nil {
		t.Fatal(err)
	}
	want := "0 800 verity 1 254:2 254:2 4096 4096 100 101 sha256 " + testVerity.RootHash + " 0123456789abcdef"
	if tg.String() != want {
		t.Fatalf("table\n got %q\nwant %q", tg, want)
	}
}

// TestHashStartIsRootBlock ties the table to FormatFile's layout: the block
// that hash_start names must be the one whose salted hash is the root hash.
func TestHashStartIsRootBlock(t *testing.T) {
	for _, size := range []int64{2 * blockSize, 129 * blockSize, 128*128*blockSize + 1} {
		path := filepath.Join(t.TempDir(), "root")
		writeData(t, path, size, true)
		v, err := FormatFile(path, testSalt, testUUID)
		if err != nil {
			t.Fatal(err)
		}
		tg, err := verityTarget("8:1", v)
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(tg.params)
		var hashStart int64
		if _, err := fmt.Sscan(f[6], &hashStart); err != nil {
			t.Fatal(err)
		}
		img := readFile(t, path)
		block := img[hashStart*blockSize : (hashStart+1)*blockSize]
		sum := sha256.Sum256(append(append([]byte{}, testSalt...), block...))
		if hex.EncodeToString(sum[:]) != v.RootHash {
			t.Errorf("%d bytes: block %d (hash_start) does not hash to the root hash", size, hashStart)
		}
		if tg.length*sectorSize != v.DataBlocks*blockSize || f[5] != strconv.FormatUint(v.DataBlocks, 10) {
			t.Errorf("%d bytes: table %q does not cover exactly the %d data blocks", size, tg, v.DataBlocks)
		}
	}
}

func TestRequestLayout(t *testing.T) {
	tg, err := verityTarget("254:2", testVerity)
	if err != nil {
		t.Fatal(err)
	}
	spec := tg.spec()
	buf := request("root-a", unix.DM_READONLY_FLAG, 1, spec)

	u32 := func(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }
	u64 := func(b []byte, off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }
	if unix.SizeofDmIoctl != sizeDmIoctl || unix.SizeofDmTargetSpec != sizeTargetSpec {
		t.Fatalf("x/sys/unix sizes %d, %d; kernel %d, %d", unix.SizeofDmIoctl, unix.SizeofDmTargetSpec, sizeDmIoctl, sizeTargetSpec)
	}
	if len(buf) != sizeDmIoctl+len(spec) {
		t.Fatalf("request is %d bytes, want header %d + payload %d", len(buf), sizeDmIoctl, len(spec))
	}
	for _, c := range []struct {
		field     string
		got, want uint64
	}{
		{"version major", uint64(u32(buf, offVersion)), 4},
		{"version minor", uint64(u32(buf, offVersion+4)), 0},
		{"data_size", uint64(u32(buf, offDataSize)), uint64(len(buf))},
		{"data_start", uint64(u32(buf, offDataStart)), sizeDmIoctl},
		{"target_count", uint64(u32(buf, offTargetCount)), 1},
		{"flags", uint64(u32(buf, offFlags)), unix.DM_READONLY_FLAG},
		{"dev", u64(buf, offDev), 0},
	} {
		if c.got != c.want {
			t.Errorf("dm_ioctl.%s = %d, want %d", c.field, c.got, c.want)
		}
	}
	if name := buf[offName : offName+unix.DM_NAME_LEN]; string(bytes.TrimRight(name, "\x00")) != "root-a" || name[6] != 0 {
		t.Errorf("dm_ioctl.name = %q", name)
	}
	if !bytes.Equal(buf[offUUID:sizeDmIoctl], make([]byte, sizeDmIoctl-offUUID)) {
		t.Errorf("dm_ioctl.uuid and padding are not zero: %q", buf[offUUID:sizeDmIoctl])
	}

	s := buf[sizeDmIoctl:]
	if got := u64(s, offSectorStart); got != 0 {
		t.Errorf("sector_start = %d", got)
	}
	if got := u64(s, offLength); got != 800 {
		t.Errorf("length = %d sectors, want 800", got)
	}
	if got := u32(s, offStatus); got != 0 {
		t.Errorf("status = %d", got)
	}
	if got := string(s[offTargetType : offTargetType+unix.DM_MAX_TYPE_NAME]); got != "verity"+strings.Repeat("\x00", 10) {
		t.Errorf("target_type = %q", got)
	}
	params, rest, ok := bytes.Cut(s[sizeTargetSpec:], []byte{0})
	if !ok || string(params) != tg.params {
		t.Errorf("parameters = %q, want %q NUL-terminated", params, tg.params)
	}
	if !bytes.Equal(rest, make([]byte, len(rest))) || len(rest) >= 8 {
		t.Errorf("padding after the parameters = %q, want fewer than 8 zero bytes", rest)
	}
	if next := u32(s, offNext); next != uint32(len(s)) || next%8 != 0 {
		t.Errorf("next = %d, payload is %d bytes: want them equal and 8-byte aligned", next, len(s))
	}
}

// TestSpecPadding checks the NUL terminator and 8-byte alignment at every
// parameter length modulo 8, including the one where the NUL fills the last
// byte and no padding follows.
func TestSpecPadding(t *testing.T) {
	for n := 1; n <= 16; n++ {
		tg := target{length: 8, kind: "verity", params: strings.Repeat("x", n)}
		s := tg.spec()
		want := (sizeTargetSpec + n + 1 + 7) / 8 * 8
		if len(s) != want || s[sizeTargetSpec+n] != 0 || binary.LittleEndian.Uint32(s[offNext:]) != uint32(want) {
			t.Errorf("%d-byte parameters: spec is %d bytes with next %d, want %d, NUL-terminated",
				n, len(s), binary.LittleEndian.Uint32(s[offNext:]), want)
		}
	}
}

func TestVerityTargetErrors(t *testing.T) {
	cases := map[string]struct {
		edit func(*contract.Verity)
		want string
	}{
		"short root hash": {func(v *contract.Verity) { v.RootHash = "abcd" }, "root hash"},
		"no salt":         {func(v *contract.Verity) { v.Salt = "" }, "salt"},
		"odd salt":        {func(v *contract.Verity) { v.Salt = "abc" }, "salt"},
		"no blocks":       {func(v *contract.Verity) { v.DataBlocks = 0 }, "data blocks"},
		"unaligned":       {func(v *contract.Verity) { v.HashOffset++ }, "block-aligned"},
		"inside data":     {func(v *contract.Verity) { v.HashOffset -= 4096 }, "after the data"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			v := testVerity
			c.edit(&v)
			_, err := verityTarget("8:1", v)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("verityTarget(%+v) = %v, want error containing %q", v, err, c.want)
			}
		})
	}
}

// TestActivateRefuses covers the checks Activate makes before it touches
// device-mapper; they need no root.
func TestActivateRefuses(t *testing.T) {
	file := filepath.Join(t.TempDir(), "root")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct{ name, device, want string }{
		"empty name":   {"", file, "device-mapper name"},
		"slash":        {"a/b", file, "without '/'"},
		"long name":    {strings.Repeat("n", 128), file, "1 to 127 characters"},
		"missing":      {"root", file + ".missing", "no such file"},
		"not a device": {"root", file, "is not a block device"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Activate(c.name, c.device, testVerity)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Activate(%q, %q) = %v, want error containing %q", c.name, c.device, err, c.want)
			}
		})
	}
}

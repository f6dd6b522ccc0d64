package verity

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	testSalt = []byte("nodebake-test-salt-0123456789abc")
	testUUID = [16]byte{0x0b, 0x7c, 0x9a, 0x52, 0x2c, 0x0e, 0x4d, 0x7e, 0x9a, 0x39, 0x7f, 0x6b, 0x0c, 0x1e, 0x2d, 0x3a}
)

// writeData creates a file of size bytes. With sparse set, only a few blocks
// hold random bytes and the rest is a hole, so large trees stay cheap to test.
func writeData(t testing.TB, path string, size int64, sparse bool) {
	t.Helper()
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		b := buf[:min(int64(len(buf)), size-off)]
		if sparse {
			b = b[:min(len(b), 512)]
		}
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
}

func uuidString(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func veritysetup(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("veritysetup"); err != nil {
		t.Fatal("veritysetup not found: apt-get install cryptsetup-bin")
	}
	out, err := exec.Command("veritysetup", args...).CombinedOutput()
	return string(out), err
}

// TestFormatMatchesVeritysetup formats the same data with FormatFile and with
// `veritysetup format` and wants byte-identical files and the same root hash.
func TestFormatMatchesVeritysetup(t *testing.T) {
	cases := []struct {
		name   string
		size   int64
		sparse bool
		levels int
	}{
		{"one block", blockSize, false, 0},
		{"padding", 10000, false, 1},
		{"one full hash block", 128 * blockSize, false, 1},
		{"two levels", 129*blockSize + 1, false, 2},
		{"three levels", 128*128*blockSize + 3*blockSize, true, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ours, theirs := filepath.Join(dir, "ours"), filepath.Join(dir, "theirs")
			writeData(t, ours, c.size, c.sparse)
			writeData(t, theirs, c.size, c.sparse)

			v, err := FormatFile(ours, testSalt, testUUID)
			if err != nil {
				t.Fatal(err)
			}
			blocks := (c.size + blockSize - 1) / blockSize
			if v.DataBlocks != uint64(blocks) || v.HashOffset != uint64(blocks*blockSize) || v.Salt != hex.EncodeToString(testSalt) {
				t.Fatalf("FormatFile = %+v, want %d data blocks at hash offset %d", v, blocks, blocks*blockSize)
			}

			// veritysetup takes whole blocks, so pad its copy as FormatFile does.
			if err := os.Truncate(theirs, int64(v.HashOffset)); err != nil {
				t.Fatal(err)
			}
			out, err := veritysetup(t, "format", fmt.Sprint("--hash-offset=", v.HashOffset),
				"--salt="+v.Salt, "--uuid="+uuidString(testUUID), theirs, theirs)
			if err != nil {
				t.Fatalf("veritysetup format: %v\n%s", err, out)
			}
			m := regexp.MustCompile(`Root hash:\s+([0-9a-f]{64})`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no root hash in veritysetup output:\n%s", out)
			}
			if v.RootHash != m[1] {
				t.Errorf("root hash %s, veritysetup says %s", v.RootHash, m[1])
			}
			wantHashBlocks := regexp.MustCompile(`Hash blocks:\s+(\d+)`).FindStringSubmatch(out)[1]
			a, b := readFile(t, ours), readFile(t, theirs)
			if !bytes.Equal(a, b) {
				t.Fatalf("files differ: ours %d bytes, veritysetup's %d bytes, first difference at byte %d",
					len(a), len(b), firstDiff(a, b))
			}
			if got := fmt.Sprint(len(a)/blockSize - int(blocks) - 1); got != wantHashBlocks {
				t.Errorf("%s hash blocks, veritysetup says %s", got, wantHashBlocks)
			}
			_, levels, err := hashTree(bytes.NewReader(a), blocks, testSalt)
			if err != nil || len(levels) != c.levels {
				t.Errorf("tree has %d levels (%v), want %d: the case does not test what its name says", len(levels), err, c.levels)
			}
		})
	}
}

// TestVerify has `veritysetup verify` accept FormatFile's output and reject
// it once a single byte of data or of the hash tree changed.
func TestVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root")
	writeData(t, path, 300*blockSize+123, false)
	v, err := FormatFile(path, testSalt, testUUID)
	if err != nil {
		t.Fatal(err)
	}
	verify := func() (string, error) {
		return veritysetup(t, "verify", fmt.Sprint("--hash-offset=", v.HashOffset), path, path, v.RootHash)
	}
	if out, err := verify(); err != nil {
		t.Fatalf("veritysetup verify rejects FormatFile's output: %v\n%s", err, out)
	}
	for _, off := range []int64{
		77 * blockSize,                           // data
		int64(v.HashOffset) + 2*blockSize + 1000, // leaf level of the tree
	} {
		flip(t, path, off)
		out, err := verify()
		if err == nil || !strings.Contains(out, "failed") {
			t.Errorf("veritysetup verify accepts a flipped byte at %d: %v\n%s", off, err, out)
		}
		flip(t, path, off)
	}
	if out, err := verify(); err != nil {
		t.Fatalf("veritysetup verify rejects the restored file: %v\n%s", err, out)
	}
}

func TestFormatFileErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	writeData(t, data, blockSize, false)
	cases := map[string]struct {
		path string
		salt []byte
		want string
	}{
		"no salt":      {data, nil, "salt is 0 bytes"},
		"long salt":    {data, make([]byte, 257), "salt is 257 bytes"},
		"empty file":   {empty, testSalt, "is empty"},
		"missing file": {filepath.Join(dir, "nope"), testSalt, "no such file"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := FormatFile(c.path, c.salt, testUUID)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("FormatFile = %v, want error containing %q", err, c.want)
			}
		})
	}
}

// BenchmarkFormatFile measures throughput on random (not sparse) data; run
// with -benchtime=1x: each iteration formats a fresh copy.
func BenchmarkFormatFile(b *testing.B) {
	const size = 200 << 20
	src := filepath.Join(b.TempDir(), "src")
	writeData(b, src, size, false)
	data := readFile(b, src)
	b.SetBytes(size)
	for b.Loop() {
		b.StopTimer()
		if err := os.WriteFile(src, data, 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := FormatFile(src, testSalt, testUUID); err != nil {
			b.Fatal(err)
		}
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

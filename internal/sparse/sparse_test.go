package sparse

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// holey makes a 64 MiB file with data at 1 MiB and at its last 4 KiB.
func holey(t *testing.T) (*os.File, []byte) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "holey"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	want := make([]byte, 64<<20)
	a := bytes.Repeat([]byte("data"), 1<<18) // 1 MiB
	b := bytes.Repeat([]byte("tail"), 1<<10) // 4 KiB
	copy(want[1<<20:], a)
	copy(want[len(want)-len(b):], b)
	if err := f.Truncate(int64(len(want))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(a, 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, int64(len(want)-len(b))); err != nil {
		t.Fatal(err)
	}
	return f, want
}

func blocks(t *testing.T, f *os.File) int64 {
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Blocks * 512
}

func TestReaderReadsHolesAsZeros(t *testing.T) {
	f, want := holey(t)
	ex, err := Extents(f, 0, int64(len(want)))
	if err != nil {
		t.Fatal(err)
	}
	var data int64
	for _, e := range ex {
		data += e.Len
	}
	if data > 8<<20 {
		t.Errorf("extents hold %d bytes of a file with 1 MiB of data: holes not found", data)
	}
	r, err := NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("content read through holes differs from the file's")
	}
}

func TestCopyKeepsHoles(t *testing.T) {
	src, want := holey(t)
	dst, err := os.Create(filepath.Join(t.TempDir(), "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	const off = 3 << 20
	if err := dst.Truncate(off + int64(len(want))); err != nil {
		t.Fatal(err)
	}
	var reported int64
	if err := Copy(dst, off, src, 0, int64(len(want)), func(n int64) { reported += n }); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := dst.ReadAt(got, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("copy differs from its source")
	}
	if reported > 8<<20 || blocks(t, dst) > 8<<20 {
		t.Errorf("copied %d bytes, %d allocated: the holes were written", reported, blocks(t, dst))
	}
}

// A file that is shorter than its extents said ends the read with an
// error, not a short stream that would hash as a different image.
func TestReaderShrunkFile(t *testing.T) {
	f, _ := holey(t)
	r, err := NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(2 << 20); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, r); err == nil {
		t.Error("no error reading a file that shrank")
	}
}

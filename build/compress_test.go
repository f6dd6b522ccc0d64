package build

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/nodebake/nodebake/internal/digest"
)

// The one-pass checksum of a sparse image equals sha256sum's, and its .zst
// decompresses to the image, holes included.
func TestChecksumSparseImage(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "x.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(40 << 20); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 5<<20 + 17, 40<<20 - 512} {
		if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, 512), off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	want, err := digest.File(img)
	if err != nil {
		t.Fatal(err)
	}
	zst := filepath.Join(dir, "x.img.zst")
	got, err := checksum(context.Background(), img, zst, newLog(context.Background(), io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("checksum %s, sha256 of the file %s", got, want)
	}
	zf, err := os.Open(zst)
	if err != nil {
		t.Fatal(err)
	}
	defer zf.Close()
	d, err := zstd.NewReader(zf)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	raw, _ := os.ReadFile(img)
	back, err := io.ReadAll(d)
	if err != nil || !bytes.Equal(back, raw) {
		t.Errorf(".zst does not decompress to the image (%v)", err)
	}
	// Without a .zst path only the checksum is made.
	if got, err := checksum(context.Background(), img, "", newLog(context.Background(), io.Discard)); err != nil || got != want {
		t.Errorf("checksum alone: %s, %v", got, err)
	}
}

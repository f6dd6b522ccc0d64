package chunkindex

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"
)

func random(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{1}).Read(b)
	return b
}

// An index survives encoding, its chunks cover the file within their
// bounds, and an insertion near the start leaves the later chunks as they
// were: content-defined cuts find the same places again.
func TestBuildEncodeDecode(t *testing.T) {
	data := random(3 << 20)
	x, err := Build(context.Background(), bytes.NewReader(data), int64(len(data)), Default, nil)
	if err != nil {
		t.Fatal(err)
	}
	y, err := Decode(x.Encode(), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if len(y.Chunks) != len(x.Chunks) || y.Size() != int64(len(data)) || y.Params != Default {
		t.Fatalf("decoded %d chunks of %d bytes, want %d of %d", len(y.Chunks), y.Size(), len(x.Chunks), len(data))
	}
	for i, c := range y.Chunks {
		if c != x.Chunks[i] {
			t.Fatalf("chunk %d: %+v, want %+v", i, c, x.Chunks[i])
		}
	}

	shifted := append(append(append([]byte{}, data[:1000]...), []byte("inserted")...), data[1000:]...)
	z, err := Build(context.Background(), bytes.NewReader(shifted), int64(len(shifted)), Default, nil)
	if err != nil {
		t.Fatal(err)
	}
	have := map[[32]byte]bool{}
	for _, c := range x.Chunks {
		have[c.Sum] = true
	}
	var missing int64
	for _, c := range z.Chunks {
		if !have[c.Sum] {
			missing += c.Size
		}
	}
	if missing > int64(Default.Max) {
		t.Errorf("an 8-byte insertion left %d bytes in new chunks, want at most one chunk's %d", missing, Default.Max)
	}
}

// Decode refuses what a mistaken signer could put in an index before it
// allocates or computes an offset from it.
func TestDecodeRefuses(t *testing.T) {
	data := random(1 << 20)
	x, err := Build(context.Background(), bytes.NewReader(data), int64(len(data)), Default, nil)
	if err != nil {
		t.Fatal(err)
	}
	good := x.Encode()
	edit := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for name, c := range map[string]struct {
		b    []byte
		size int64
		want string
	}{
		"no header":         {[]byte("not an index at all, but long enough"), 1 << 20, "no NBCHUNK1 header"},
		"other file size":   {good, 1<<20 + 1, "the chunks cover 1048576 bytes, the file is 1048577"},
		"too many chunks":   {edit(func(b []byte) []byte { binary.BigEndian.PutUint64(b[28:], 1<<40); return b }), 1 << 20, "bytes of entries for"},
		"chunk above max":   {edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[headerSize:], 1<<30); return b }), 1 << 20, "outside the index's bounds"},
		"bounds too large":  {edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[20:], 1<<30); return b }), 1 << 20, "want 0 < min <= max <= 64 MiB"},
		"truncated entries": {good[:len(good)-1], 1 << 20, "bytes of entries for"},
	} {
		if _, err := Decode(c.b, c.size); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, c.want)
		}
	}
}

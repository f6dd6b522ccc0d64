// Package chunkindex cuts a file into content-defined chunks and records
// them: the chunk index a bundle carries for its root.img, and the same
// cut of the root a device already runs, so that the device fetches only
// the chunks it does not hold.
//
// The chunks are cut with restic's Rabin-fingerprint chunker and a FIXED
// polynomial and fixed bounds (Params), so that two files that share a run
// of bytes are cut at the same places inside it, wherever it lies: a
// squashfs whose later blocks moved by a few bytes still shares them. The
// bounds are small (16 KiB to 256 KiB, 64 KiB on average) because a
// change in a squashfs touches a few compressed blocks and metadata
// tables, and every chunk that holds a changed byte is fetched whole.
package chunkindex

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/restic/chunker"
)

// Params are how a file is cut. An index records them; a device uses an
// index only if they are the ones it cuts its own root with (Default).
type Params struct {
	Pol         uint64 // the Rabin polynomial (restic/chunker.Pol)
	Min, Max    uint32 // chunk size bounds in bytes
	AverageBits uint32 // the cut mask's bits: chunks average 1<<AverageBits bytes
}

// Default is the one cut this version writes and reads.
var Default = Params{Pol: 0x3DA3358B4DC173, Min: 16 << 10, Max: 256 << 10, AverageBits: 16}

// Chunk is one piece of a file.
type Chunk struct {
	Offset int64
	Size   int64
	Sum    [sha256.Size]byte
}

// Index is a file's chunks, in order, with the parameters they were cut
// with.
type Index struct {
	Params Params
	Chunks []Chunk
}

// Size is the length of the file the index describes.
func (x *Index) Size() int64 {
	if len(x.Chunks) == 0 {
		return 0
	}
	last := x.Chunks[len(x.Chunks)-1]
	return last.Offset + last.Size
}

// Build cuts size bytes of r with p. progress, if not nil, is told how
// many bytes were read so far.
func Build(ctx context.Context, r io.Reader, size int64, p Params, progress func(done int64)) (*Index, error) {
	c := chunker.NewWithBoundaries(io.LimitReader(r, size), chunker.Pol(p.Pol), uint(p.Min), uint(p.Max))
	c.SetAverageBits(int(p.AverageBits))
	x := &Index{Params: p}
	buf := make([]byte, p.Max)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ch, err := c.Next(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		x.Chunks = append(x.Chunks, Chunk{Offset: off, Size: int64(ch.Length), Sum: sha256.Sum256(ch.Data)})
		off += int64(ch.Length)
		if progress != nil {
			progress(off)
		}
	}
	if off != size {
		return nil, fmt.Errorf("chunk index: read %d of %d bytes: the file ended early", off, size)
	}
	return x, nil
}

// The encoded index: magic, the parameters, the number of chunks, then
// each chunk's size (uint32) and sha256, all big-endian. Offsets follow
// from the sizes.
var magic = []byte("NBCHUNK1")

const (
	headerSize = 8 + 8 + 4 + 4 + 4 + 8
	entrySize  = 4 + sha256.Size
)

// Encode returns the index file's bytes.
func (x *Index) Encode() []byte {
	var b bytes.Buffer
	b.Write(magic)
	binary.Write(&b, binary.BigEndian, x.Params.Pol)
	binary.Write(&b, binary.BigEndian, x.Params.Min)
	binary.Write(&b, binary.BigEndian, x.Params.Max)
	binary.Write(&b, binary.BigEndian, x.Params.AverageBits)
	binary.Write(&b, binary.BigEndian, uint64(len(x.Chunks)))
	for _, c := range x.Chunks {
		binary.Write(&b, binary.BigEndian, uint32(c.Size))
		b.Write(c.Sum[:])
	}
	return b.Bytes()
}

// Decode reads an index file and checks that it describes a file of
// exactly size bytes cut within its own bounds. The caller has checked
// the bytes against a signed hash; the checks here turn a signer's
// mistake into an error rather than a huge allocation or a wrong offset.
func Decode(b []byte, size int64) (*Index, error) {
	if len(b) < headerSize || !bytes.Equal(b[:8], magic) {
		return nil, errors.New("chunk index: not a nodebake chunk index (no NBCHUNK1 header)")
	}
	r := bufio.NewReader(bytes.NewReader(b[8:]))
	var p Params
	var n uint64
	for _, v := range []any{&p.Pol, &p.Min, &p.Max, &p.AverageBits, &n} {
		if err := binary.Read(r, binary.BigEndian, v); err != nil {
			return nil, fmt.Errorf("chunk index: %w", err)
		}
	}
	if p.Min == 0 || p.Max < p.Min || p.Max > 64<<20 {
		return nil, fmt.Errorf("chunk index: chunk bounds %d to %d bytes: want 0 < min <= max <= 64 MiB", p.Min, p.Max)
	}
	if uint64(len(b)-headerSize) != n*entrySize {
		return nil, fmt.Errorf("chunk index: %d bytes of entries for %d chunks: want %d", len(b)-headerSize, n, n*entrySize)
	}
	x := &Index{Params: p, Chunks: make([]Chunk, 0, n)}
	var off int64
	for i := uint64(0); i < n; i++ {
		e := b[headerSize+i*entrySize:]
		c := Chunk{Offset: off, Size: int64(binary.BigEndian.Uint32(e))}
		copy(c.Sum[:], e[4:entrySize])
		// Only the last chunk may be shorter than the minimum.
		if c.Size == 0 || c.Size > int64(p.Max) || (c.Size < int64(p.Min) && i != n-1) {
			return nil, fmt.Errorf("chunk index: chunk %d is %d bytes: outside the index's bounds %d to %d", i, c.Size, p.Min, p.Max)
		}
		off += c.Size
		if off > size {
			return nil, fmt.Errorf("chunk index: the chunks run past the file's %d bytes", size)
		}
		x.Chunks = append(x.Chunks, c)
	}
	if off != size {
		return nil, fmt.Errorf("chunk index: the chunks cover %d bytes, the file is %d", off, size)
	}
	return x, nil
}

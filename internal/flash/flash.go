package flash

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/nodebake/nodebake/internal/progress"
	"golang.org/x/sys/unix"
)

// Device is what an image is written to: a block device or a regular file
// (*os.File), or in tests a wrapper around one.
type Device interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}

// Options tune Write.
type Options struct {
	Progress io.Writer // progress lines; nil: silent
	// DropCache, if set, runs after the sync and before the read-back so
	// that the read-back comes from the disk, not from the page cache
	// (DropBlockCache for a block device).
	DropCache func() error
}

// Result says what Write did.
type Result struct {
	Written int64 // bytes written, the first MiB's zeroing not counted
	Extents int   // runs of bytes written and read back
}

// DropBlockCache asks the kernel to drop its cached pages of a block device
// (BLKFLSBUF), so that reading back verifies what reached the disk.
func DropBlockCache(f *os.File) error {
	if err := unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0); err != nil {
		return fmt.Errorf("%s: dropping the kernel's cache before the read-back (BLKFLSBUF): %w", f.Name(), err)
	}
	return nil
}

// Write writes img onto dev following the plan in the package comment,
// syncs, reads every written range back and compares its sha256 with the
// image's. It fails on any difference. dev must hold at least img.Size
// bytes (the caller checks the device; see Target).
func Write(ctx context.Context, img *Image, dev Device, o Options) (*Result, error) {
	p := newPlanner(img)
	w := &writer{dev: dev}
	rec := &recorder{}
	bar := progress.New(o.Progress, "write", img.Size)

	// The first MiB holds the partition table: zero it first, write it
	// last (see the package comment).
	if _, err := dev.WriteAt(make([]byte, min(mib, img.Size)), 0); err != nil {
		return nil, fmt.Errorf("writing: %w", err)
	}
	var headBlocks [][2]int64
	emit := func(off int64, b []byte) error {
		rec.add(off, b)
		return w.add(off, b)
	}
	process := func(off int64, chunk []byte) error {
		for i := 0; i < len(chunk); i += blockSize {
			b := chunk[i:min(i+blockSize, len(chunk))]
			at := off + int64(i)
			switch p.decide(at, b) {
			case write:
				if z := p.takeZeros(); z.n > 0 {
					for o := int64(0); o < z.n; o += blockSize {
						if err := emit(z.off+o, zeros[:min(blockSize, z.n-o)]); err != nil {
							return err
						}
					}
				}
				if at < mib {
					// Hashed now, in order; written at the end.
					rec.add(at, b)
					headBlocks = append(headBlocks, [2]int64{at, int64(len(b))})
					continue
				}
				if err := emit(at, b); err != nil {
					return err
				}
			case deferZero:
				p.pushZero(at, int64(len(b)))
			}
		}
		return nil
	}

	if err := process(0, img.head); err != nil {
		return nil, err
	}
	bar.Add(int64(len(img.head)))
	pos := int64(len(img.head))
	buf := make([]byte, mib)
	for pos < img.Size {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := io.ReadFull(img.r, buf[:min(mib, img.Size-pos)])
		if err != nil {
			return nil, fmt.Errorf("%s: reading at byte %d of %d: %v: the image is truncated or damaged; build or download it again", img.Path, pos+int64(n), img.Size, err)
		}
		if err := process(pos, buf[:n]); err != nil {
			return nil, err
		}
		pos += int64(n)
		bar.Add(int64(n))
	}
	if n, _ := io.ReadFull(img.r, buf[:1]); n != 0 {
		return nil, fmt.Errorf("%s: the stream goes on past the %d bytes its GPT describes: the image is damaged; build or download it again", img.Path, img.Size)
	}
	if err := w.flush(); err != nil {
		return nil, err
	}
	for _, hb := range headBlocks {
		if err := w.add(hb[0], img.head[hb[0]:hb[0]+hb[1]]); err != nil {
			return nil, err
		}
	}
	if err := w.flush(); err != nil {
		return nil, err
	}
	bar.Done()
	exts := rec.finish()

	if err := dev.Sync(); err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	if o.DropCache != nil {
		if err := o.DropCache(); err != nil {
			return nil, err
		}
	}
	if err := verify(ctx, dev, exts, progress.New(o.Progress, "verify", w.written)); err != nil {
		return nil, err
	}
	return &Result{Written: w.written, Extents: len(exts)}, nil
}

// ErrMismatch is wrapped by the error Write returns when the read-back
// differs from the image.
var ErrMismatch = errors.New("read-back differs from the image")

func verify(ctx context.Context, dev Device, exts []extent, bar *progress.Counter) error {
	defer bar.Done()
	buf := make([]byte, mib)
	for _, e := range exts {
		if err := ctx.Err(); err != nil {
			return err
		}
		h := sha256.New()
		for o := int64(0); o < e.n; {
			n := min(mib, e.n-o)
			if _, err := dev.ReadAt(buf[:n], e.off+o); err != nil {
				return fmt.Errorf("reading back bytes %d–%d: %w", e.off+o, e.off+o+n, err)
			}
			h.Write(buf[:n])
			o += n
			bar.Add(n)
		}
		if got := h.Sum(nil); !bytes.Equal(got, e.sum[:]) {
			return fmt.Errorf("bytes %d–%d: sha256 %s, the image has %s: %w. The disk did not keep what was written: do not boot it; flash again, and if it fails again use another disk",
				e.off, e.off+e.n, hex.EncodeToString(got), hex.EncodeToString(e.sum[:]), ErrMismatch)
		}
	}
	return nil
}

var zeros = make([]byte, blockSize)

// writer batches contiguous blocks into large writes.
type writer struct {
	dev     Device
	off     int64
	buf     []byte
	written int64
}

const batch = 4 * mib

func (w *writer) add(off int64, b []byte) error {
	if len(w.buf) > 0 && (off != w.off+int64(len(w.buf)) || len(w.buf)+len(b) > batch) {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if len(w.buf) == 0 {
		w.off = off
	}
	w.buf = append(w.buf, b...)
	return nil
}

func (w *writer) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.dev.WriteAt(w.buf, w.off); err != nil {
		return fmt.Errorf("writing bytes %d–%d: %w", w.off, w.off+int64(len(w.buf)), err)
	}
	w.written += int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}

// extent is a run of written bytes and the sha256 of the image's bytes there.
type extent struct {
	off, n int64
	sum    [sha256.Size]byte
}

// maxExtent bounds a run so that a mismatch is reported with a useful range.
const maxExtent = 64 * mib

// recorder hashes written blocks, which arrive in ascending order, into
// extents.
type recorder struct {
	exts []extent
	cur  *extent
	h    hash.Hash
}

func (r *recorder) add(off int64, b []byte) {
	if r.cur != nil && (off != r.cur.off+r.cur.n || r.cur.n >= maxExtent) {
		r.close()
	}
	if r.cur == nil {
		r.cur, r.h = &extent{off: off}, sha256.New()
	}
	r.h.Write(b)
	r.cur.n += int64(len(b))
}

func (r *recorder) close() {
	copy(r.cur.sum[:], r.h.Sum(nil))
	r.exts = append(r.exts, *r.cur)
	r.cur = nil
}

func (r *recorder) finish() []extent {
	if r.cur != nil {
		r.close()
	}
	return r.exts
}

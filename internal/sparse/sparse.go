// Package sparse reads and copies files with holes without touching the
// holes: a raw disk image is gigabytes of which most were never written
// (the empty slot b, the data partition, the ESP's free space). The kernel
// says where data lies (lseek SEEK_DATA/SEEK_HOLE); a hole reads as zeros
// made in memory and is skipped when copying, so it stays a hole.
package sparse

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Extent is a run of data in a file; everything between extents is a hole.
type Extent struct{ Off, Len int64 }

// Extents lists where f holds data between off and off+n. A file system
// without SEEK_DATA support reports the whole range as data.
func Extents(f *os.File, off, n int64) ([]Extent, error) {
	end := off + n
	var out []Extent
	fd := int(f.Fd())
	for off < end {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole up to the end of the file
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			return []Extent{{off, end - off}}, nil
		}
		if err != nil {
			return nil, err
		}
		if data >= end {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		hole = min(hole, end)
		out = append(out, Extent{data, hole - data})
		off = hole
	}
	return out, nil
}

// Reader reads a whole file, holes as zeros without reading them.
type Reader struct {
	f       *os.File
	extents []Extent
	off     int64
	size    int64
}

// NewReader reads f from its start to its current size.
func NewReader(f *os.File) (*Reader, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	ex, err := Extents(f, 0, st.Size())
	if err != nil {
		return nil, err
	}
	return &Reader{f: f, extents: ex, size: st.Size()}, nil
}

func (r *Reader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	for len(r.extents) > 0 && r.extents[0].Off+r.extents[0].Len <= r.off {
		r.extents = r.extents[1:]
	}
	p = p[:min(int64(len(p)), r.size-r.off)]
	if len(r.extents) == 0 || r.off < r.extents[0].Off {
		// In a hole: zeros up to the next extent.
		n := int64(len(p))
		if len(r.extents) > 0 {
			n = min(n, r.extents[0].Off-r.off)
		}
		clear(p[:n])
		r.off += n
		return int(n), nil
	}
	e := r.extents[0]
	p = p[:min(int64(len(p)), e.Off+e.Len-r.off)]
	n, err := r.f.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF {
		err = nil
		if n == 0 {
			err = io.ErrUnexpectedEOF // the file shrank
		}
	}
	return n, err
}

// Copy copies n bytes of src at srcOff into dst at dstOff, skipping the
// holes of src, which stay holes in dst if it is new or truncated. Data
// moves with copy_file_range where the kernel can.
func Copy(dst *os.File, dstOff int64, src *os.File, srcOff, n int64, progress func(int64)) error {
	ex, err := Extents(src, srcOff, n)
	if err != nil {
		return err
	}
	for _, e := range ex {
		if _, err := dst.Seek(dstOff+e.Off-srcOff, io.SeekStart); err != nil {
			return err
		}
		if _, err := src.Seek(e.Off, io.SeekStart); err != nil {
			return err
		}
		for left := e.Len; left > 0; {
			// dst.ReadFrom of a limited *os.File uses copy_file_range.
			got, err := dst.ReadFrom(io.LimitReader(src, min(left, 64<<20)))
			if err != nil {
				return err
			}
			if got == 0 {
				return io.ErrUnexpectedEOF
			}
			left -= got
			if progress != nil {
				progress(got)
			}
		}
	}
	return nil
}

package ota

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
)

// Progress is told how far a long step has come: step names what is being
// done ("root.img", "write root", …), done and total count bytes. A nil
// Progress is silent.
type Progress func(step string, done, total int64)

func (p Progress) Report(step string, done, total int64) {
	if p != nil {
		p(step, done, total)
	}
}

// chunk is how many bytes are copied between checks of the context and
// progress reports.
const chunk = 1 << 20

// copyN copies exactly n bytes from r to w, checking ctx and reporting
// progress between chunks. A source that ends early is an error that says
// how much was missing.
func copyN(ctx context.Context, w io.Writer, r io.Reader, n int64, step string, p Progress) error {
	buf := make([]byte, chunk)
	var done int64
	p.Report(step, 0, n)
	for done < n {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := io.ReadFull(r, buf[:min(chunk, n-done)])
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				return werr
			}
			done += int64(m)
			p.Report(step, done, n)
		}
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return fmt.Errorf("%s: ended after %d of %d bytes", step, done, n)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// hashWriter hashes everything written through it.
type hashWriter struct {
	w io.Writer
	h hash.Hash
}

func newHashWriter(w io.Writer) *hashWriter { return &hashWriter{w: w, h: sha256.New()} }

func (hw *hashWriter) Write(b []byte) (int, error) {
	n, err := hw.w.Write(b)
	hw.h.Write(b[:n])
	return n, err
}

func (hw *hashWriter) sum() string { return hex.EncodeToString(hw.h.Sum(nil)) }

// The names of root.img's two parts in messages.
const (
	rootFSPart = RootFile + "'s filesystem"
	verityPart = RootFile + "'s verity data"
)

// rootHash hashes root.img whole and, split at the verity hash offset, its
// filesystem and its verity data (Manifest.RootFS, Manifest.VerityData).
type rootHash struct {
	whole, fs, verity hash.Hash
	split, n          int64
}

func newRootHash(split int64) *rootHash {
	return &rootHash{whole: sha256.New(), fs: sha256.New(), verity: sha256.New(), split: split}
}

func (h *rootHash) Write(b []byte) (int, error) {
	h.whole.Write(b)
	k := max(0, min(int64(len(b)), h.split-h.n))
	h.fs.Write(b[:k])
	h.verity.Write(b[k:])
	h.n += int64(len(b))
	return len(b), nil
}

// files returns what was hashed: root.img, its filesystem, its verity data.
func (h *rootHash) files() (root, fs, verity File) {
	sum := func(x hash.Hash) string { return hex.EncodeToString(x.Sum(nil)) }
	return File{h.n, sum(h.whole)}, File{min(h.n, h.split), sum(h.fs)}, File{max(0, h.n-h.split), sum(h.verity)}
}

// check compares the two parts, then the whole, with the manifest's records.
// HashRoot reads a root.img of size bytes from r and returns the records
// of it whole and of its two parts, split at the verity hash offset.
func HashRoot(ctx context.Context, r io.Reader, size, hashOffset int64, progress Progress) (root, fs, verity File, err error) {
	h := newRootHash(hashOffset)
	if err := copyN(ctx, h, r, size, "hash "+RootFile, progress); err != nil {
		return root, fs, verity, err
	}
	root, fs, verity = h.files()
	return root, fs, verity, nil
}

func (h *rootHash) check(m *Manifest) error {
	root, fs, verity := h.files()
	if err := checkFile(rootFSPart, fs, m.RootFS); err != nil {
		return err
	}
	if err := checkFile(verityPart, verity, m.VerityData); err != nil {
		return err
	}
	return checkFile(RootFile, root, m.Root)
}

// checkFile compares what was read or written with the manifest's record.
func checkFile(name string, got, want File) error {
	if got.Size != want.Size {
		return fmt.Errorf("%s is %d bytes, the signed manifest says %d: the file is truncated or incomplete", name, got.Size, want.Size)
	}
	if got.SHA256 != want.SHA256 {
		return fmt.Errorf("%s: sha256 is %s, the signed manifest says %s: the file is corrupted or was changed", name, got.SHA256, want.SHA256)
	}
	return nil
}

// SaveFile writes n bytes of r to dir/name through a temporary file, and
// renames it into place only when complete and, if check is not nil,
// accepted by check. It returns what was written.
func SaveFile(ctx context.Context, dir, name string, r io.Reader, n int64, check func(File) error, p Progress) (File, error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-")
	if err != nil {
		return File{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	hw := newHashWriter(f)
	if err := copyN(ctx, hw, r, n, name, p); err != nil {
		return File{}, err
	}
	got := File{Size: n, SHA256: hw.sum()}
	if check != nil {
		if err := check(got); err != nil {
			return File{}, err
		}
	}
	if err := f.Chmod(0o644); err != nil {
		return File{}, err
	}
	if err := f.Sync(); err != nil {
		return File{}, err
	}
	if err := f.Close(); err != nil {
		return File{}, err
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return File{}, err
	}
	return got, nil
}

package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nodebake/nodebake/internal/digest"
)

// store is the download cache: files named by their sha256 under blobs/,
// and an index from what was downloaded (a URL) to that hash. An entry is
// re-hashed whenever it is used, so a damaged file is noticed and fetched
// again; its content is verified like a fresh download either way.
type store struct {
	blobs string // <cache>/artifacts/sha256
	index string // <cache>/artifacts/urls
}

func newStore(cacheDir string) store {
	dir := filepath.Join(cacheDir, "artifacts")
	return store{blobs: filepath.Join(dir, "sha256"), index: filepath.Join(dir, "urls")}
}

// errCorrupt is a cached file whose content no longer has the hash it was
// stored under.
type errCorrupt struct{ key, want, got string }

func (e *errCorrupt) Error() string {
	return fmt.Sprintf("the cached copy of %s is corrupt (sha256 %s, stored as %s)", e.key, e.got, e.want)
}

// lookup returns the cached file for key and its sha256. ok is false when
// there is none; a corrupt entry is removed and reported as errCorrupt.
func (s store) lookup(key string) (path, sum string, ok bool, err error) {
	b, err := os.ReadFile(s.indexPath(key))
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, err
	}
	want, stored, _ := strings.Cut(string(b), "\n")
	if stored != key+"\n" || !reSHA256.MatchString(want) {
		// Not written by put: treat as absent; the next put replaces it.
		return "", "", false, nil
	}
	path = filepath.Join(s.blobs, want)
	got, err := digest.File(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, err
	}
	if got != want {
		os.Remove(path)
		s.forget(key)
		return "", "", false, &errCorrupt{key: key, want: want, got: got}
	}
	return path, got, true, nil
}

// put stores r's content under its sha256 and indexes it under key; the file
// appears whole or not at all (temp file, then rename).
func (s store) put(key string, r io.Reader) (path, sum string, err error) {
	if err := os.MkdirAll(s.blobs, 0o755); err != nil {
		return "", "", err
	}
	tmp, err := os.CreateTemp(s.blobs, ".part-*")
	if err != nil {
		return "", "", err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), r); err != nil {
		tmp.Close()
		return "", "", err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", "", err
	}
	if err := tmp.Close(); err != nil {
		return "", "", err
	}
	sum = hex.EncodeToString(h.Sum(nil))
	path = filepath.Join(s.blobs, sum)
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", "", err
	}
	return path, sum, s.remember(key, sum)
}

func (s store) remember(key, sum string) error {
	if err := os.MkdirAll(s.index, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.index, ".part-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = fmt.Fprintf(tmp, "%s\n%s\n", sum, key)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.indexPath(key))
}

// forget drops key from the index so the next build downloads it again
// (the blob stays: another key may name the same content).
func (s store) forget(key string) { os.Remove(s.indexPath(key)) }

func (s store) indexPath(key string) string {
	h := sha256.Sum256([]byte(key))
	return filepath.Join(s.index, hex.EncodeToString(h[:]))
}

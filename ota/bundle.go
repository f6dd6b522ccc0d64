package ota

import (
	"archive/tar"
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// Bundle is an update bundle: its manifest and signature, read into
// memory, and access to its other files. Nothing in it is trusted until
// Verify (or VerifyManifest) accepts it.
type Bundle struct {
	Manifest Manifest // decoded from the manifest bytes; untrusted before Verify
	raw, sig []byte
	// parseErr is why the manifest bytes did not decode. It is reported
	// only after the signature has been checked, so that a manifest
	// changed after signing is called that, whatever the change broke.
	parseErr error
	// open returns a file's content and its size as stored; nil for a
	// bundle of which only the manifest was fetched.
	open     func(name string) (io.ReadCloser, int64, error)
	verified bool // Verify accepted the manifest and every file
}

// Open reads a bundle from a directory or from a tar file made by
// WriteTar.
func Open(path string) (*Bundle, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return openDir(path)
	}
	return openTar(path)
}

func openDir(dir string) (*Bundle, error) {
	return newBundle(func(name string) (io.ReadCloser, int64, error) {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return nil, 0, fmt.Errorf("bundle %s: %w", dir, err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		return f, st.Size(), nil
	})
}

// openTar indexes the tar file once; each file is then a section of it.
func openTar(path string) (*Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type section struct{ off, size int64 }
	index := map[string]section{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: not a bundle tar file: %w", path, err)
		}
		if h.Typeflag != tar.TypeReg || !slices.Contains(files, h.Name) {
			return nil, fmt.Errorf("%s: unexpected %q in a bundle (it holds only %v)", path, h.Name, files)
		}
		if _, dup := index[h.Name]; dup {
			return nil, fmt.Errorf("%s: %s appears twice", path, h.Name)
		}
		// tar.Reader reads headers in whole blocks and buffers nothing,
		// so the file position is where this entry's data starts.
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		index[h.Name] = section{off, h.Size}
	}
	return newBundle(func(name string) (io.ReadCloser, int64, error) {
		s, ok := index[name]
		if !ok {
			return nil, 0, fmt.Errorf("bundle %s lacks %s", path, name)
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, 0, err
		}
		return struct {
			io.Reader
			io.Closer
		}{io.NewSectionReader(f, s.off, s.size), f}, s.size, nil
	})
}

// maxManifest bounds the manifest and signature files read into memory.
const maxManifest = 1 << 20

func newBundle(open func(string) (io.ReadCloser, int64, error)) (*Bundle, error) {
	b := &Bundle{open: open}
	var err error
	if b.raw, err = b.readSmall(ManifestFile); err != nil {
		return nil, err
	}
	if b.sig, err = b.readSmall(SignatureFile); err != nil {
		return nil, err
	}
	b.Manifest, b.parseErr = parseManifest(b.raw)
	return b, nil
}

func (b *Bundle) readSmall(name string) ([]byte, error) {
	r, size, err := b.open(name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if size > maxManifest {
		return nil, fmt.Errorf("%s is %d bytes: too large for a bundle's %s", name, size, name)
	}
	return io.ReadAll(io.LimitReader(r, maxManifest))
}

// manifestOnly makes a bundle of which only the manifest and signature
// were fetched, for checking whether an update is available.
func manifestOnly(raw, sig []byte) *Bundle {
	m, err := parseManifest(raw)
	return &Bundle{Manifest: m, raw: raw, sig: sig, parseErr: err}
}

// whole reports why the bundle cannot be published or copied as it is.
func (b *Bundle) whole() error {
	if b.parseErr != nil {
		return b.parseErr
	}
	if b.open == nil {
		return fmt.Errorf("only the manifest of this bundle was fetched: download the whole bundle first")
	}
	return nil
}

// OpenFile opens one of the bundle's files (the kernel, initramfs or
// root; Signed has the other two) and returns it with its size as stored.
func (b *Bundle) OpenFile(name string) (io.ReadCloser, int64, error) {
	if err := b.whole(); err != nil {
		return nil, 0, err
	}
	return b.open(name)
}

// Signed returns the manifest and signature files' bytes, as signed.
func (b *Bundle) Signed() (manifest, sig []byte) { return b.raw, b.sig }

// FileNames lists the files of bundle b in the order they are stored and
// sent: small ones first. root.idx is among them from format 3 on.
func (b *Bundle) FileNames() []string {
	return append([]string{ManifestFile, SignatureFile}, b.Manifest.Files()...)
}

// SignedBy reports why b's manifest is not signed by key, if it is not.
func (b *Bundle) SignedBy(key ed25519.PublicKey) error { return checkSignature(b.raw, b.sig, key) }

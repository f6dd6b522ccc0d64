package bundler

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nodebake/nodebake/ota"
)

// WriteTar writes the bundle as one uncompressed tar file at path
// (through a temporary file, renamed when complete), for copying onto a
// device; ota.Open reads it. Its headers carry no times or owners, so the
// same bundle always gives the same bytes.
func WriteTar(b *ota.Bundle, path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, name := range b.FileNames() {
		r, size, err := open(b, name)
		if err != nil {
			return err
		}
		err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, Format: tar.FormatUSTAR})
		if err == nil {
			_, err = io.Copy(tw, r)
		}
		r.Close()
		if err != nil {
			return fmt.Errorf("%s: %s: %w", path, name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// open reads any of a bundle's files: the signed manifest and signature
// from memory, the rest from where the bundle lies.
func open(b *ota.Bundle, name string) (io.ReadCloser, int64, error) {
	raw, sig := b.Signed()
	switch name {
	case ota.ManifestFile:
		return io.NopCloser(bytes.NewReader(raw)), int64(len(raw)), nil
	case ota.SignatureFile:
		return io.NopCloser(bytes.NewReader(sig)), int64(len(sig)), nil
	}
	return b.OpenFile(name)
}

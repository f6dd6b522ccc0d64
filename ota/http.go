package ota

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/nodebake/nodebake/atomicfile"
)

// PublishDir writes the bundle's files into dir (created if needed) for a
// static web server to serve; Fetch downloads them from the URL of dir.
// Each file goes in under a temporary name and is renamed; the manifest
// comes last, so a client that reads an old manifest while the new files
// arrive fails its hash check and tries again later.
func PublishDir(ctx context.Context, b *Bundle, dir string, progress Progress) error {
	if err := b.whole(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range []string{KernelFile, InitrdFile, RootFile} {
		r, size, err := b.open(f)
		if err != nil {
			return err
		}
		_, err = saveFile(ctx, dir, f, r, size, nil, progress)
		r.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
	}
	if err := atomicfile.Write(filepath.Join(dir, SignatureFile), b.sig, 0o644); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, ManifestFile), b.raw, 0o644)
}

// Fetch downloads the bundle published at base (the URL of a directory
// written by PublishDir) into dir and opens it. Each file is checked
// against the size and sha256 the manifest gives while it streams in, so a
// damaged download stops early; call Verify next to check the signature.
func Fetch(ctx context.Context, base, dir string, progress Progress) (*Bundle, error) {
	b, err := FetchManifest(ctx, base)
	if err != nil {
		return nil, err
	}
	// The sizes and hashes below come from this manifest, not yet trusted:
	// they only stop a broken download early. Verify decides.
	if b.parseErr != nil {
		return nil, fmt.Errorf("%s: %w", base, b.parseErr)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for _, f := range []string{KernelFile, InitrdFile, RootFile} {
		want := b.Manifest.file(f)
		body, u, err := get(ctx, base, f, want.Size)
		if err != nil {
			return nil, err
		}
		_, err = saveFile(ctx, dir, f, body, want.Size, func(got File) error { return checkFile(f, got, want) }, progress)
		body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
	}
	if err := atomicfile.Write(filepath.Join(dir, SignatureFile), b.sig, 0o644); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(dir, ManifestFile), b.raw, 0o644); err != nil {
		return nil, err
	}
	return Open(dir)
}

// FetchManifest downloads only the manifest and signature published at
// base, to check with VerifyManifest whether the bundle is worth
// downloading.
func FetchManifest(ctx context.Context, base string) (*Bundle, error) {
	var raw, sig []byte
	for f, dst := range map[string]*[]byte{ManifestFile: &raw, SignatureFile: &sig} {
		body, u, err := get(ctx, base, f, -1)
		if err != nil {
			return nil, err
		}
		*dst, err = io.ReadAll(io.LimitReader(body, maxManifest+1))
		body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		if len(*dst) > maxManifest {
			return nil, fmt.Errorf("%s: larger than %d bytes: not a bundle's %s", u, maxManifest, f)
		}
	}
	return manifestOnly(raw, sig), nil
}

// get requests base/name and returns the body. A known size must match
// the response's length when the server gives one.
func get(ctx context.Context, base, name string, size int64) (io.ReadCloser, string, error) {
	u, err := url.JoinPath(base, name)
	if err != nil {
		return nil, "", fmt.Errorf("bundle URL %q: %w", base, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, u, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, u, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, u, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if size >= 0 && resp.ContentLength >= 0 && resp.ContentLength != size {
		resp.Body.Close()
		return nil, u, fmt.Errorf("GET %s: the server sends %d bytes, the manifest says %d: the published bundle is incomplete or mixed with another", u, resp.ContentLength, size)
	}
	return resp.Body, u, nil
}

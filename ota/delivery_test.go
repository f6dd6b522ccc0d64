package ota_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrrandom "github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

// source parses the text form of a source.
func source(t *testing.T, text string) ota.Source {
	t.Helper()
	s, err := ota.ParseSource(text, true)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A device checks the manifest a registry offers first, then downloads
// the whole bundle (bundler's tests check what Publish pushes).
func TestRegistry(t *testing.T) {
	t.Parallel()
	srv := otatest.Server(t.TempDir())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref := host + "/nodebake/node:2.0.0"
	ctx := context.Background()
	b := makeBundle(t, "2.0.0")
	if _, err := bundler.Publish(ctx, b, ref, testSigner, nil); err != nil {
		t.Fatal(err)
	}

	policy := ota.Policy{Key: testPub, Running: ota.Identity{Name: testName, Version: "1.0.0"}}
	s := source(t, "oci://"+ref)
	head, err := fetchManifest(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := ota.VerifyManifest(head, policy); err != nil {
		t.Fatalf("pulled manifest: %v", err)
	}
	if err := ota.Verify(ctx, head, policy, nil); err == nil || !strings.Contains(err.Error(), "only the manifest") {
		t.Errorf("Verify of a manifest-only bundle: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "download")
	pulled, err := s.Download(ctx, head, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ota.Verify(ctx, pulled, policy, nil); err != nil {
		t.Fatalf("pulled bundle: %v", err)
	}
	otatest.SameFiles(t, b, pulled)
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(leftovers) != 0 {
		t.Errorf("Download left temporary files: %v", leftovers)
	}

	// Downloading again into the same directory replaces the files.
	if _, err := s.Download(ctx, head, dir, nil); err != nil {
		t.Fatalf("second download into %s: %v", dir, err)
	}

	// Something else under a tag is not taken for a bundle.
	img, err := ggcrrandom.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	other := host + "/nodebake/node:not-a-bundle"
	otherRef, _ := name.ParseReference(other)
	if err := remote.Write(otherRef, img); err != nil {
		t.Fatal(err)
	}
	if _, err := fetchManifest(ctx, source(t, "oci://"+other)); err == nil || !strings.Contains(err.Error(), "not a nodebake bundle") {
		t.Errorf("pulling a container image: %v", err)
	}
	if _, err := fetchManifest(ctx, source(t, "oci://"+host+"/nodebake/node:9.9.9")); err == nil || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
		t.Errorf("pulling a missing tag: %v", err)
	}
}

// A folder written by PublishDir on a web server.
func TestStaticFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := makeBundle(t, "2.0.0")
	www := t.TempDir()
	if err := bundler.PublishDir(ctx, b, filepath.Join(www, "bundles", "node", "stable"), testSigner, nil); err != nil {
		t.Fatal(err)
	}
	srv := otatest.Server(www)
	defer srv.Close()
	s := source(t, srv.URL+"/bundles/node/stable/")

	policy := ota.Policy{Key: testPub, Running: ota.Identity{Name: testName, Version: "1.0.0"}}
	head, err := fetchManifest(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := ota.VerifyManifest(head, policy); err != nil {
		t.Fatalf("fetched manifest: %v", err)
	}
	var steps []string
	fetched, err := s.Download(ctx, head, filepath.Join(t.TempDir(), "download"), func(step string, done, total int64) {
		if done == total && total > 0 {
			steps = append(steps, step)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(steps, " ") != "vmlinuz initrd.img root.idx root.img" {
		t.Errorf("progress finished steps %v", steps)
	}
	if err := ota.Verify(ctx, fetched, policy, nil); err != nil {
		t.Fatalf("fetched bundle: %v", err)
	}
	otatest.SameFiles(t, b, fetched)

	// A root.img replaced on the server stops the download, and nothing
	// is renamed into place.
	rootPath := filepath.Join(www, "bundles", "node", "stable", ota.RootFile)
	data := otatest.ReadFile(t, rootPath)
	data[len(data)/2] ^= 0x80
	if err := os.WriteFile(rootPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "download")
	if _, err := s.Download(ctx, head, dir, nil); err == nil || !strings.Contains(err.Error(), "root.img: sha256 is") {
		t.Errorf("fetching a damaged root.img: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ota.RootFile)); !os.IsNotExist(err) {
		t.Error("a damaged root.img was kept")
	}
	if _, err := fetchManifest(ctx, source(t, srv.URL+"/bundles/node/missing/")); err == nil || !strings.Contains(err.Error(), "publishes no channel.json") {
		t.Errorf("fetching from a missing directory: %v", err)
	}
}

// webFolder serves a bundle folder whose files pick chooses: the folder
// to serve the n-th request (from 1) for file from, or "" for a handler
// of its own.
func webFolder(t *testing.T, pick func(file string, n int) string, own http.HandlerFunc) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	count := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		file := filepath.Base(r.URL.Path)
		mu.Lock()
		count[file]++
		n := count[file]
		mu.Unlock()
		if dir := pick(file, n); dir != "" {
			http.ServeFile(w, r, filepath.Join(dir, file))
			return
		}
		own(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// signedSize is the size the manifest gives a bundle file, or a
// temporary file being written for it.
func signedSize(m *ota.Manifest, file string) int64 {
	for _, f := range []string{ota.KernelFile, ota.InitrdFile, ota.RootFile} {
		if file == f || strings.HasPrefix(file, "."+f+".tmp") {
			return m.File(f).Size
		}
	}
	return 1 << 20 // the manifest and signature: a few hundred bytes
}

// oversize describes the files in dir that are larger than the signed
// manifest allows; "" if there are none.
func oversize(dir string, m *ota.Manifest) string {
	entries, _ := os.ReadDir(dir)
	var found []string
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue // renamed or removed meanwhile
		}
		if info.Size() > signedSize(m, e.Name()) {
			found = append(found, fmt.Sprintf("%s is %d bytes, the signed manifest allows %d", e.Name(), info.Size(), signedSize(m, e.Name())))
		}
	}
	return strings.Join(found, "; ")
}

// checkSizes fails if a file in dir is larger than the signed manifest
// allows.
func checkSizes(t *testing.T, dir string, m *ota.Manifest) {
	t.Helper()
	if s := oversize(dir, m); s != "" {
		t.Error(s)
	}
}

// A download goes by the manifest the device verified, never by what a
// server offers next: a server that swaps the bundle between the manifest
// fetch and the download, or sends more than was signed, gets nothing
// unsigned accepted and cannot fill the disk.
func TestDownloadFollowsSignedManifest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b1, b2 := makeBundle(t, "1.0.0"), makeBundle(t, "2.0.0")
	www := t.TempDir()
	v1, v2 := filepath.Join(www, "v1"), filepath.Join(www, "v2")
	for dir, b := range map[string]*ota.Bundle{v1: b1, v2: b2} {
		if err := bundler.PublishDir(ctx, b, dir, testSigner, nil); err != nil {
			t.Fatal(err)
		}
	}
	policy := ota.Policy{Key: testPub, Running: ota.Identity{Name: testName, Version: "0.9.0"}}
	raw1, _ := b1.Signed()
	isManifest := func(file string) bool {
		return file == ota.ManifestFile || file == ota.SignatureFile || file == ota.ChannelFile || file == ota.ChannelSignatureFile
	}
	// head fetches and verifies the manifest the server offers first: v1's.
	head := func(t *testing.T, s ota.Source) *ota.Bundle {
		t.Helper()
		h, err := fetchManifest(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if err := ota.VerifyManifest(h, policy); err != nil {
			t.Fatal(err)
		}
		if h.Manifest.Version != "1.0.0" {
			t.Fatalf("the server offered %s first, want 1.0.0", h.Manifest.Version)
		}
		return h
	}
	// swapped serves v1's manifest and signature once, then v2's; the
	// other files from v2 if swap says so.
	swapped := func(swap func(file string) bool) func(string, int) string {
		return func(file string, n int) string {
			if isManifest(file) && n == 1 || !isManifest(file) && !swap(file) {
				return v1
			}
			return v2
		}
	}

	for _, c := range []struct {
		name string
		swap func(file string) bool // which of the other files come from v2
		fail string                 // the error expected; "": none
	}{
		{"everything swapped", func(string) bool { return true }, "vmlinuz: sha256 is"},
		{"root.img swapped", func(f string) bool { return f == ota.RootFile }, "root.img"},
		{"manifest swapped", func(string) bool { return false }, ""},
	} {
		t.Run("web: "+c.name, func(t *testing.T) {
			srv := webFolder(t, swapped(c.swap), nil)
			s := source(t, srv.URL+"/stable/")
			h := head(t, s)
			dir := filepath.Join(t.TempDir(), "download")
			got, err := s.Download(ctx, h, dir, nil)
			checkSizes(t, dir, &h.Manifest)
			if c.fail != "" {
				if err == nil || !strings.Contains(err.Error(), c.fail) {
					t.Fatalf("Download: %v, want an error containing %q", err, c.fail)
				}
				for _, f := range []string{ota.RootFile, ota.ManifestFile, ota.SignatureFile} {
					if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
						t.Errorf("a failed download left %s", f)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The folder holds v1, with head's own manifest bytes: the
			// manifest was not fetched again.
			if !bytes.Equal(otatest.ReadFile(t, filepath.Join(dir, ota.ManifestFile)), raw1) {
				t.Error("the downloaded manifest.json is not the one verified")
			}
			if err := ota.Verify(ctx, got, policy, nil); err != nil || got.Manifest.Version != "1.0.0" {
				t.Fatalf("downloaded bundle: %s, %v", got.Manifest.Version, err)
			}
			otatest.SameFiles(t, b1, got)
		})
	}

	t.Run("web: endless root.img", func(t *testing.T) {
		signed, limit := b1.Manifest.Root.Size, 16*b1.Manifest.Root.Size
		dir := filepath.Join(t.TempDir(), "download")
		var sent atomic.Int64
		var seen atomic.Value // what the server saw in dir while sending
		srv := webFolder(t, func(file string, _ int) string {
			if file == ota.RootFile {
				return ""
			}
			return v1
		}, func(w http.ResponseWriter, r *http.Request) {
			// No Content-Length: the body goes on until the client hangs
			// up (or, should it not, at 16 times the signed size).
			buf := bytes.Repeat([]byte{0x5a}, 64<<10)
			for sent.Load() < limit && r.Context().Err() == nil {
				if _, err := w.Write(buf); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				sent.Add(int64(len(buf)))
				if s := oversize(dir, &b1.Manifest); s != "" {
					seen.CompareAndSwap(nil, s)
				}
			}
		})
		s := source(t, srv.URL+"/stable/")
		h := head(t, s)
		_, err := s.Download(ctx, h, dir, func(step string, done, total int64) {
			if done > total {
				t.Errorf("%s: %d of %d bytes", step, done, total)
			}
			checkSizes(t, dir, &h.Manifest)
		})
		if err == nil || !strings.Contains(err.Error(), "root.img: sha256 is") {
			t.Errorf("Download of an endless root.img: %v", err)
		}
		checkSizes(t, dir, &h.Manifest)
		if _, err := os.Stat(filepath.Join(dir, ota.RootFile)); !os.IsNotExist(err) {
			t.Error("the endless root.img was kept")
		}
		srv.Close() // waits for the handler
		if s, _ := seen.Load().(string); s != "" {
			t.Errorf("during the download: %s", s)
		}
		switch n := sent.Load(); {
		case n <= signed:
			t.Errorf("the server sent only %d bytes, the signed size is %d: the test proves nothing", n, signed)
		case n >= limit:
			t.Errorf("the server sent %d bytes: the client read the endless body to its end instead of hanging up after the signed %d", n, signed)
		}
	})

	// A registry tag moved to v2 after the manifest fetch: the files are
	// the blobs whose digests head signed, so v1 arrives exactly.
	t.Run("oci: tag moved", func(t *testing.T) {
		srv := otatest.Server(t.TempDir())
		defer srv.Close()
		ref := strings.TrimPrefix(srv.URL, "http://") + "/nodebake/node:stable"
		if _, err := bundler.Publish(ctx, b1, ref, testSigner, nil); err != nil {
			t.Fatal(err)
		}
		s := source(t, "oci://"+ref)
		h := head(t, s)
		if _, err := bundler.Publish(ctx, b2, ref, testSigner, nil); err != nil {
			t.Fatal(err)
		}
		if now, err := fetchManifest(ctx, s); err != nil || now.Manifest.Version != "2.0.0" {
			t.Fatalf("after the second push the tag offers %s (%v), want 2.0.0", now.Manifest.Version, err)
		}
		dir := filepath.Join(t.TempDir(), "download")
		got, err := s.Download(ctx, h, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(otatest.ReadFile(t, filepath.Join(dir, ota.ManifestFile)), raw1) {
			t.Error("the downloaded manifest.json is not the one verified")
		}
		if err := ota.Verify(ctx, got, policy, nil); err != nil || got.Manifest.Version != "1.0.0" {
			t.Fatalf("downloaded bundle: %s, %v", got.Manifest.Version, err)
		}
		otatest.SameFiles(t, b1, got)
	})
}

package ota

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcrrandom "github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// sameFiles checks that two bundles hold the same bytes.
func sameFiles(t *testing.T, want, got *Bundle) {
	t.Helper()
	if !bytes.Equal(want.raw, got.raw) || !bytes.Equal(want.sig, got.sig) {
		t.Error("manifest or signature differs")
	}
	for _, f := range []string{KernelFile, InitrdFile, RootFile} {
		a, _, err := want.OpenFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := got.OpenFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ab, _ := io.ReadAll(a)
		bb, _ := io.ReadAll(b)
		a.Close()
		b.Close()
		if !bytes.Equal(ab, bb) {
			t.Errorf("%s differs", f)
		}
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref := host + "/nodebake/node:2.0.0"
	ctx := context.Background()
	b := makeBundle(t, "2.0.0")

	var last [2]int64
	digest, err := Publish(ctx, b, ref, func(step string, done, total int64) { last = [2]int64{done, total} })
	if err != nil {
		t.Fatal(err)
	}
	if last[0] != last[1] || last[1] < b.Manifest.Root.Size {
		t.Errorf("publish progress ended at %d of %d bytes", last[0], last[1])
	}

	// The registry holds an OCI artifact: our artifactType, the empty
	// config, one layer per file with its own media type and title.
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != digest {
		t.Errorf("tag points at %s, Publish returned %s", desc.Digest, digest)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != ArtifactType || m.Config.MediaType != "application/vnd.oci.empty.v1+json" || m.Config.Size != 2 {
		t.Errorf("manifest: artifactType %q, config %+v", m.ArtifactType, m.Config)
	}
	if m.Annotations[annotationVersion] != "2.0.0" || m.Annotations[annotationCompatible] != testName {
		t.Errorf("manifest annotations: %v", m.Annotations)
	}
	if len(m.Layers) != len(files) {
		t.Fatalf("%d layers, want %d", len(m.Layers), len(files))
	}
	for i, l := range m.Layers {
		if l.MediaType != mediaTypes[files[i]] || l.Annotations[annotationTitle] != files[i] {
			t.Errorf("layer %d: %s titled %q, want %s for %s", i, l.MediaType, l.Annotations[annotationTitle], mediaTypes[files[i]], files[i])
		}
	}
	if root := m.Layers[len(m.Layers)-1]; root.Digest.Hex != b.Manifest.Root.SHA256 || root.Size != b.Manifest.Root.Size {
		t.Errorf("root layer %s (%d bytes), manifest says %s (%d bytes)", root.Digest, root.Size, b.Manifest.Root.SHA256, b.Manifest.Root.Size)
	}

	// A device checks the manifest first, then pulls the whole bundle.
	policy := Policy{Key: testPub, Running: Identity{Name: testName, Version: "1.0.0"}}
	head, err := PullManifest(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyManifest(head, policy); err != nil {
		t.Fatalf("pulled manifest: %v", err)
	}
	if err := Verify(ctx, head, policy, nil); err == nil || !strings.Contains(err.Error(), "only the manifest") {
		t.Errorf("Verify of a manifest-only bundle: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "download")
	pulled, err := Pull(ctx, ref, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(ctx, pulled, policy, nil); err != nil {
		t.Fatalf("pulled bundle: %v", err)
	}
	sameFiles(t, b, pulled)
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(leftovers) != 0 {
		t.Errorf("Pull left temporary files: %v", leftovers)
	}

	// Pulling again into the same directory replaces the files.
	if _, err := Pull(ctx, ref, dir, nil); err != nil {
		t.Fatalf("second pull into %s: %v", dir, err)
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
	if _, err := Pull(ctx, other, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "is not a nodebake bundle") {
		t.Errorf("pulling a container image: %v", err)
	}
	if _, err := PullManifest(ctx, host+"/nodebake/node:9.9.9"); err == nil || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
		t.Errorf("pulling a missing tag: %v", err)
	}
}

func TestStaticFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := makeBundle(t, "2.0.0")
	www := t.TempDir()
	if err := PublishDir(ctx, b, filepath.Join(www, "node", "stable"), nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(www)))
	defer srv.Close()
	base := srv.URL + "/node/stable/"

	policy := Policy{Key: testPub, Running: Identity{Name: testName, Version: "1.0.0"}}
	head, err := FetchManifest(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyManifest(head, policy); err != nil {
		t.Fatalf("fetched manifest: %v", err)
	}
	var steps []string
	fetched, err := Fetch(ctx, base, filepath.Join(t.TempDir(), "download"), func(step string, done, total int64) {
		if done == total && total > 0 {
			steps = append(steps, step)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(steps, " ") != "vmlinuz initrd.img root.img" {
		t.Errorf("progress finished steps %v", steps)
	}
	if err := Verify(ctx, fetched, policy, nil); err != nil {
		t.Fatalf("fetched bundle: %v", err)
	}
	sameFiles(t, b, fetched)

	// A root.img replaced on the server stops the download, and nothing
	// is renamed into place.
	rootPath := filepath.Join(www, "node", "stable", RootFile)
	data := readFile(t, rootPath)
	data[len(data)/2] ^= 0x80
	if err := os.WriteFile(rootPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "download")
	if _, err := Fetch(ctx, base, dir, nil); err == nil || !strings.Contains(err.Error(), "root.img: sha256 is") {
		t.Errorf("fetching a damaged root.img: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, RootFile)); !os.IsNotExist(err) {
		t.Error("a damaged root.img was kept")
	}
	if _, err := Fetch(ctx, srv.URL+"/node/missing/", dir, nil); err == nil || !strings.Contains(err.Error(), "404 Not Found") {
		t.Errorf("fetching from a missing directory: %v", err)
	}
}

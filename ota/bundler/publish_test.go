package bundler_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

// The single-file form of a bundle verifies as the folder does, and the
// same bundle always gives the same tar file.
func TestWriteTar(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := makeBundle(t, "2.0.0")
	policy := ota.Policy{Key: testPub, Running: ota.Identity{Name: testName, Version: "1.0.0"}}
	tarPath := filepath.Join(t.TempDir(), "node-2.0.0.bundle.tar")
	if err := bundler.WriteTar(b, tarPath); err != nil {
		t.Fatal(err)
	}
	fromTar, err := ota.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := ota.Verify(ctx, fromTar, policy, nil); err != nil {
		t.Fatalf("the bundle as a tar file: %v", err)
	}
	otatest.SameFiles(t, b, fromTar)
	again := tarPath + ".again"
	if err := bundler.WriteTar(fromTar, again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(otatest.ReadFile(t, tarPath), otatest.ReadFile(t, again)) {
		t.Error("writing the same bundle twice gives different tar files")
	}
}

// PublishDir writes the bundle's files, as they are, for a web server.
func TestPublishDir(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := makeBundle(t, "2.0.0")
	dir := filepath.Join(t.TempDir(), "www", "node", "stable")
	if err := bundler.PublishDir(ctx, b, dir, testSigner, nil); err != nil {
		t.Fatal(err)
	}
	got, err := ota.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	otatest.SameFiles(t, b, got)
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*")); len(leftovers) != 0 {
		t.Errorf("PublishDir left temporary files: %v", leftovers)
	}
	// Publishing again replaces the files.
	if err := bundler.PublishDir(ctx, b, dir, testSigner, nil); err != nil {
		t.Fatalf("second PublishDir into %s: %v", dir, err)
	}
}

// Publish pushes an OCI artifact: nodebake's artifactType, the empty
// config, one layer per file with its own media type and title, the
// manifest's hashes as the layers' digests. (ota's tests download it.)
func TestPublish(t *testing.T) {
	t.Parallel()
	srv := otatest.Server(t.TempDir())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref := host + "/nodebake/node:2.0.0"
	ctx := context.Background()
	b := makeBundle(t, "2.0.0")

	var last [2]int64
	digest, err := bundler.Publish(ctx, b, ref, testSigner, func(step string, done, total int64) { last = [2]int64{done, total} })
	if err != nil {
		t.Fatal(err)
	}
	if last[0] != last[1] || last[1] < b.Manifest.Root.Size {
		t.Errorf("publish progress ended at %d of %d bytes", last[0], last[1])
	}

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
	if m.ArtifactType != ota.ArtifactType || m.Config.MediaType != "application/vnd.oci.empty.v1+json" || m.Config.Size != 2 {
		t.Errorf("manifest: artifactType %q, config %+v", m.ArtifactType, m.Config)
	}
	if m.Annotations["org.opencontainers.image.version"] != "2.0.0" || m.Annotations["dev.nodebake.compatible"] != testName {
		t.Errorf("manifest annotations: %v", m.Annotations)
	}
	files := append(b.FileNames(), ota.ChannelFile, ota.ChannelSignatureFile)
	if len(m.Layers) != len(files) {
		t.Fatalf("%d layers, want %d", len(m.Layers), len(files))
	}
	for i, l := range m.Layers {
		if l.MediaType != ota.MediaType(files[i]) || l.Annotations["org.opencontainers.image.title"] != files[i] {
			t.Errorf("layer %d: %s titled %q, want %s for %s", i, l.MediaType, l.Annotations["org.opencontainers.image.title"], ota.MediaType(files[i]), files[i])
		}
	}
	if root := m.Layers[len(b.FileNames())-1]; root.Digest.Hex != b.Manifest.Root.SHA256 || root.Size != b.Manifest.Root.Size {
		t.Errorf("root layer %s (%d bytes), manifest says %s (%d bytes)", root.Digest, root.Size, b.Manifest.Root.SHA256, b.Manifest.Root.Size)
	}
}

// A refresh re-signs the channel's statement for the same bundle with the
// next counter and a new expiry; publishing anew counts on too. Only a
// statement of the signer's own key is refreshed.
func TestRefresh(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := makeBundle(t, "2.0.0")
	srv := otatest.Server(t.TempDir())
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/nodebake/node:stable"
	dir := filepath.Join(t.TempDir(), "stable")
	if _, err := bundler.Publish(ctx, b, ref, testSigner, nil); err != nil {
		t.Fatal(err)
	}
	if err := bundler.PublishDir(ctx, b, dir, testSigner, nil); err != nil {
		t.Fatal(err)
	}
	later := bundler.Signer{Key: testPriv, Expiry: time.Hour, Now: time.Now().Add(24 * time.Hour)}
	_, otherPriv := ota.GenerateKey()
	for where, refresh := range map[string]func(bundler.Signer) (ota.Channel, error){
		"registry": func(s bundler.Signer) (ota.Channel, error) { return bundler.Refresh(ctx, ref, s) },
		"folder":   func(s bundler.Signer) (ota.Channel, error) { return bundler.RefreshDir(dir, s) },
	} {
		c, err := refresh(later)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if c.Counter != 2 || c.Version != "2.0.0" || !c.Expires.Equal(later.Now.Add(time.Hour).UTC().Truncate(time.Second)) {
			t.Errorf("%s: refreshed to %+v", where, c)
		}
		if _, err := refresh(bundler.Signer{Key: otherPriv}); err == nil || !strings.Contains(err.Error(), "refreshing only re-signs a statement of this key's") {
			t.Errorf("%s: refresh with another key: %v", where, err)
		}
	}
	// What a device pulls from the registry now is the refreshed
	// statement, and the bundle is still there.
	s, err := ota.ParseSource("oci://"+ref, true)
	if err != nil {
		t.Fatal(err)
	}
	o, err := s.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ota.VerifyChannel(o, testPub, &ota.ChannelState{KeyID: ota.KeyID(testPub), Counter: 1}, later.Now)
	if err != nil || c.Channel.Counter != 2 {
		t.Fatalf("the registry after the refresh: %+v, %v", c, err)
	}
	if _, err := s.Download(ctx, o.Bundle, filepath.Join(t.TempDir(), "dl"), nil); err != nil {
		t.Errorf("downloading the bundle after the refresh: %v", err)
	}
	if err := bundler.PublishDir(ctx, b, dir, testSigner, nil); err != nil {
		t.Fatal(err)
	}
	if c, err := ota.ParseChannel(otatest.ReadFile(t, filepath.Join(dir, ota.ChannelFile))); err != nil || c.Counter != 3 {
		t.Errorf("publishing again after the refresh: %+v, %v", c, err)
	}
	if _, err := bundler.RefreshDir(t.TempDir(), testSigner); err == nil || !strings.Contains(err.Error(), "has no channel statement to refresh") {
		t.Errorf("refreshing an empty folder: %v", err)
	}
	// A bundle signed by another key is not put into a channel.
	if err := bundler.PublishDir(ctx, b, t.TempDir(), bundler.Signer{Key: otherPriv}, nil); err == nil || !strings.Contains(err.Error(), "the channel would name a bundle its devices refuse") {
		t.Errorf("publishing a bundle signed by another key: %v", err)
	}
}

package main

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
)

func TestKeygen(t *testing.T) {
	key := filepath.Join(t.TempDir(), "keys", "update")
	var out bytes.Buffer
	if err := keygen([]string{"-o", key}, &out); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(key)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v, mode %v", err, st.Mode())
	}
	if st, _ := os.Stat(filepath.Dir(key)); st.Mode().Perm() != 0o700 {
		t.Errorf("key folder mode %v", st.Mode().Perm())
	}
	priv, err := ota.LoadPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ota.LoadPublicKey(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) {
		t.Error("the .pub file is not the private key's public key")
	}
	// What it prints is a valid update: section, ready to paste.
	if !strings.Contains(out.String(), "update:\n  public_key: "+ota.FormatPublicKey(pub)+"\n") {
		t.Errorf("output:\n%s", out.String())
	}
	if err := keygen([]string{"-o", key}, io.Discard); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("second keygen: %v", err)
	}
	if again, _ := ota.LoadPrivateKey(key); !again.Equal(priv) {
		t.Error("the key was replaced")
	}
}

// bundle makes a tar file or a folder from an image; publish pushes either
// to a registry or writes it for a web server; a device's Verify accepts
// what comes back.
func TestBundleAndPublish(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := filepath.Join(dir, "update")
	if err := keygen([]string{"-o", key}, io.Discard); err != nil {
		t.Fatal(err)
	}
	pub, _ := ota.LoadPublicKey(key + ".pub")
	img := otatest.Image{Name: "node", Version: "2.0.0", UpdateKey: ota.FormatPublicKey(pub)}.Build(t, dir)
	policy := ota.Policy{Key: pub, Running: ota.Identity{Name: "node", Version: "1.0.0"}}

	var out, warn bytes.Buffer
	if err := makeBundle(ctx, []string{"-k", key, img}, &out, &warn); err != nil {
		t.Fatal(err)
	}
	tarFile := strings.TrimSuffix(img, ".img") + ".bundle.tar"
	if !strings.Contains(out.String(), "bundle "+tarFile+": node 2.0.0 for \"node\" devices, signed by key "+ota.KeyID(pub)) || warn.Len() != 0 {
		t.Errorf("bundle output:\n%s\nwarnings:\n%s", out.String(), warn.String())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".nodebake-bundle-*")); len(left) != 0 {
		t.Errorf("bundle left %v", left)
	}
	folder := filepath.Join(dir, "b2")
	if err := makeBundle(ctx, []string{"-q", "-k", key, "-o", folder, img}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{tarFile, folder} {
		opened, err := ota.Open(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := ota.Verify(ctx, opened, policy, nil); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
	if err := makeBundle(ctx, []string{"-k", key, "-o", folder, img}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("bundle over an existing folder: %v", err)
	}

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := "oci://" + strings.TrimPrefix(srv.URL, "http://") + "/node/stable:2"
	out.Reset()
	if err := publish(ctx, []string{tarFile, ref}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "pushed node 2.0.0 to "+ref+" (sha256:") || !strings.Contains(out.String(), "push: ") {
		t.Errorf("publish output:\n%s", out.String())
	}
	www := filepath.Join(dir, "www", "stable")
	if err := publish(ctx, []string{"-q", folder, www}, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{ref, "file"} {
		var got *ota.Bundle
		var err error
		if src == "file" {
			got, err = ota.Open(www)
		} else {
			s, _ := ota.ParseSource(src)
			var head *ota.Bundle
			if head, err = s.FetchManifest(ctx); err == nil {
				got, err = s.Download(ctx, head, filepath.Join(t.TempDir(), "dl"), nil)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := ota.Verify(ctx, got, policy, nil); err != nil {
			t.Errorf("published to %s: %v", src, err)
		}
	}
	if err := publish(ctx, []string{tarFile, "https://example.org/x/"}, io.Discard); err == nil || !strings.Contains(err.Error(), "upload it yourself") {
		t.Errorf("publish to https: %v", err)
	}
	if err := publish(ctx, []string{tarFile, "oci://example.org/x"}, io.Discard); err == nil || !strings.Contains(err.Error(), "want oci://REGISTRY/REPOSITORY:TAG") {
		t.Errorf("publish without a tag: %v", err)
	}
}

// A bundle whose image names another update key, or none, is still made,
// with a warning: devices that install it change what they trust.
func TestBundleKeyWarnings(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := filepath.Join(dir, "update")
	if err := keygen([]string{"-o", key}, io.Discard); err != nil {
		t.Fatal(err)
	}
	other, _ := ota.GenerateKey()
	for img, want := range map[string]string{
		otatest.Image{Name: "node", Version: "2.0.0"}.Build(t, t.TempDir()):                                        "names no update key",
		otatest.Image{Name: "node", Version: "3.0.0", UpdateKey: ota.FormatPublicKey(other)}.Build(t, t.TempDir()): "names update key " + ota.KeyID(other) + " but the bundle is signed with key",
	} {
		var warn bytes.Buffer
		if err := makeBundle(ctx, []string{"-q", "-k", key, img}, io.Discard, &warn); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(warn.String(), want) {
			t.Errorf("%s: warnings %q, want %q", img, warn.String(), want)
		}
	}
	if err := makeBundle(ctx, []string{"-k", key}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "want -k KEY and one image") {
		t.Errorf("no image: %v", err)
	}
}

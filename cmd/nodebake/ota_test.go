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
	"time"

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
	if err := publish(ctx, []string{"-k", key, tarFile, ref}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "pushed node 2.0.0 to "+ref+" (sha256:") || !strings.Contains(out.String(), "push: ") ||
		!strings.Contains(out.String(), "refresh before then (nodebake publish -k "+key+" --refresh "+ref+")") {
		t.Errorf("publish output:\n%s", out.String())
	}
	www := filepath.Join(dir, "www", "stable")
	if err := publish(ctx, []string{"-q", "-k", key, "--expires", "2h", folder, www}, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{ref, "file"} {
		var got *ota.Bundle
		var err error
		if src == "file" {
			got, err = ota.Open(www)
		} else {
			s, _ := ota.ParseSource(src, true)
			var o *ota.Offer
			if o, err = s.Fetch(ctx); err == nil {
				if _, err = ota.VerifyChannel(o, pub, nil, time.Now()); err == nil {
					got, err = s.Download(ctx, o.Bundle, filepath.Join(t.TempDir(), "dl"), nil)
				}
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := ota.Verify(ctx, got, policy, nil); err != nil {
			t.Errorf("published to %s: %v", src, err)
		}
	}
	// The folder's statement expires in two hours; a refresh counts on
	// and gives it the default week.
	c, err := ota.ParseChannel(readFile(t, filepath.Join(www, ota.ChannelFile)))
	if err != nil || c.Counter != 1 || c.Expires.Sub(c.Issued) != 2*time.Hour {
		t.Errorf("the folder's statement: %+v, %v", c, err)
	}
	for _, dest := range []string{www, ref} {
		out.Reset()
		if err := publish(ctx, []string{"-k", key, "--refresh", dest}, &out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "refreshed "+dest+": node 2.0.0, counter 2, expires ") {
			t.Errorf("refresh output:\n%s", out.String())
		}
	}
	if c, err := ota.ParseChannel(readFile(t, filepath.Join(www, ota.ChannelFile))); err != nil || c.Counter != 2 || c.Expires.Sub(c.Issued) != ota.DefaultExpiry {
		t.Errorf("the refreshed statement: %+v, %v", c, err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-k", key, tarFile, "https://example.org/x/"}, "upload it yourself"},
		{[]string{"-k", key, tarFile, "oci://example.org/x"}, "want oci://REGISTRY/REPOSITORY:TAG"},
		{[]string{tarFile, www}, "want -k KEY"},
		{[]string{"-k", key, "--refresh", tarFile, www}, "want -k KEY"},
		{[]string{"-k", key, "--expires", "-1h", tarFile, www}, "want a positive duration"},
	} {
		if err := publish(ctx, c.args, io.Discard); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("publish %v: %v, want %q", c.args, err, c.want)
		}
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

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// keygen --rotate-from makes a new key and the rotation to it, signed by
// the old key and chained to the rotations that led to the old key;
// publish sends the chain along, and a device that trusts the first key
// follows it to the last.
func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k1, k2, k3 := filepath.Join(dir, "update"), filepath.Join(dir, "update2"), filepath.Join(dir, "update3")
	if err := keygen([]string{"-o", k1}, io.Discard); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := keygen([]string{"--rotate-from", k1, "-o", k2}, &out); err != nil {
		t.Fatal(err)
	}
	pub1, _ := ota.LoadPublicKey(k1 + ".pub")
	pub2, _ := ota.LoadPublicKey(k2 + ".pub")
	if want := "key rotation       " + k2 + ".rotation (key " + ota.KeyID(pub1) + " → key " + ota.KeyID(pub2) + ", signed by " + k1 + ")"; !strings.Contains(out.String(), want) ||
		!strings.Contains(out.String(), "  public_key: "+ota.FormatPublicKey(pub2)+"\n") {
		t.Errorf("keygen --rotate-from output lacks %q:\n%s", want, out.String())
	}
	if err := keygen([]string{"--rotate-from", k2, "-o", k3}, io.Discard); err != nil {
		t.Fatal(err)
	}
	chain, err := ota.LoadRotations(k3 + ".rotation")
	if err != nil || len(chain) != 2 {
		t.Fatalf("%s.rotation: %d rotations, %v", k3, len(chain), err)
	}
	if err := keygen([]string{"--rotate-from", filepath.Join(dir, "missing"), "-o", filepath.Join(dir, "update4")}, io.Discard); err == nil {
		t.Error("keygen --rotate-from a missing key succeeded")
	}

	pub3, _ := ota.LoadPublicKey(k3 + ".pub")
	img := otatest.Image{Name: "node", Version: "2.0.0", UpdateKey: ota.FormatPublicKey(pub3)}.Build(t, dir)
	bundleDir := filepath.Join(dir, "b")
	if err := makeBundle(ctx, []string{"-q", "-k", k3, "-o", bundleDir, img}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := "oci://" + strings.TrimPrefix(srv.URL, "http://") + "/node/stable:2"
	if err := publish(ctx, []string{"-q", "-k", k3, bundleDir, ref}, io.Discard); err != nil {
		t.Fatal(err)
	}
	s, _ := ota.ParseSource(ref, true)
	o, err := s.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ota.VerifyChannel(o, pub1, nil, time.Now())
	if err != nil || !c.Key.Equal(pub3) || len(c.Rotations) != 2 {
		t.Fatalf("a device trusting the first key: %+v, %v", c, err)
	}
	if err := ota.VerifyManifest(o.Bundle, ota.Policy{Key: c.Key, Running: ota.Identity{Name: "node", Version: "1.0.0"}}); err != nil {
		t.Errorf("the bundle signed by the third key: %v", err)
	}
}

// release bundles and publishes a built image (--image: the build is
// the QEMU suite's to run) and reads back what devices will see; a
// destination that serves something else is caught.
func TestRelease(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := filepath.Join(dir, "update")
	if err := keygen([]string{"-o", key}, io.Discard); err != nil {
		t.Fatal(err)
	}
	pub, _ := ota.LoadPublicKey(key + ".pub")
	img := otatest.Image{Name: "node", Version: "2.0.0", UpdateKey: ota.FormatPublicKey(pub)}.Build(t, dir)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := "oci://" + strings.TrimPrefix(srv.URL, "http://") + "/node/stable:latest"
	www := filepath.Join(dir, "www")
	for _, to := range []string{ref, www} {
		var out, warn bytes.Buffer
		if err := release(ctx, []string{"-k", key, "--to", to, "--image", img}, &out, &warn); err != nil {
			t.Fatalf("release --to %s: %v\n%s%s", to, err, out.String(), warn.String())
		}
		for _, want := range []string{"==> release: bundle " + img, "==> release: publish to " + to,
			"devices looking at " + to + " now see node 2.0.0 (channel counter 1, valid until ", "signed by key " + ota.KeyID(pub)} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("release --to %s: output lacks %q:\n%s", to, want, out.String())
			}
		}
		if left, _ := filepath.Glob(filepath.Join(os.TempDir(), "nodebake-release-*")); len(left) != 0 {
			t.Errorf("release left %v", left)
		}
	}
	// The folder counts on with every release.
	if err := release(ctx, []string{"-q", "-k", key, "--to", www, "--image", img}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if c, err := ota.ParseChannel(readFile(t, filepath.Join(www, ota.ChannelFile))); err != nil || c.Counter != 2 {
		t.Errorf("the folder's statement after a second release: %+v, %v", c, err)
	}

	// Someone else's key signs what the folder serves: the read-back
	// refuses it.
	other := filepath.Join(dir, "other")
	if err := keygen([]string{"-o", other}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := release(ctx, []string{"-q", "-k", other, "--to", filepath.Join(dir, "www2"), "--image", img}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := seenByDevices(ctx, filepath.Join(dir, "www2"), pub, io.Discard); err == nil || !strings.Contains(err.Error(), "reading back") {
		t.Errorf("a folder signed by another key: %v", err)
	}
	if err := release(ctx, []string{"-k", key, img}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "want -k KEY and --to") {
		t.Errorf("release without --to: %v", err)
	}
}

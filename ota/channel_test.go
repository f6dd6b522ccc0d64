package ota_test

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

// channels publishes bundles into folders below www/bundles/ and serves
// them, and a registry, over plain HTTP and over TLS.
type channels struct {
	www           string
	plain, secure *httptest.Server
}

func newChannels(t *testing.T) *channels {
	t.Helper()
	c := &channels{www: t.TempDir()}
	h := otatest.Handler(c.www)
	c.plain, c.secure = httptest.NewServer(h), httptest.NewTLSServer(h)
	t.Cleanup(c.plain.Close)
	t.Cleanup(c.secure.Close)
	return c
}

// publish writes b into the folder name, its statement signed by s, and
// returns the folder's URL on the plain server.
func (c *channels) publish(t *testing.T, name string, b *ota.Bundle, s bundler.Signer) string {
	t.Helper()
	if err := bundler.PublishDir(context.Background(), b, filepath.Join(c.www, "bundles", name), s, nil); err != nil {
		t.Fatal(err)
	}
	return c.plain.URL + "/bundles/" + name + "/"
}

// offer fetches what the source text offers (insecure: plain HTTP is
// allowed).
func offer(t *testing.T, text string) *ota.Offer {
	t.Helper()
	o, err := source(t, text).Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func wantError(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: %v, want an error containing %q", what, err, want)
	}
}

// A channel statement names the current bundle, expires, and counts up;
// a device accepts only a fresh statement that is not older than the one
// it saw, and only the bundle it names.
func TestChannel(t *testing.T) {
	t.Parallel()
	b1, b2 := makeBundle(t, "1.0.0"), makeBundle(t, "2.0.0")
	c := newChannels(t)
	now := time.Now()

	url := c.publish(t, "stable", b2, testSigner)
	o := offer(t, url)
	got, err := ota.VerifyChannel(o, testPub, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Channel.Counter != 1 || got.Channel.Version != "2.0.0" || !got.Key.Equal(testPub) || len(got.Rotations) != 0 {
		t.Errorf("accepted %+v", got)
	}
	if d := got.Channel.Expires.Sub(now); d < ota.DefaultExpiry-time.Minute || d > ota.DefaultExpiry {
		t.Errorf("expires in %v, want the default %v", d, ota.DefaultExpiry)
	}
	if err := ota.VerifyManifest(o.Bundle, ota.Policy{Key: got.Key, Running: ota.Identity{Name: testName, Version: "1.0.0"}}); err != nil {
		t.Errorf("the manifest the channel names: %v", err)
	}
	seen := got.State

	// Expired: ten days after signing, with the default seven days.
	_, err = ota.VerifyChannel(o, testPub, nil, now.Add(10*24*time.Hour))
	wantError(t, "an expired statement", err, "update channel metadata expired 3 days ago ("+got.Channel.Expires.Format(time.RFC3339)+"): the publisher must refresh it (nodebake publish --refresh)")

	// Publishing again counts up; a mirror that goes on serving the
	// first statement is refused once the second was seen.
	if err := os.Rename(filepath.Join(c.www, "bundles", "stable"), filepath.Join(c.www, "bundles", "old")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(c.www, "bundles", "stable"), os.DirFS(filepath.Join(c.www, "bundles", "old"))); err != nil {
		t.Fatal(err)
	}
	if _, err := bundler.RefreshDir(filepath.Join(c.www, "bundles", "stable"), testSigner); err != nil {
		t.Fatal(err)
	}
	newer, err := ota.VerifyChannel(offer(t, url), testPub, &seen, now)
	if err != nil || newer.Channel.Counter != 2 || newer.Channel.ManifestSHA256 != got.Channel.ManifestSHA256 {
		t.Fatalf("refreshed statement: %+v, %v", newer, err)
	}
	_, err = ota.VerifyChannel(o, testPub, &newer.State, now)
	wantError(t, "the older statement after the newer one", err, "update channel metadata counter 1 is lower than 2, which this device already accepted")
	// The same statement again is fine; another with the same counter is not.
	if _, err := ota.VerifyChannel(o, testPub, &seen, now); err != nil {
		t.Errorf("the same statement again: %v", err)
	}
	other := seen
	other.StatementSHA256 = strings.Repeat("0", 64)
	_, err = ota.VerifyChannel(o, testPub, &other, now)
	wantError(t, "another statement with the same counter", err, "names a different statement than the one this device accepted")

	// A mirror that serves 1.0.0 (newer than what a device at 0.9 runs,
	// validly signed) with the channel's statement for 2.0.0.
	c.publish(t, "v1", b1, testSigner)
	mixed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dir := "stable"
		if f := filepath.Base(r.URL.Path); f == ota.ManifestFile || f == ota.SignatureFile {
			dir = "v1"
		}
		http.ServeFile(w, r, filepath.Join(c.www, "bundles", dir, filepath.Base(r.URL.Path)))
	}))
	defer mixed.Close()
	mo := offer(t, mixed.URL+"/")
	if err := ota.VerifyManifest(mo.Bundle, ota.Policy{Key: testPub, Running: ota.Identity{Name: testName, Version: "0.9.0"}}); err != nil {
		t.Fatalf("the old bundle is validly signed and newer than 0.9.0, or the test proves nothing: %v", err)
	}
	_, err = ota.VerifyChannel(mo, testPub, nil, now)
	wantError(t, "a bundle the statement does not name", err, "the source offers a bundle that is not the channel's current one (node 2.0.0")

	// A statement signed by another key.
	_, otherPriv := ota.GenerateKey()
	_, err = ota.VerifyChannel(offer(t, c.publish(t, "other", makeBundleSignedBy(t, "2.0.0", otherPriv), bundler.Signer{Key: otherPriv})), testPub, nil, now)
	wantError(t, "a statement by another key", err, "but this device accepts only key "+ota.KeyID(testPub))

	// A folder without a statement (published by hand, or by an older
	// nodebake).
	bare := filepath.Join(c.www, "bundles", "bare")
	if err := os.CopyFS(bare, os.DirFS(filepath.Join(c.www, "bundles", "old"))); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(bare, ota.ChannelFile))
	_, err = source(t, c.plain.URL+"/bundles/bare/").Fetch(context.Background())
	wantError(t, "a folder without a statement", err, "publishes no channel.json")
}

// makeBundleSignedBy is makeBundle with another key.
func makeBundleSignedBy(t *testing.T, version string, priv ed25519.PrivateKey) *ota.Bundle {
	t.Helper()
	b, err := bundler.Create(context.Background(), otatest.Image{Name: testName, Version: version}.Build(t, t.TempDir()), priv, filepath.Join(t.TempDir(), "bundle"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A source must be reached over TLS unless it is marked insecure: plain
// http:// URLs are refused outright, and a registry is not reached over
// plain HTTP even on 127.0.0.1, where go-containerregistry would try it.
func TestSourceNeedsTLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := makeBundle(t, "2.0.0")
	c := newChannels(t)
	c.publish(t, "stable", b, testSigner)
	plainHost := strings.TrimPrefix(c.plain.URL, "http://")
	if _, err := bundler.Publish(ctx, b, plainHost+"/nodebake/node:stable", testSigner, nil); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.secure.Certificate())
	secureHost := strings.TrimPrefix(c.secure.URL, "https://")

	_, err := ota.ParseSource(c.plain.URL+"/bundles/stable/", false)
	wantError(t, "an http:// source", err, "plain http lets anyone on the way watch and block the device's updates: use https://, or set update.insecure: true")
	s, err := ota.ParseSource("oci://"+plainHost+"/nodebake/node:stable", false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Fetch(ctx)
	wantError(t, "a registry over plain HTTP", err, "refusing plain http")

	for _, c := range []struct {
		text     string
		insecure bool
	}{
		{c.secure.URL + "/bundles/stable/", false},
		{"oci://" + secureHost + "/nodebake/node:stable", false},
		{c.plain.URL + "/bundles/stable/", true},
		{"oci://" + plainHost + "/nodebake/node:stable", true},
	} {
		s, err := ota.SourceTrusting(c.text, c.insecure, roots)
		if err != nil {
			t.Fatal(err)
		}
		h, err := fetchManifest(ctx, s)
		if err != nil {
			t.Errorf("%s (insecure %v): %v", c.text, c.insecure, err)
			continue
		}
		got, err := s.Download(ctx, h, filepath.Join(t.TempDir(), "dl"), nil)
		if err != nil {
			t.Fatalf("%s: %v", c.text, err)
		}
		otatest.SameFiles(t, b, got)
	}
}

// A device that trusts key A follows a rotation A→B, signed by A, to
// accept a channel and bundles signed by B. Without the rotation, or with
// one that A did not sign, B is refused.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	now := time.Now()
	newPub, newPriv := ota.GenerateKey()
	rotation := ota.RotateKey(testPriv, newPub, now)
	b := makeBundleSignedBy(t, "2.0.0", newPriv)
	c := newChannels(t)

	rotated := offer(t, c.publish(t, "rotated", b, bundler.Signer{Key: newPriv, Rotations: []ota.Rotation{rotation}}))
	got, err := ota.VerifyChannel(rotated, testPub, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Key.Equal(newPub) || len(got.Rotations) != 1 {
		t.Errorf("after the rotation: key %s, %d rotations used", ota.KeyID(got.Key), len(got.Rotations))
	}
	if err := ota.VerifyManifest(rotated.Bundle, ota.Policy{Key: got.Key, Running: ota.Identity{Name: testName, Version: "1.0.0"}}); err != nil {
		t.Errorf("a bundle signed by the new key: %v", err)
	}
	// A device that already trusts B, and the counter: a new key starts a
	// new count, so a statement by B is not compared with A's.
	if _, err := ota.VerifyChannel(rotated, newPub, &ota.ChannelState{KeyID: ota.KeyID(testPub), Counter: 99}, now); err != nil {
		t.Errorf("B's first statement after A's counter 99: %v", err)
	}

	_, err = ota.VerifyChannel(offer(t, c.publish(t, "unrotated", b, bundler.Signer{Key: newPriv})), testPub, nil, now)
	wantError(t, "B without the rotation", err, "update channel statement is signed by key "+ota.KeyID(newPub)+", but this device accepts only key "+ota.KeyID(testPub))

	_, thiefPriv := ota.GenerateKey()
	forged := ota.RotateKey(thiefPriv, newPub, now)
	forged.Statement = rotation.Statement // claims A→B, signed by someone else
	_, err = ota.VerifyChannel(offer(t, c.publish(t, "forged", b, bundler.Signer{Key: newPriv, Rotations: []ota.Rotation{forged}})), testPub, nil, now)
	wantError(t, "a rotation A did not sign", err, "key rotation key "+ota.KeyID(testPub)+" → key "+ota.KeyID(newPub)+" is signed by key ")

	// A thief of A signs A→X: a device that took A→B first ignores it.
	thiefPub, _ := ota.GenerateKey()
	stolen := ota.RotateKey(testPriv, thiefPub, now)
	if _, err := ota.VerifyChannel(offer(t, c.publish(t, "both", b, bundler.Signer{Key: newPriv, Rotations: []ota.Rotation{rotation, stolen}})), testPub, nil, now); err != nil {
		t.Errorf("A→B and then A→X: %v", err)
	}
}

package ota_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

func TestParseSource(t *testing.T) {
	for in, want := range map[string]string{
		"oci://ghcr.io/me/minibolt:stable":          "oci://ghcr.io/me/minibolt:stable",
		"oci://10.0.2.100/nodebake/minibolt:2.0.0":  "oci://10.0.2.100/nodebake/minibolt:2.0.0",
		"oci://localhost:5000/node@sha256:" + hex64: "oci://localhost:5000/node@sha256:" + hex64,
		"https://updates.example.org/minibolt/":     "https://updates.example.org/minibolt/",
		"  http://10.0.2.100/bundles/stable  ":      "http://10.0.2.100/bundles/stable",
	} {
		s, err := ota.ParseSource(in, true)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if s.String() != want || s.IsZero() {
			t.Errorf("%q reads back as %q", in, s)
		}
	}
	for in, want := range map[string]string{
		"ghcr.io/me/minibolt:stable":  "want oci://REGISTRY/REPOSITORY:TAG or the https:// URL",
		"oci://minibolt:stable":       "want oci://REGISTRY/REPOSITORY:TAG",
		"oci://ghcr.io/me/minibolt":   "want oci://REGISTRY/REPOSITORY:TAG",
		"oci://ghcr.io/Me/minibolt:x": "want oci://REGISTRY/REPOSITORY:TAG",
		"ftp://example.org/bundles/":  "or the https:// URL",
		"https:///bundles":            "or the https:// URL",
		"https://example.org/b?tag=1": "takes no ?query",
		"":                            "want oci://",
	} {
		if _, err := ota.ParseSource(in, true); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error containing %q", in, err, want)
		}
	}
	if !(ota.Source{}).IsZero() {
		t.Error("the zero Source is not IsZero")
	}
	if _, err := (ota.Source{}).Fetch(context.Background()); err == nil {
		t.Error("the zero Source fetched something")
	}
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// One server answers as an OCI registry under /v2/ and serves bundle
// folders under /bundles/, as the QEMU tests set it up; a Source of either
// kind finds the same bundle.
func TestSourceDownloads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := makeBundle(t, "2.0.0")
	www := t.TempDir()
	if err := bundler.PublishDir(ctx, b, filepath.Join(www, "bundles", "stable"), testSigner, nil); err != nil {
		t.Fatal(err)
	}
	srv := otatest.Server(www)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	if _, err := bundler.Publish(ctx, b, host+"/nodebake/node:stable", testSigner, nil); err != nil {
		t.Fatal(err)
	}

	policy := ota.Policy{Key: testPub, Running: ota.Identity{Name: testName, Version: "1.0.0"}}
	for _, text := range []string{"oci://" + host + "/nodebake/node:stable", srv.URL + "/bundles/stable/"} {
		s, err := ota.ParseSource(text, true)
		if err != nil {
			t.Fatal(err)
		}
		head, err := fetchManifest(ctx, s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if err := ota.VerifyManifest(head, policy); err != nil {
			t.Fatalf("%s: manifest: %v", s, err)
		}
		got, err := s.Download(ctx, head, filepath.Join(t.TempDir(), "download"), nil)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if err := ota.Verify(ctx, got, policy, nil); err != nil {
			t.Fatalf("%s: bundle: %v", s, err)
		}
		otatest.SameFiles(t, b, got)
	}
}

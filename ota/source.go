package ota

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Source is where a device looks for updates: an OCI registry (the bundle
// pushed by Publish) or the URL of a directory written by PublishDir. Its
// text form is what image.yaml's update.source holds and the image bakes
// in: "oci://REGISTRY/REPOSITORY:TAG" or an http:// or https:// URL.
type Source struct {
	ref string // OCI reference without "oci://"; "" for a URL
	url string
}

const ociScheme = "oci://"

// ParseSource reads the text form of a source.
func ParseSource(s string) (Source, error) {
	s = strings.TrimSpace(s)
	if ref, ok := strings.CutPrefix(s, ociScheme); ok {
		// Strict: the registry and the tag must be written out, so that a
		// device never goes to Docker Hub or ":latest" by default.
		if _, err := name.ParseReference(ref, name.StrictValidation); err != nil {
			return Source{}, fmt.Errorf("update source %q: want oci://REGISTRY/REPOSITORY:TAG (e.g. oci://ghcr.io/me/minibolt:stable): %v", clip(s), err)
		}
		return Source{ref: ref}, nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Source{}, fmt.Errorf("update source %q: want oci://REGISTRY/REPOSITORY:TAG or the http:// or https:// URL of a folder written by nodebake publish", clip(s))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return Source{}, fmt.Errorf("update source %q: the URL of a bundle folder takes no ?query or #fragment", clip(s))
	}
	return Source{url: u.String()}, nil
}

// String is the text form.
func (s Source) String() string {
	if s.ref != "" {
		return ociScheme + s.ref
	}
	return s.url
}

// IsZero reports whether s is the zero Source (none configured).
func (s Source) IsZero() bool { return s.ref == "" && s.url == "" }

// FetchManifest downloads only the manifest and signature of the bundle
// the source offers (PullManifest or FetchManifest), for VerifyManifest.
func (s Source) FetchManifest(ctx context.Context) (*Bundle, error) {
	switch {
	case s.ref != "":
		return PullManifest(ctx, s.ref)
	case s.url != "":
		return FetchManifest(ctx, s.url)
	}
	return nil, fmt.Errorf("no update source")
}

// Download fetches the whole bundle into dir (Pull or Fetch); call Verify
// next.
func (s Source) Download(ctx context.Context, dir string, progress Progress) (*Bundle, error) {
	switch {
	case s.ref != "":
		return Pull(ctx, s.ref, dir, progress)
	case s.url != "":
		return Fetch(ctx, s.url, dir, progress)
	}
	return nil, fmt.Errorf("no update source")
}

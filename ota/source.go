package ota

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nodebake/nodebake/internal/atomicfile"
)

// Source is where a device looks for updates: an OCI registry (the bundle
// pushed by `nodebake publish oci://…`) or the URL of a folder written by
// `nodebake publish DIR`. Its text form is what image.yaml's update.source
// holds and the image bakes in: "oci://REGISTRY/REPOSITORY:TAG" or an
// https:// URL (http:// only for an insecure source).
type Source struct {
	text string
	f    fetcher
}

// fetcher is one way of reaching a published channel. It only moves
// bytes: what they must be comes from signed files, never from the server.
type fetcher interface {
	// small fetches the small files of a channel (channel, rotations,
	// manifest and their signatures), each at most maxManifest bytes. A
	// file that is not published is left out of the map.
	small(ctx context.Context, names []string) (map[string][]byte, error)
	// open starts downloading a bundle file that the manifest records as
	// want. The caller reads exactly want.Size bytes and checks them.
	open(ctx context.Context, file string, want File) (io.ReadCloser, error)
	// openRange starts downloading n bytes from offset off of a bundle
	// file that the manifest records as want. The caller reads at most n
	// bytes and checks them. errNoRanges: the server sends only whole
	// files.
	openRange(ctx context.Context, file string, want File, off, n int64) (io.ReadCloser, error)
}

const ociScheme = "oci://"

// ParseSource reads the text form of a source. Unless insecure (the
// image's update.insecure, for a lab network), it must be reached over
// TLS: an https:// URL, or a registry that answers over https — even one
// on a private address, where the registry client would otherwise fall
// back to plain HTTP.
func ParseSource(s string, insecure bool) (Source, error) {
	return newSource(s, insecure, nil)
}

// newSource is ParseSource with the certificate authorities to trust
// (nil: the system's).
func newSource(s string, insecure bool, roots *x509.CertPool) (Source, error) {
	s = strings.TrimSpace(s)
	if ref, ok := strings.CutPrefix(s, ociScheme); ok {
		// Strict: the registry and the tag must be written out, so that a
		// device never goes to Docker Hub or ":latest" by default.
		r, err := name.ParseReference(ref, name.StrictValidation)
		if err != nil {
			return Source{}, fmt.Errorf("update source %q: want oci://REGISTRY/REPOSITORY:TAG (e.g. oci://ghcr.io/me/minibolt:stable): %v", clip(s), err)
		}
		return Source{text: s, f: ociRegistry{ref: r, transport: transport(insecure, roots)}}, nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Source{}, fmt.Errorf("update source %q: want oci://REGISTRY/REPOSITORY:TAG or the https:// URL of a folder written by nodebake publish", clip(s))
	}
	if u.Scheme == "http" && !insecure {
		return Source{}, fmt.Errorf("update source %q: plain http lets anyone on the way watch and block the device's updates: use https://, or set update.insecure: true in image.yaml (a lab network only)", clip(s))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return Source{}, fmt.Errorf("update source %q: the URL of a bundle folder takes no ?query or #fragment", clip(s))
	}
	return Source{text: u.String(), f: webFolder{base: u.String(), client: webClient(insecure, roots)}}, nil
}

// String is the text form.
func (s Source) String() string { return s.text }

// IsZero reports whether s is the zero Source (none configured).
func (s Source) IsZero() bool { return s.f == nil }

// Fetch downloads what the source offers, without the bulk: the channel
// statement and its key rotations, and the manifest and signature of the
// bundle. VerifyChannel and then VerifyManifest decide whether the update
// is worth downloading.
func (s Source) Fetch(ctx context.Context) (*Offer, error) {
	if s.f == nil {
		return nil, fmt.Errorf("no update source")
	}
	got, err := s.f.small(ctx, []string{ChannelFile, ChannelSignatureFile, RotationsFile, ManifestFile, SignatureFile})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	for _, f := range []string{ChannelFile, ChannelSignatureFile, ManifestFile, SignatureFile} {
		if got[f] == nil {
			return nil, fmt.Errorf("%s publishes no %s: publish the bundle with nodebake publish -k KEY, which signs the channel too", s, f)
		}
	}
	o := &Offer{Bundle: manifestOnly(got[ManifestFile], got[SignatureFile]), channel: got[ChannelFile], channelSig: got[ChannelSignatureFile]}
	if r := got[RotationsFile]; r != nil {
		if o.rotations, err = parseRotations(r); err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
	}
	return o, nil
}

// Download fetches the files of the bundle whose manifest is head into
// dir and opens the result; call Verify next. head must be the manifest
// that VerifyManifest accepted: the download goes by its signed sizes and
// hashes alone and keeps its bytes, so a server that changes the bundle
// between the two fetches, or sends more than was signed, is caught at
// the first wrong byte and cannot fill the disk.
func (s Source) Download(ctx context.Context, head *Bundle, dir string, progress Progress) (*Bundle, error) {
	if s.f == nil {
		return nil, fmt.Errorf("no update source")
	}
	if head.parseErr != nil {
		return nil, fmt.Errorf("%s: %w", s, head.parseErr)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for _, f := range head.Manifest.Files() {
		want := head.Manifest.File(f)
		body, err := s.f.open(ctx, f, want)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", s, f, err)
		}
		_, err = SaveFile(ctx, dir, f, body, want.Size, func(got File) error { return checkFile(f, got, want) }, progress)
		body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", s, f, err)
		}
	}
	// The manifest goes last: until the other files are complete, dir
	// holds no manifest that describes them.
	if err := atomicfile.Write(filepath.Join(dir, SignatureFile), head.sig, 0o644); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(dir, ManifestFile), head.raw, 0o644); err != nil {
		return nil, err
	}
	return Open(dir)
}

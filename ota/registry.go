package ota

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	regtransport "github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RegistryOptions are how both sides reach a registry: credentials come
// from the usual docker config, if any. A publisher reaches registries on
// localhost and private addresses over plain HTTP if they do not answer
// HTTPS (go-containerregistry's rule); a device adds its own transport
// (see transport).
func RegistryOptions(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
}

// MediaType is the media type of a bundle file's layer.
func MediaType(file string) types.MediaType { return mediaTypes[file] }

// ArtifactType marks an OCI manifest as a nodebake bundle.
const ArtifactType = "application/vnd.nodebake.bundle.v1"

// mediaTypes gives each bundle file's layer its media type. A device goes
// by these, never by a layer's title, to find the files.
var mediaTypes = map[string]types.MediaType{
	ManifestFile:  "application/vnd.nodebake.bundle.manifest.v1+json",
	SignatureFile: "application/vnd.nodebake.bundle.signature.v1",
	KernelFile:    "application/vnd.nodebake.bundle.kernel.v1",
	InitrdFile:    "application/vnd.nodebake.bundle.initrd.v1",
	RootFile:      "application/vnd.nodebake.bundle.root.v1",

	ChannelFile:          "application/vnd.nodebake.channel.v1+json",
	ChannelSignatureFile: "application/vnd.nodebake.channel.signature.v1",
	RotationsFile:        "application/vnd.nodebake.key-rotations.v1+json",
}

// ociRegistry is an OCI registry holding the bundle pushed by `nodebake
// publish oci://…` under a tag.
type ociRegistry struct {
	ref       name.Reference
	transport http.RoundTripper
}

// transport is how a device reaches a registry: over TLS only, unless
// insecure; roots are the certificate authorities to trust (nil: the
// system's).
func transport(insecure bool, roots *x509.CertPool) http.RoundTripper {
	t := remote.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: roots}
	if insecure {
		return t
	}
	return tlsOnly{t}
}

// tlsOnly refuses plain HTTP. go-containerregistry tries plain HTTP for a
// registry on localhost or a private address when HTTPS fails, and would
// follow a redirect to it; a secure source must not.
type tlsOnly struct{ next http.RoundTripper }

func (t tlsOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" {
		return nil, fmt.Errorf("refusing plain http (%s): the update source must be reached over TLS; set update.insecure: true in image.yaml only on a lab network", r.URL.Redacted())
	}
	return t.next.RoundTrip(r)
}

func (g ociRegistry) options(ctx context.Context) []remote.Option {
	return append(RegistryOptions(ctx), remote.WithTransport(g.transport))
}

// small finds the channel's small files by media type in the OCI manifest
// the tag names, and reads them. Only they are found that way: the other
// files are fetched by the digests their signed records give.
func (g ociRegistry) small(ctx context.Context, names []string) (map[string][]byte, error) {
	desc, err := remote.Get(g.ref, g.options(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", g.ref, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, err
	}
	if m.ArtifactType != ArtifactType {
		return nil, fmt.Errorf("not a nodebake bundle (artifactType %q, want %q)", m.ArtifactType, ArtifactType)
	}
	got := map[string][]byte{}
	for _, f := range names {
		var found []v1.Descriptor
		for _, l := range m.Layers {
			if l.MediaType == mediaTypes[f] {
				found = append(found, l)
			}
		}
		if len(found) == 0 {
			continue
		}
		if len(found) != 1 {
			return nil, fmt.Errorf("want one layer of type %s (%s), found %d", mediaTypes[f], f, len(found))
		}
		d := found[0]
		if d.Size > maxManifest {
			return nil, fmt.Errorf("%s is %d bytes: too large", f, d.Size)
		}
		rc, err := g.blob(ctx, d.Digest)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, maxManifest+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if sum := sha256.Sum256(b); int64(len(b)) != d.Size || hex.EncodeToString(sum[:]) != d.Digest.Hex {
			return nil, fmt.Errorf("%s: the blob does not match its descriptor (%d bytes, %s)", f, d.Size, d.Digest)
		}
		got[f] = b
	}
	return got, nil
}

// open fetches a file as the blob whose digest is the file's signed
// sha256: what the registry's own manifest says about it plays no part.
func (g ociRegistry) open(ctx context.Context, _ string, want File) (io.ReadCloser, error) {
	return g.blob(ctx, v1.Hash{Algorithm: "sha256", Hex: want.SHA256})
}

// openRange asks the registry for part of the blob whose digest is the
// file's signed sha256, with a range request on the blob URL of the
// distribution API (registries serve ranges of blobs, or redirect to
// storage that does), authenticated as go-containerregistry does for a
// pull.
func (g ociRegistry) openRange(ctx context.Context, _ string, want File, off, n int64) (io.ReadCloser, error) {
	repo := g.ref.Context()
	auth, err := authn.DefaultKeychain.Resolve(repo)
	if err != nil {
		return nil, err
	}
	rt, err := regtransport.NewWithContext(ctx, repo.Registry, auth, g.transport, []string{repo.Scope(regtransport.PullScope)})
	if err != nil {
		return nil, err
	}
	u := url.URL{Scheme: repo.Scheme(), Host: repo.RegistryStr(), Path: fmt.Sprintf("/v2/%s/blobs/sha256:%s", repo.RepositoryStr(), want.SHA256)}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	return rangeResponse(&http.Client{Transport: rt}, req, want.Size, off, n)
}

// blob starts downloading a blob from the repository.
func (g ociRegistry) blob(ctx context.Context, h v1.Hash) (io.ReadCloser, error) {
	l, err := remote.Layer(g.ref.Context().Digest(h.String()), g.options(ctx)...)
	if err != nil {
		return nil, err
	}
	return l.Compressed()
}

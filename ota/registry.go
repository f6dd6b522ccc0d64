package ota

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RegistryOptions are how both sides reach a registry. Registries on
// localhost and private addresses are reached over plain HTTP
// (go-containerregistry's rule), others over HTTPS; credentials come from
// the usual docker config, if any.
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
}

// ociRegistry is an OCI registry holding the bundle pushed by `nodebake
// publish oci://…` under a tag.
type ociRegistry struct{ ref name.Reference }

// signed finds the manifest and signature layers by media type in the OCI
// manifest the tag names, and reads them. Only they are found that way:
// the other files are fetched by the digests their signed records give.
func (g ociRegistry) signed(ctx context.Context) (raw, sig []byte, err error) {
	desc, err := remote.Get(g.ref, RegistryOptions(ctx)...)
	if err != nil {
		return nil, nil, fmt.Errorf("pulling %s: %w", g.ref, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, nil, err
	}
	if m.ArtifactType != ArtifactType {
		return nil, nil, fmt.Errorf("not a nodebake bundle (artifactType %q, want %q)", m.ArtifactType, ArtifactType)
	}
	for f, dst := range map[string]*[]byte{ManifestFile: &raw, SignatureFile: &sig} {
		var found []v1.Descriptor
		for _, l := range m.Layers {
			if l.MediaType == mediaTypes[f] {
				found = append(found, l)
			}
		}
		if len(found) != 1 {
			return nil, nil, fmt.Errorf("want one layer of type %s (%s), found %d", mediaTypes[f], f, len(found))
		}
		d := found[0]
		if d.Size > maxManifest {
			return nil, nil, fmt.Errorf("%s is %d bytes: too large", f, d.Size)
		}
		rc, err := g.blob(ctx, d.Digest)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f, err)
		}
		*dst, err = io.ReadAll(io.LimitReader(rc, maxManifest+1))
		rc.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f, err)
		}
		if sum := sha256.Sum256(*dst); int64(len(*dst)) != d.Size || hex.EncodeToString(sum[:]) != d.Digest.Hex {
			return nil, nil, fmt.Errorf("%s: the blob does not match its descriptor (%d bytes, %s)", f, d.Size, d.Digest)
		}
	}
	return raw, sig, nil
}

// open fetches a file as the blob whose digest is the file's signed
// sha256: what the registry's own manifest says about it plays no part.
func (g ociRegistry) open(ctx context.Context, _ string, want File) (io.ReadCloser, error) {
	return g.blob(ctx, v1.Hash{Algorithm: "sha256", Hex: want.SHA256})
}

// blob starts downloading a blob from the repository.
func (g ociRegistry) blob(ctx context.Context, h v1.Hash) (io.ReadCloser, error) {
	l, err := remote.Layer(g.ref.Context().Digest(h.String()), RegistryOptions(ctx)...)
	if err != nil {
		return nil, err
	}
	return l.Compressed()
}

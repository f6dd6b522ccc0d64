package ota

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ArtifactType marks an OCI manifest as a nodebake bundle.
const ArtifactType = "application/vnd.nodebake.bundle.v1"

// mediaTypes gives each bundle file's layer its media type. Pull goes by
// these, never by a layer's title, to name the files it writes.
var mediaTypes = map[string]types.MediaType{
	ManifestFile:  "application/vnd.nodebake.bundle.manifest.v1+json",
	SignatureFile: "application/vnd.nodebake.bundle.signature.v1",
	KernelFile:    "application/vnd.nodebake.bundle.kernel.v1",
	InitrdFile:    "application/vnd.nodebake.bundle.initrd.v1",
	RootFile:      "application/vnd.nodebake.bundle.root.v1",
}

// Annotations on the OCI manifest, so a registry's UI and `crane manifest`
// show what a tag holds.
const (
	annotationTitle      = "org.opencontainers.image.title"
	annotationVersion    = "org.opencontainers.image.version"
	annotationCompatible = "dev.nodebake.compatible"
)

// emptyConfig is the OCI empty descriptor's content, the config of an
// artifact that needs none.
var emptyConfig = []byte("{}")

func registryOptions(ctx context.Context) []remote.Option {
	// Registries on localhost and private addresses are reached over plain
	// HTTP (go-containerregistry's rule), others over HTTPS; credentials
	// come from the usual docker config, if any.
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
}

// Publish pushes a bundle to an OCI registry under ref
// ("registry/repository:tag") and returns the manifest's digest.
func Publish(ctx context.Context, b *Bundle, ref string, progress Progress) (string, error) {
	r, err := name.NewTag(ref)
	if err != nil {
		return "", fmt.Errorf("%q: want registry/repository:tag: %w", ref, err)
	}
	if err := b.whole(); err != nil {
		return "", err
	}
	a := &artifact{b: b, layers: map[v1.Hash]*fileLayer{}}
	cfg := sha256.Sum256(emptyConfig)
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config: v1.Descriptor{
			MediaType: types.OCIEmptyJSON,
			Size:      int64(len(emptyConfig)),
			Digest:    v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(cfg[:])},
		},
		Annotations: map[string]string{
			annotationTitle:      b.Manifest.Name,
			annotationVersion:    b.Manifest.Version,
			annotationCompatible: b.Manifest.Compatible,
		},
	}
	for _, f := range files {
		l := &fileLayer{b: b, name: f}
		switch f {
		case ManifestFile:
			l.size, l.sum = int64(len(b.raw)), sha256.Sum256(b.raw)
		case SignatureFile:
			l.size, l.sum = int64(len(b.sig)), sha256.Sum256(b.sig)
		default:
			// The manifest's hashes are the layers' digests; the registry
			// checks them as it receives the bytes.
			rec := b.Manifest.file(f)
			sum, err := hex.DecodeString(rec.SHA256)
			if err != nil || len(sum) != sha256.Size {
				return "", fmt.Errorf("manifest: %s sha256 %q is not a sha256", f, rec.SHA256)
			}
			l.size = rec.Size
			copy(l.sum[:], sum)
		}
		d, _ := l.Digest()
		a.layers[d] = l
		m.Layers = append(m.Layers, v1.Descriptor{
			MediaType:   mediaTypes[f],
			Size:        l.size,
			Digest:      d,
			Annotations: map[string]string{annotationTitle: f},
		})
	}
	if a.manifest, err = json.Marshal(m); err != nil {
		return "", err
	}
	img, err := partial.CompressedToImage(a)
	if err != nil {
		return "", err
	}

	updates := make(chan v1.Update, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for u := range updates {
			progress.report("publish", u.Complete, u.Total)
		}
	}()
	err = remote.Write(r, img, append(registryOptions(ctx), remote.WithProgress(updates))...)
	<-done
	if err != nil {
		return "", fmt.Errorf("publishing to %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// artifact is the bundle as go-containerregistry's image model sees it:
// a raw manifest, the empty config, and layers read from the bundle.
type artifact struct {
	b        *Bundle
	manifest []byte
	layers   map[v1.Hash]*fileLayer
}

func (a *artifact) RawConfigFile() ([]byte, error)      { return emptyConfig, nil }
func (a *artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *artifact) RawManifest() ([]byte, error)        { return a.manifest, nil }
func (a *artifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	l, ok := a.layers[h]
	if !ok {
		return nil, fmt.Errorf("bundle has no layer %s", h)
	}
	return l, nil
}

// fileLayer is one bundle file as a registry blob, stored as is.
type fileLayer struct {
	b    *Bundle
	name string
	size int64
	sum  [sha256.Size]byte
}

func (l *fileLayer) Digest() (v1.Hash, error) {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(l.sum[:])}, nil
}
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return mediaTypes[l.name], nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error) {
	switch l.name {
	case ManifestFile:
		return io.NopCloser(bytes.NewReader(l.b.raw)), nil
	case SignatureFile:
		return io.NopCloser(bytes.NewReader(l.b.sig)), nil
	}
	r, _, err := l.b.openFile(l.name)
	return r, err
}

// Pull downloads the bundle at ref into the directory dir (created if
// needed; files already there are replaced) and opens it. Every blob is
// checked against its digest while it streams in; call Verify next.
func Pull(ctx context.Context, ref, dir string, progress Progress) (*Bundle, error) {
	r, layers, err := pullManifest(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// The manifest goes last: until the other files are complete, dir
	// holds no manifest that describes them.
	for _, f := range []string{SignatureFile, KernelFile, InitrdFile, RootFile, ManifestFile} {
		d := layers[f]
		rc, err := openLayer(ctx, r, d)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", ref, f, err)
		}
		_, err = saveFile(ctx, dir, f, rc, d.Size, d.matches, progress)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", ref, f, err)
		}
	}
	return Open(dir)
}

// PullManifest fetches only the manifest and signature of the bundle at
// ref, to check with VerifyManifest whether it is worth downloading.
func PullManifest(ctx context.Context, ref string) (*Bundle, error) {
	r, layers, err := pullManifest(ctx, ref)
	if err != nil {
		return nil, err
	}
	var raw, sig []byte
	for f, dst := range map[string]*[]byte{ManifestFile: &raw, SignatureFile: &sig} {
		d := layers[f]
		if d.Size > maxManifest {
			return nil, fmt.Errorf("%s: %s is %d bytes: too large", ref, f, d.Size)
		}
		rc, err := openLayer(ctx, r, d)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", ref, f, err)
		}
		*dst, err = io.ReadAll(io.LimitReader(rc, maxManifest+1))
		rc.Close()
		if err == nil {
			sum := sha256.Sum256(*dst)
			err = d.matches(File{Size: int64(len(*dst)), SHA256: hex.EncodeToString(sum[:])})
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", ref, f, err)
		}
	}
	return manifestOnly(raw, sig), nil
}

// pullManifest fetches the OCI manifest at ref and finds each bundle
// file's layer by media type.
func pullManifest(ctx context.Context, ref string) (name.Reference, map[string]layer, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, nil, fmt.Errorf("%q: want registry/repository:tag: %w", ref, err)
	}
	desc, err := remote.Get(r, registryOptions(ctx)...)
	if err != nil {
		return nil, nil, fmt.Errorf("pulling %s: %w", ref, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", ref, err)
	}
	if m.ArtifactType != ArtifactType {
		return nil, nil, fmt.Errorf("%s is not a nodebake bundle (artifactType %q, want %q)", ref, m.ArtifactType, ArtifactType)
	}
	byType := map[types.MediaType]string{}
	for f, mt := range mediaTypes {
		byType[mt] = f
	}
	layers := map[string]layer{}
	for _, l := range m.Layers {
		f, ok := byType[l.MediaType]
		if !ok {
			return nil, nil, fmt.Errorf("%s: unexpected layer of type %q", ref, l.MediaType)
		}
		if _, dup := layers[f]; dup {
			return nil, nil, fmt.Errorf("%s: two layers hold %s", ref, f)
		}
		layers[f] = layer(l)
	}
	for _, f := range files {
		if _, ok := layers[f]; !ok {
			return nil, nil, fmt.Errorf("%s: the bundle lacks %s", ref, f)
		}
	}
	return r, layers, nil
}

// openLayer starts downloading a layer's blob from r's repository.
func openLayer(ctx context.Context, r name.Reference, d layer) (io.ReadCloser, error) {
	l, err := remote.Layer(r.Context().Digest(d.Digest.String()), registryOptions(ctx)...)
	if err != nil {
		return nil, err
	}
	return l.Compressed()
}

// layer is a bundle file's OCI descriptor.
type layer v1.Descriptor

// matches checks a downloaded blob against its descriptor.
func (d layer) matches(got File) error {
	if got.Size != d.Size || "sha256:"+got.SHA256 != d.Digest.String() {
		return fmt.Errorf("blob is %d bytes with digest sha256:%s, its descriptor says %d bytes, %s", got.Size, got.SHA256, d.Size, d.Digest)
	}
	return nil
}

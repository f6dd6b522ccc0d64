package bundler

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nodebake/nodebake/internal/atomicfile"
	"github.com/nodebake/nodebake/ota"
)

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

// Publish pushes a bundle to an OCI registry under ref
// ("registry/repository:tag"), with a channel statement signed by s that
// names it, and returns the OCI manifest's digest.
func Publish(ctx context.Context, b *ota.Bundle, ref string, s Signer, progress ota.Progress) (string, error) {
	r, err := name.NewTag(ref)
	if err != nil {
		return "", fmt.Errorf("%q: want registry/repository:tag: %w", ref, err)
	}
	prev, err := registryChannel(ctx, r)
	if err != nil {
		return "", err
	}
	channel, err := s.channel(b, prev)
	if err != nil {
		return "", err
	}
	raw, sig := b.Signed()
	a := &artifact{b: b, layers: map[v1.Hash]*fileLayer{}}
	cfg := sha256.Sum256(emptyConfig)
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ota.ArtifactType,
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
	for _, f := range append(b.FileNames(), ota.ChannelFile, ota.ChannelSignatureFile, ota.RotationsFile) {
		l := &fileLayer{b: b, name: f}
		switch f {
		case ota.ChannelFile, ota.ChannelSignatureFile, ota.RotationsFile:
			if l.data = channel[f]; l.data == nil {
				continue
			}
			l.size, l.sum = int64(len(l.data)), sha256.Sum256(l.data)
		case ota.ManifestFile:
			l.size, l.sum = int64(len(raw)), sha256.Sum256(raw)
		case ota.SignatureFile:
			l.size, l.sum = int64(len(sig)), sha256.Sum256(sig)
		default:
			// The manifest's hashes are the layers' digests; the registry
			// checks them as it receives the bytes.
			rec := b.Manifest.File(f)
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
			MediaType:   ota.MediaType(f),
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
			progress.Report("publish", u.Complete, u.Total)
		}
	}()
	err = remote.Write(r, img, append(ota.RegistryOptions(ctx), remote.WithProgress(updates))...)
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
	b        *ota.Bundle
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

// fileLayer is one bundle or channel file as a registry blob, stored as
// is.
type fileLayer struct {
	b    *ota.Bundle
	name string
	data []byte // a channel file's content; nil: read the bundle's file
	size int64
	sum  [sha256.Size]byte
}

func (l *fileLayer) Digest() (v1.Hash, error) {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(l.sum[:])}, nil
}
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return ota.MediaType(l.name), nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error) {
	if l.data != nil {
		return io.NopCloser(bytes.NewReader(l.data)), nil
	}
	r, _, err := open(l.b, l.name)
	return r, err
}

// PublishDir writes the bundle's files into dir (created if needed) for a
// static web server to serve, with a channel statement signed by s that
// names it; a device downloads them from the URL of dir. Each file goes
// in under a temporary name and is renamed; the manifest and then the
// channel statement come last, so a client that reads an old statement
// while the new files arrive refuses the new manifest, and one that reads
// an old manifest fails its hash check; either tries again later.
func PublishDir(ctx context.Context, b *ota.Bundle, dir string, s Signer, progress ota.Progress) error {
	prev, err := dirChannel(dir)
	if err != nil {
		return err
	}
	channel, err := s.channel(b, prev)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range b.Manifest.Files() {
		r, size, err := b.OpenFile(f)
		if err != nil {
			return err
		}
		_, err = ota.SaveFile(ctx, dir, f, r, size, nil, progress)
		r.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
	}
	raw, sig := b.Signed()
	if err := atomicfile.Write(filepath.Join(dir, ota.SignatureFile), sig, 0o644); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, ota.ManifestFile), raw, 0o644); err != nil {
		return err
	}
	return writeChannel(dir, channel)
}

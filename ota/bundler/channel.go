package bundler

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nodebake/nodebake/internal/atomicfile"
	"github.com/nodebake/nodebake/ota"
)

// Signer signs a channel's statement.
type Signer struct {
	Key ed25519.PrivateKey // the update key: it must have signed the bundle too
	// Rotations are published with the statement: the chain of key
	// rotations that leads from older keys to Key, for devices that still
	// trust one of those.
	Rotations []ota.Rotation
	Expiry    time.Duration // how long the statement is valid; 0: ota.DefaultExpiry
	Now       time.Time     // when it is signed; zero: now
}

func (s Signer) sealNext(c ota.Channel, prev *ota.Channel) (map[string][]byte, error) {
	now, expiry := s.Now, s.Expiry
	if now.IsZero() {
		now = time.Now()
	}
	if expiry == 0 {
		expiry = ota.DefaultExpiry
	}
	if expiry < 0 {
		return nil, fmt.Errorf("expiry %v: want a positive duration", expiry)
	}
	// The counter goes on from the channel's last statement, whoever
	// signed it: a device refuses any statement with a lower one.
	c.Counter = 1
	if prev != nil {
		c.Counter = prev.Counter + 1
	}
	c.Issued = now.UTC().Truncate(time.Second)
	c.Expires = now.Add(expiry).UTC().Truncate(time.Second)
	raw, sig, err := ota.SealChannel(c, s.Key)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{ota.ChannelFile: raw, ota.ChannelSignatureFile: sig}
	if len(s.Rotations) > 0 {
		if files[ota.RotationsFile], err = json.MarshalIndent(s.Rotations, "", "  "); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// channel makes the files of a statement that names b.
func (s Signer) channel(b *ota.Bundle, prev *ota.Channel) (map[string][]byte, error) {
	if err := b.SignedBy(s.Key.Public().(ed25519.PublicKey)); err != nil {
		return nil, fmt.Errorf("the channel would name a bundle its devices refuse: %w (bundle it again with this key)", err)
	}
	return s.sealNext(ota.NewChannel(b), prev)
}

// refreshed makes the files of a statement that names the same bundle as
// cur, which s's key must have signed: a refresh never signs what someone
// else put into the channel.
func (s Signer) refreshed(where string, raw, sig []byte) (ota.Channel, map[string][]byte, error) {
	if raw == nil || sig == nil {
		return ota.Channel{}, nil, fmt.Errorf("%s has no channel statement to refresh: publish a bundle there first (nodebake publish -k KEY BUNDLE %s)", where, where)
	}
	cur, err := ota.VerifyChannelSignature(raw, sig, s.Key.Public().(ed25519.PublicKey))
	if err != nil {
		return ota.Channel{}, nil, fmt.Errorf("%s: %w: refreshing only re-signs a statement of this key's; publish the bundle again instead", where, err)
	}
	files, err := s.sealNext(cur, &cur)
	if err != nil {
		return ota.Channel{}, nil, err
	}
	next, err := ota.ParseChannel(files[ota.ChannelFile])
	return next, files, err
}

// dirChannel reads the statement in a published folder, unverified, for
// its counter; nil if there is none.
func dirChannel(dir string) (*ota.Channel, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ota.ChannelFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c, err := ota.ParseChannel(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (move it away to start the channel anew; devices that saw it then refuse the new statements until its counter is passed)", dir, err)
	}
	return &c, nil
}

// writeChannel writes a statement's files into dir: the signature first,
// the statement last. A rotations file left from an earlier publication
// goes when there is none now.
func writeChannel(dir string, files map[string][]byte) error {
	rot := filepath.Join(dir, ota.RotationsFile)
	if files[ota.RotationsFile] != nil {
		if err := atomicfile.Write(rot, files[ota.RotationsFile], 0o644); err != nil {
			return err
		}
	} else if err := os.Remove(rot); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, ota.ChannelSignatureFile), files[ota.ChannelSignatureFile], 0o644); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, ota.ChannelFile), files[ota.ChannelFile], 0o644)
}

// RefreshDir re-signs the statement of a folder written by PublishDir
// with a higher counter and a new expiry, for the same bundle, and
// returns it.
func RefreshDir(dir string, s Signer) (ota.Channel, error) {
	read := func(f string) []byte {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		return b
	}
	next, files, err := s.refreshed(dir, read(ota.ChannelFile), read(ota.ChannelSignatureFile))
	if err != nil {
		return ota.Channel{}, err
	}
	// The rotations published with the bundle stay as they are.
	files[ota.RotationsFile] = read(ota.RotationsFile)
	return next, writeChannel(dir, files)
}

// registryChannel reads the statement under a tag, unverified, for its
// counter; nil if the tag or the statement is not there.
func registryChannel(ctx context.Context, tag name.Tag) (*ota.Channel, error) {
	m, err := registryManifest(ctx, tag)
	if m == nil || err != nil {
		return nil, err
	}
	raw, err := layerBytes(ctx, tag, m, ota.ChannelFile)
	if raw == nil || err != nil {
		return nil, err
	}
	c, err := ota.ParseChannel(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tag, err)
	}
	return &c, nil
}

// registryManifest is the OCI manifest under a tag; nil if there is none.
func registryManifest(ctx context.Context, tag name.Tag) (*v1.Manifest, error) {
	desc, err := remote.Get(tag, ota.RegistryOptions(ctx)...)
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", tag, err)
	}
	return v1.ParseManifest(bytes.NewReader(desc.Manifest))
}

// layerBytes reads the layer of a channel file; nil if there is none.
func layerBytes(ctx context.Context, tag name.Tag, m *v1.Manifest, file string) ([]byte, error) {
	for _, l := range m.Layers {
		if l.MediaType != ota.MediaType(file) {
			continue
		}
		layer, err := remote.Layer(tag.Context().Digest(l.Digest.String()), ota.RegistryOptions(ctx)...)
		if err != nil {
			return nil, err
		}
		rc, err := layer.Compressed()
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(io.LimitReader(rc, 1<<20))
	}
	return nil, nil
}

// Refresh re-signs the statement under a tag ("registry/repository:tag")
// with a higher counter and a new expiry, for the same bundle: it pushes
// the new statement's blobs and a new OCI manifest that differs from the
// old one only in them. It returns the statement.
func Refresh(ctx context.Context, ref string, s Signer) (ota.Channel, error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return ota.Channel{}, fmt.Errorf("%q: want registry/repository:tag: %w", ref, err)
	}
	m, err := registryManifest(ctx, tag)
	if err != nil {
		return ota.Channel{}, err
	}
	var raw, sig []byte
	if m != nil {
		if raw, err = layerBytes(ctx, tag, m, ota.ChannelFile); err != nil {
			return ota.Channel{}, err
		}
		if sig, err = layerBytes(ctx, tag, m, ota.ChannelSignatureFile); err != nil {
			return ota.Channel{}, err
		}
	}
	next, files, err := s.refreshed(ref, raw, sig)
	if err != nil {
		return ota.Channel{}, err
	}
	for i, l := range m.Layers {
		for _, f := range []string{ota.ChannelFile, ota.ChannelSignatureFile} {
			if l.MediaType != ota.MediaType(f) {
				continue
			}
			layer := static.NewLayer(files[f], ota.MediaType(f))
			if err := remote.WriteLayer(tag.Context(), layer, ota.RegistryOptions(ctx)...); err != nil {
				return ota.Channel{}, fmt.Errorf("pushing %s to %s: %w", f, ref, err)
			}
			d, _ := layer.Digest()
			m.Layers[i].Digest, m.Layers[i].Size = d, int64(len(files[f]))
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return ota.Channel{}, err
	}
	if err := remote.Put(tag, rawManifest(b), ota.RegistryOptions(ctx)...); err != nil {
		return ota.Channel{}, fmt.Errorf("pushing the refreshed statement to %s: %w", ref, err)
	}
	return next, nil
}

// rawManifest is an OCI image manifest as remote.Put takes it.
type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error)        { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

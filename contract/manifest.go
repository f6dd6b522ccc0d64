package contract

import (
	"encoding/json"
	"fmt"
	"os"
)

// Manifest describes an image: its identity, the verified release binaries
// and every Debian package in it. The builder writes it to ManifestPath in
// the root and beside the image; the device and `nodebake bundle|inspect`
// read it.
type Manifest struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Demo    string `json:"demo,omitempty"`
	Epoch   int64  `json:"source_date_epoch"`
	Suite   string `json:"debian_suite"`
	Kernel  string `json:"kernel"`
	// Nodebake is the nodebake that built the image, /init and nodectl:
	// module@version, or a development build.
	Nodebake  string     `json:"nodebake"`
	Artifacts []Artifact `json:"artifacts"`
	Packages  []Package  `json:"packages"`
	// Update is what the image accepts updates from; nil: none at all.
	Update *Update `json:"update,omitempty"`
}

// Update is the spec's update section as the manifest records it.
type Update struct {
	PublicKey string `json:"public_key"`
	Source    string `json:"source,omitempty"`
}

// The kinds of release artifact an image can hold (Artifact.Kind), also
// the names of their sections in image.yaml.
const (
	BitcoinCore = "bitcoin-core"
	Fulcrum     = "fulcrum"
)

// Artifact is a verified release installed in the image.
type Artifact struct {
	Kind    string   `json:"kind"`
	Version string   `json:"version"`
	Tarball string   `json:"tarball"`
	SHA256  string   `json:"sha256"`
	Signers []string `json:"signers"`
	Files   []string `json:"files"`
}

// Package is one installed Debian package.
type Package struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	Architecture string `json:"architecture"`
}

// JSON renders the manifest as stored in the image and beside it.
func (m *Manifest) JSON() []byte {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		panic(err) // plain strings and numbers always marshal
	}
	return append(b, '\n')
}

// ParseManifest reads a manifest; it must at least name the image.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("image manifest: %w", err)
	}
	if m.Name == "" || m.Version == "" {
		return nil, fmt.Errorf("image manifest: no image name and version")
	}
	return &m, nil
}

// ReadManifest reads the manifest at path (ManifestPath on a device).
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Has reports whether the image holds an artifact of kind.
func (m *Manifest) Has(kind string) bool {
	for _, a := range m.Artifacts {
		if a.Kind == kind {
			return true
		}
	}
	return false
}

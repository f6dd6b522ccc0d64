package contract

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
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
	// DataFormats is, for each kind of data the image's programs keep on
	// /data, the format they write (FulcrumDB: 1 for Fulcrum 1.x, 2 for
	// 2.x). An update that raises one upgrades the data, which the older
	// program then cannot read: the device decides from this what an
	// update and a rollback may do. bitcoind's data is not listed: no
	// single number describes what a Bitcoin Core release reads, and
	// nodebake does not guard it.
	DataFormats map[string]int `json:"data_formats,omitempty"`
}

// FulcrumDB is the kind of data of Fulcrum's database (DataFormats).
const FulcrumDB = "fulcrum-db"

// FulcrumDBFormat is the database format a Fulcrum release writes: its
// major version. Fulcrum 2.x opens a 1.x database only when started with
// --db-upgrade, which converts it for good; a 1.x Fulcrum cannot open the
// result. An unknown major is an error, so that a new one is looked at
// before images carry it.
func FulcrumDBFormat(version string) (int, error) {
	major, _, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	switch major {
	case "1":
		return 1, nil
	case "2":
		return 2, nil
	}
	return 0, fmt.Errorf("Fulcrum %s: nodebake knows the database formats of Fulcrum 1.x and 2.x only; find out whether this release reads their databases and teach contract.FulcrumDBFormat", version)
}

// Formats is the image's DataFormats; for an image built before they were
// recorded, they are derived from its artifacts (nil when none is known).
func (m *Manifest) Formats() map[string]int {
	if m.DataFormats != nil {
		return m.DataFormats
	}
	var out map[string]int
	for _, a := range m.Artifacts {
		if a.Kind != Fulcrum {
			continue
		}
		if f, err := FulcrumDBFormat(a.Version); err == nil {
			out = map[string]int{FulcrumDB: f}
		}
	}
	return out
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

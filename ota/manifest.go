package ota

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/nodebake/nodebake/contract"
)

// Format is the bundle format version this package writes. It reads
// formats 1 and 2 too. Format 1 has no DataFormats: a device then knows
// nothing of what the bundle's image reads, and says so. Format 2 added
// DataFormats; format 3 added RootIndex and the root.idx file (delta
// updates). An updater that reads only an older format decodes manifests
// strictly and refuses the new field ("unknown field"), so a device must
// run a nodectl that reads format 3 before it takes a format 3 bundle;
// the format number makes that refusal say what to do. A format 2 bundle
// (no index) is still downloaded whole.
const Format = 3

// The files of a bundle. Their names are fixed: they are never taken from a
// bundle, a registry or a server.
const (
	ManifestFile  = "manifest.json"
	SignatureFile = "manifest.sig"
	KernelFile    = "vmlinuz"
	InitrdFile    = "initrd.img"
	RootFile      = "root.img"
	// RootIndexFile is root.img's chunk index (package chunkindex), for
	// delta downloads; format 3 and later.
	RootIndexFile = "root.idx"
)

// files lists a bundle's files in the order they are stored and sent:
// small ones first.
var files = []string{ManifestFile, SignatureFile, KernelFile, InitrdFile, RootIndexFile, RootFile}

// Manifest describes a bundle. Its JSON encoding, byte for byte, is what
// the signature covers.
type Manifest struct {
	Format  int    `json:"format"`
	Name    string `json:"name"`    // image name
	Version string `json:"version"` // image version
	// Compatible is what a device must be running to accept the bundle:
	// the image name, since the name alone fixes the disk's PARTUUIDs.
	Compatible string     `json:"compatible"`
	KernelArgs string     `json:"kernel_args"` // boot entry options besides the slot's nodebake.* parameters
	Partitions Partitions `json:"partitions"`
	Verity     Verity     `json:"verity"`
	// Root is root.img whole. RootFS and VerityData are its two parts,
	// split at Verity.HashOffset: the squashfs (zero-padded to 4 KiB), and
	// the verity superblock and hash tree. Each is checked on its own too,
	// so a damaged bundle says which part is wrong.
	Root       File `json:"root"`
	RootFS     File `json:"root_filesystem"`
	VerityData File `json:"verity_data"`
	Kernel     File `json:"kernel"`
	Initrd     File `json:"initrd"`
	// DataFormats is the image's contract.Manifest.DataFormats: signed
	// and in the manifest, so that a device decides whether the update
	// upgrades its data before it downloads the rest.
	DataFormats map[string]int `json:"data_formats,omitempty"`
	// RootIndex is the size and sha256 of root.idx, the chunk index of
	// root.img (format 3). Signed here, it vouches for every chunk's
	// hash, so a device may assemble root.img from chunks it already
	// holds and chunks fetched by range.
	RootIndex *File `json:"root_index,omitempty"`
}

// maxIndex bounds root.idx: 36 bytes per chunk of at least 16 KiB is
// 9 MiB for a 4 GiB root.
const maxIndex = 16 << 20

// Partitions are the PARTUUIDs of the image's disk layout.
type Partitions struct {
	RootA string `json:"root-a"`
	RootB string `json:"root-b"`
	Data  string `json:"data"`
}

// Verity holds the dm-verity parameters of root.img (contract.Verity with
// JSON names).
type Verity struct {
	RootHash   string `json:"root_hash"`
	Salt       string `json:"salt"`
	DataBlocks uint64 `json:"data_blocks"`
	HashOffset uint64 `json:"hash_offset"`
}

// File is the size and sha256 (hex) of one bundle file.
type File struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Identity is what a device runs: the name and version in its root's
// /usr/share/nodebake/manifest.json.
type Identity struct {
	Name    string
	Version string
}

// Slot is the boot parameters of the root written into slot "a" or "b".
func (m *Manifest) Slot(name string) contract.Slot {
	root := m.Partitions.RootA
	if name == "b" {
		root = m.Partitions.RootB
	}
	return contract.Slot{
		Name:         name,
		RootPartUUID: root,
		DataPartUUID: m.Partitions.Data,
		Verity: contract.Verity{
			RootHash:   m.Verity.RootHash,
			Salt:       m.Verity.Salt,
			DataBlocks: m.Verity.DataBlocks,
			HashOffset: m.Verity.HashOffset,
		},
	}
}

// File returns the manifest's record of a bundle file.
func (m *Manifest) File(name string) File {
	switch name {
	case KernelFile:
		return m.Kernel
	case InitrdFile:
		return m.Initrd
	case RootIndexFile:
		if m.RootIndex == nil {
			return File{}
		}
		return *m.RootIndex
	}
	return m.Root
}

// Files lists the bundle files besides the manifest and its signature
// that m records, in the order they are stored and sent.
func (m *Manifest) Files() []string {
	if m.RootIndex == nil {
		return []string{KernelFile, InitrdFile, RootFile}
	}
	return []string{KernelFile, InitrdFile, RootIndexFile, RootFile}
}

// validate checks what a signed manifest promises before anything acts on
// it, so that a well-signed but malformed manifest fails with a message
// rather than deep inside Apply.
func (m *Manifest) validate() error {
	if m.Format < 1 || m.Format > Format {
		return fmt.Errorf("bundle format %d: this updater reads formats 1 to %d (update the device's nodebake first)", m.Format, Format)
	}
	if m.Format == 1 && m.DataFormats != nil {
		return fmt.Errorf("manifest: bundle format 1 has no data_formats")
	}
	if m.Format < 3 && m.RootIndex != nil {
		return fmt.Errorf("manifest: bundle format %d has no root_index", m.Format)
	}
	if m.Format >= 3 && m.RootIndex == nil {
		return fmt.Errorf("manifest: bundle format %d lacks root_index", m.Format)
	}
	for kind, f := range m.DataFormats {
		if f <= 0 {
			return fmt.Errorf("manifest: data format %d of %q: want a positive number", f, kind)
		}
	}
	if m.Name == "" || m.Version == "" || m.Compatible == "" {
		return fmt.Errorf("manifest lacks its name, version or compatibility id")
	}
	// Name and version become lines of the boot entry (contract.EntryConf):
	// a line break in either would add options of the signer's choosing.
	for _, f := range []struct {
		field string
		check func(string) error
		v     string
	}{{"name", contract.CheckName, m.Name}, {"compatible", contract.CheckName, m.Compatible}, {"version", contract.CheckVersion, m.Version}} {
		if err := f.check(f.v); err != nil {
			return fmt.Errorf("manifest: %s %w", f.field, err)
		}
	}
	for role, u := range map[string]string{"root-a": m.Partitions.RootA, "root-b": m.Partitions.RootB, "data": m.Partitions.Data} {
		if _, err := uuid.Parse(u); err != nil || len(u) != 36 {
			return fmt.Errorf("manifest: %s PARTUUID %q: want a UUID", role, u)
		}
	}
	// The boot entry's parameters must survive /init's own parser.
	for _, s := range []string{"a", "b"} {
		if _, err := contract.Parse(m.Slot(s).Format()); err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
	}
	if strings.Contains(m.KernelArgs, "nodebake.") || strings.ContainsAny(m.KernelArgs, "\n\r") {
		return fmt.Errorf("manifest: kernel_args %q may not hold nodebake.* parameters or line breaks", clip(m.KernelArgs))
	}
	for _, name := range m.Files() {
		f := m.File(name)
		if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != 32 || f.SHA256 != strings.ToLower(f.SHA256) {
			return fmt.Errorf("manifest: %s sha256 %q: want 64 lower-case hex digits", name, f.SHA256)
		}
		if f.Size <= 0 {
			return fmt.Errorf("manifest: %s size %d: want a positive size", name, f.Size)
		}
	}
	if m.RootIndex != nil && m.RootIndex.Size > maxIndex {
		return fmt.Errorf("manifest: %s is %d bytes: more than the %d a chunk index may have", RootIndexFile, m.RootIndex.Size, maxIndex)
	}
	if m.Root.Size <= int64(m.Verity.HashOffset) || m.Verity.HashOffset != m.Verity.DataBlocks*4096 {
		return fmt.Errorf("manifest: root is %d bytes with %d data blocks and hash offset %d: the verity layout does not fit",
			m.Root.Size, m.Verity.DataBlocks, m.Verity.HashOffset)
	}
	for _, p := range []struct {
		name string
		f    File
		size int64
	}{{rootFSPart, m.RootFS, int64(m.Verity.HashOffset)}, {verityPart, m.VerityData, m.Root.Size - int64(m.Verity.HashOffset)}} {
		if b, err := hex.DecodeString(p.f.SHA256); err != nil || len(b) != 32 || p.f.SHA256 != strings.ToLower(p.f.SHA256) {
			return fmt.Errorf("manifest: %s sha256 %q: want 64 lower-case hex digits", p.name, p.f.SHA256)
		}
		if p.f.Size != p.size {
			return fmt.Errorf("manifest: %s is %d bytes, but root is %d bytes with the verity data at %d", p.name, p.f.Size, m.Root.Size, m.Verity.HashOffset)
		}
	}
	return nil
}

// parseManifest decodes manifest bytes strictly: a field this version does
// not know means a format it cannot honour.
func parseManifest(raw []byte) (Manifest, error) {
	var m Manifest
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	return m, nil
}

// Seal checks m and encodes it, then signs the encoding: it returns the
// bytes of a bundle's manifest file and of its signature file.
func Seal(m *Manifest, priv ed25519.PrivateKey) (raw, sig []byte, err error) {
	if err := m.validate(); err != nil {
		return nil, nil, err
	}
	if raw, err = json.MarshalIndent(m, "", "  "); err != nil {
		return nil, nil, err
	}
	raw = append(raw, '\n')
	return raw, sign(raw, priv), nil
}

// sign makes the detached signature file for manifest bytes.
func sign(raw []byte, priv ed25519.PrivateKey) []byte {
	pub := priv.Public().(ed25519.PublicKey)
	sig := ed25519.Sign(priv, raw)
	return []byte(fmt.Sprintf("ed25519 %s %s\n", KeyID(pub), base64.StdEncoding.EncodeToString(sig)))
}

// checkSignature verifies manifest bytes against a signature file made by
// sign.
func checkSignature(raw, sigFile []byte, key ed25519.PublicKey) error {
	return checkSigned("bundle", ManifestFile, SignatureFile, raw, sigFile, key)
}

// checkSigned verifies a signed file (what names it in messages; file and
// sigFile are the two files' names) against a signature file made by sign.
func checkSigned(what, file, sigName string, raw, sigFile []byte, key ed25519.PublicKey) error {
	id, sig, err := parseSignature(sigName, sigFile)
	if err != nil {
		return err
	}
	// The key id in the file is not trusted; it only lets the message
	// tell "someone else signed this" from "this was changed".
	if want := KeyID(key); id != want {
		return fmt.Errorf("%s is signed by key %s, but this device accepts only key %s: it was not made by this image's publisher", what, id, want)
	}
	if !ed25519.Verify(key, raw, sig) {
		return fmt.Errorf("%s does not match its signature: it was changed after signing", file)
	}
	return nil
}

// parseSignature reads a signature file made by sign: the key id it
// claims and the signature.
func parseSignature(sigName string, sigFile []byte) (id string, sig []byte, err error) {
	f := strings.Fields(string(sigFile))
	if len(f) != 3 || f[0] != "ed25519" {
		return "", nil, fmt.Errorf("%s: want \"ed25519 <key id> <base64 signature>\"", sigName)
	}
	sig, err = base64.StdEncoding.DecodeString(f[2])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return "", nil, fmt.Errorf("%s: the signature is not %d base64-encoded bytes", sigName, ed25519.SignatureSize)
	}
	return f[1], sig, nil
}

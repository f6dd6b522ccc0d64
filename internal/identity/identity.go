// Package identity backs up and restores what makes a nodebake device
// itself to the outside: its Tor onion keys (the addresses wallets and SSH
// clients use), Fulcrum's TLS key and certificate (which wallets pin), the
// SSH host key (which SSH clients pin), the user's override configs and
// the admin's own authorized_keys. With them, a node moved to a new SSD
// keeps working for every wallet that knew it.
//
// The archive is a tar stream encrypted with age (filippo.io/age): to a
// passphrase (scrypt) or to age recipients. Its first member is a manifest
// listing every file with its owner, mode and SHA-256.
//
// Restore reads, decrypts and checks the whole archive in memory before it
// touches the device: a wrong passphrase, a damaged or truncated archive,
// a file the image does not know or a key that does not fit restores
// nothing. Then it writes every file beside its place as a new temporary
// file (mode and owner set on the descriptor, fsynced) and only once all
// are written renames them into place, in folders opened with package
// nofollow: no link is followed, whoever owns the folder.
package identity

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha3"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nodebake/nodebake/internal/firstboot"
	"github.com/nodebake/nodebake/internal/nofollow"
	"github.com/nodebake/nodebake/internal/pairing"
)

// Format is the archive's format version.
const Format = 1

// ManifestName is the archive's first member.
const ManifestName = "nodebake-identity.json"

// Limits: the archive holds a few small files.
const (
	maxFile    = 1 << 20
	maxArchive = 16 << 20
)

// TorDir is where tor keeps its onion services.
const TorDir = "/var/lib/tor"

// torFiles are what tor keeps of an onion service: its keys and address.
var torFiles = []string{"hs_ed25519_secret_key", "hs_ed25519_public_key", "hostname"}

// spec says what one file of the identity is and how it is kept.
type spec struct {
	Path     string      // on the device
	Owner    string      // user whose uid and primary gid own it
	Mode     fs.FileMode // as the device keeps it
	Optional bool        // a device may not have it
	// DirOwner and DirMode, when set, create the file's folder if it is
	// missing (a fresh device's admin has no ~/.ssh).
	DirOwner string
	DirMode  fs.FileMode
}

// specs lists the files of a device's identity: the fixed ones and each
// onion service's that torrc (under root) configures.
func specs(root string) ([]spec, error) {
	list := []spec{
		{Path: firstboot.FulcrumKey, Owner: "fulcrum", Mode: 0o600},
		{Path: firstboot.FulcrumCert, Owner: "fulcrum", Mode: 0o644},
		{Path: firstboot.HostKeyPath, Owner: "root", Mode: 0o600},
		{Path: firstboot.HostKeyPath + ".pub", Owner: "root", Mode: 0o644},
		{Path: firstboot.BitcoinOverride, Owner: "bitcoin", Mode: 0o640, Optional: true},
		{Path: firstboot.FulcrumOverride, Owner: "fulcrum", Mode: 0o640, Optional: true},
		{Path: "/home/admin/.ssh/authorized_keys", Owner: "admin", Mode: 0o600, Optional: true, DirOwner: "admin", DirMode: 0o700},
	}
	torrc, err := os.ReadFile(filepath.Join(root, pairing.Torrc))
	if err != nil {
		return nil, fmt.Errorf("reading tor's configuration: %w", err)
	}
	for _, s := range pairing.OnionServices(torrc) {
		if filepath.Dir(s.Dir) != TorDir {
			return nil, fmt.Errorf("%s: onion service folder %s is not in %s", pairing.Torrc, s.Dir, TorDir)
		}
		for _, f := range torFiles {
			list = append(list, spec{Path: filepath.Join(s.Dir, f), Owner: "debian-tor", Mode: 0o600, DirOwner: "debian-tor", DirMode: 0o700})
		}
	}
	return list, nil
}

// Manifest is the archive's first member.
type Manifest struct {
	Format   int       `json:"format"`
	Created  time.Time `json:"created"`
	Hostname string    `json:"hostname"`
	Files    []File    `json:"files"`
}

// File is one file of the archive.
type File struct {
	Path   string      `json:"path"`
	Owner  string      `json:"owner"`
	Mode   fs.FileMode `json:"mode"`
	SHA256 string      `json:"sha256"`
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// openParent opens the folder of the device path p under root, following
// no link below root.
func openParent(root, p string) (*nofollow.Dir, error) {
	r, err := nofollow.Open(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.OpenDir(strings.TrimPrefix(filepath.Dir(p), "/"))
}

// check says why the files, by device path, are not a usable identity.
func check(files map[string][]byte) error {
	key, cert := files[firstboot.FulcrumKey], files[firstboot.FulcrumCert]
	if err := firstboot.CheckTLS(key, cert, time.Now()); err != nil {
		return fmt.Errorf("Fulcrum's TLS pair: %w", err)
	}
	if err := firstboot.CheckHostKey(files[firstboot.HostKeyPath], files[firstboot.HostKeyPath+".pub"]); err != nil {
		return fmt.Errorf("SSH host key: %w", err)
	}
	for p, b := range files {
		if filepath.Dir(filepath.Dir(p)) != TorDir || filepath.Base(p) != "hostname" {
			continue
		}
		dir := filepath.Dir(p)
		if err := checkOnion(files[filepath.Join(dir, "hs_ed25519_secret_key")], files[filepath.Join(dir, "hs_ed25519_public_key")], b); err != nil {
			return fmt.Errorf("onion service %s: %w", dir, err)
		}
	}
	return nil
}

// Tor's key files: a 32-byte header, then the key.
const (
	torSecretHeader = "== ed25519v1-secret: type0 ==\x00\x00\x00"
	torPublicHeader = "== ed25519v1-public: type0 ==\x00\x00\x00"
)

// checkOnion checks tor's files of one onion service: both keys in tor's
// format, and the address the one that the public key makes (tor's
// rend-spec-v3: base32(pubkey | checksum | version), the checksum the
// first two bytes of SHA3-256(".onion checksum" | pubkey | version)).
func checkOnion(secret, public, hostname []byte) error {
	if len(secret) != 32+64 || !bytes.HasPrefix(secret, []byte(torSecretHeader)) {
		return errors.New("hs_ed25519_secret_key is not a tor ed25519 secret key")
	}
	if len(public) != 32+32 || !bytes.HasPrefix(public, []byte(torPublicHeader)) {
		return errors.New("hs_ed25519_public_key is not a tor ed25519 public key")
	}
	if want := OnionAddress(public[32:]); strings.TrimSpace(string(hostname)) != want {
		return fmt.Errorf("hostname %q does not belong to the public key (%s)", strings.TrimSpace(string(hostname)), want)
	}
	return nil
}

// OnionAddress is the v3 onion address of an ed25519 public key.
func OnionAddress(pub []byte) string {
	const version = 3
	h := sha3.New256()
	h.Write([]byte(".onion checksum"))
	h.Write(pub)
	h.Write([]byte{version})
	ck := h.Sum(nil)
	b := append(append(slices.Clone(pub), ck[:2]...), version)
	return strings.ToLower(base32.StdEncoding.EncodeToString(b)) + ".onion"
}

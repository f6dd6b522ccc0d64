package ota

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/nodebake/nodebake/internal/atomicfile"
)

// publicKeyPrefix starts the one-line text form of a public key, which
// image.yaml names and the image bakes in: "ed25519:<base64 of 32 bytes>".
// It is a single token, so it can stand unquoted in YAML.
const publicKeyPrefix = "ed25519:"

// GenerateKey makes a new update-signing key pair.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey) {
	// crypto/rand never fails on Linux (getrandom), and GenerateKey only
	// returns the reader's error.
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic("ota: reading random bytes: " + err.Error())
	}
	return pub, priv
}

// KeyID is a short fingerprint of a public key: the first 8 bytes of its
// sha256, in hex. Signatures carry it, so a refusal can say which key
// signed a bundle.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// FormatPublicKey renders pub in its one-line text form.
func FormatPublicKey(pub ed25519.PublicKey) string {
	return publicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads the one-line text form; surrounding white space is
// ignored.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	b64, ok := strings.CutPrefix(s, publicKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("update key %q: want %s<base64>, as written by nodebake keygen", clip(s), publicKeyPrefix)
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("update key %q: want %d base64-encoded bytes after %q", clip(s), ed25519.PublicKeySize, publicKeyPrefix)
	}
	return ed25519.PublicKey(b), nil
}

// clip shortens what a message quotes back from an input.
func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// SavePublicKey writes the public key file: the text form and a newline.
func SavePublicKey(path string, pub ed25519.PublicKey) error {
	return atomicfile.Write(path, []byte(FormatPublicKey(pub)+"\n"), 0o644)
}

// LoadPublicKey reads a file written by SavePublicKey.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pub, err := ParsePublicKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pub, nil
}

// SavePrivateKey writes the private key as PKCS#8 PEM (what `openssl pkey`
// reads), mode 0600, atomically. It refuses to replace an existing file:
// devices in the field accept only bundles signed by the key they were
// built with, so a key overwritten by accident strands all of them.
func SavePrivateKey(path string, priv ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	err = atomicfile.WriteNew(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists: refusing to overwrite an update-signing key (devices built with it would accept no other); move it away first", path)
	}
	return err
}

// LoadPrivateKey reads a key written by SavePrivateKey. It refuses a file
// that others can read, as ssh does.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o lets others read the update-signing key: run chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PEM \"PRIVATE KEY\" file (make one with nodebake keygen)", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: holds a %T, want an ed25519 key", path, k)
	}
	return priv, nil
}

package ota_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
)

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	pub, priv := ota.GenerateKey()
	privPath, pubPath := filepath.Join(dir, "update.key"), filepath.Join(dir, "update.pub")
	if err := ota.SavePrivateKey(privPath, priv); err != nil {
		t.Fatal(err)
	}
	if err := ota.SavePublicKey(pubPath, pub); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(privPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %04o, want 0600", st.Mode().Perm())
	}
	if pem := otatest.ReadFile(t, privPath); !bytes.HasPrefix(pem, []byte("-----BEGIN PRIVATE KEY-----\n")) {
		t.Errorf("private key file is not PKCS#8 PEM:\n%s", pem)
	}
	line := string(otatest.ReadFile(t, pubPath))
	if !strings.HasPrefix(line, "ed25519:") || strings.Count(line, "\n") != 1 || strings.ContainsAny(strings.TrimSpace(line), " \t") {
		t.Errorf("public key file %q: want one ed25519:<base64> token and a newline", line)
	}
	// No temporary files are left beside the keys.
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("key directory holds %d files, want 2", len(entries))
	}

	gotPriv, err := ota.LoadPrivateKey(privPath)
	if err != nil {
		t.Fatal(err)
	}
	if !gotPriv.Equal(priv) {
		t.Error("private key does not round-trip")
	}
	gotPub, err := ota.LoadPublicKey(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	if !gotPub.Equal(pub) {
		t.Error("public key does not round-trip")
	}
	if p, err := ota.ParsePublicKey("  " + ota.FormatPublicKey(pub) + "\n"); err != nil || !p.Equal(pub) {
		t.Errorf("ParsePublicKey of the text form with white space: %v", err)
	}
	if len(ota.KeyID(pub)) != 16 || ota.KeyID(pub) == ota.KeyID(testPub) {
		t.Errorf("KeyID %q: want 16 hex digits distinct per key", ota.KeyID(pub))
	}

	_, other := ota.GenerateKey()
	if err := ota.SavePrivateKey(privPath, other); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("SavePrivateKey over an existing key: %v", err)
	}
	if k, _ := ota.LoadPrivateKey(privPath); !k.Equal(priv) {
		t.Error("the existing key was replaced")
	}
}

func TestKeyRefusals(t *testing.T) {
	dir := t.TempDir()
	_, priv := ota.GenerateKey()
	loose := filepath.Join(dir, "loose.key")
	if err := ota.SavePrivateKey(loose, priv); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.key")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		err  error
		want string
	}{
		"readable by others": {func() error { _, err := ota.LoadPrivateKey(loose); return err }(), "chmod 600"},
		"not PEM":            {func() error { _, err := ota.LoadPrivateKey(notPEM); return err }(), "not a PEM"},
		"missing":            {func() error { _, err := ota.LoadPrivateKey(filepath.Join(dir, "none")); return err }(), "no such file"},
		"wrong prefix":       {func() error { _, err := ota.ParsePublicKey("ssh-ed25519 AAAA"); return err }(), "want ed25519:<base64>"},
		"short key":          {func() error { _, err := ota.ParsePublicKey("ed25519:AAAA"); return err }(), "want 32 base64-encoded bytes"},
	}
	for name, c := range cases {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, c.err, c.want)
		}
	}
}

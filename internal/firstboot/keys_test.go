package firstboot

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/internal/nofollow"
)

func parseCert(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("no PEM certificate in %q", b)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestNewTLS parses the pair back and checks what the guide's openssl
// command makes: RSA 2048, SHA-256, 3650 days, O=Fulcrum, key and
// certificate belonging together, usable as a pinned self-signed root.
func TestNewTLS(t *testing.T) {
	now := time.Date(2025, 11, 24, 12, 0, 0, 0, time.UTC)
	keyPEM, certPEM, err := newTLS(now)
	if err != nil {
		t.Fatal(err)
	}
	c := parseCert(t, certPEM)
	pub, ok := c.PublicKey.(*rsa.PublicKey)
	switch {
	case !ok || pub.N.BitLen() != 2048:
		t.Errorf("public key %T, want RSA 2048", c.PublicKey)
	case c.SignatureAlgorithm != x509.SHA256WithRSA:
		t.Errorf("signature %v, want SHA256-RSA", c.SignatureAlgorithm)
	case len(c.Subject.Organization) != 1 || c.Subject.Organization[0] != "Fulcrum" || c.Subject.String() != "O=Fulcrum":
		t.Errorf("subject %q, want O=Fulcrum", c.Subject)
	case c.Issuer.String() != "O=Fulcrum":
		t.Errorf("issuer %q, want O=Fulcrum (self-signed)", c.Issuer)
	case !c.NotBefore.Equal(now) || !c.NotAfter.Equal(now.AddDate(0, 0, 3650)):
		t.Errorf("valid %s to %s, want 3650 days from %s", c.NotBefore, c.NotAfter, now)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !key.(*rsa.PrivateKey).PublicKey.Equal(c.PublicKey) {
		t.Error("key and certificate do not match")
	}
	if block, _ := pem.Decode(keyPEM); block.Type != "PRIVATE KEY" {
		t.Errorf("key PEM type %q, want PKCS#8 PRIVATE KEY as openssl writes", block.Type)
	}
	// A wallet that pins the certificate trusts it as its own root.
	roots := x509.NewCertPool()
	roots.AddCert(c)
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now.Add(time.Hour), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("a client pinning the certificate rejects it: %v", err)
	}
}

// TestEnsureTLS checks that a good pair is kept as it is and a missing,
// unreadable, mismatched or expired one is replaced.
func TestEnsureTLS(t *testing.T) {
	now := time.Date(2025, 11, 24, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	keyPath, certPath := filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	plan := newOwnerPlan()
	w := files{plan}
	d := openDir(t, dir)
	ensure := func(at time.Time) []Item {
		t.Helper()
		items, err := ensureTLS(w, d, "key.pem", "cert.pem", testFulcrum, at)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckTLS(mustRead(t, keyPath), mustRead(t, certPath), at); err != nil {
			t.Fatalf("after ensureTLS: %v", err)
		}
		return items
	}
	statuses := func(items []Item) string {
		var s []string
		for _, it := range items {
			s = append(s, string(it.Status))
		}
		return strings.Join(s, " ")
	}

	if got := statuses(ensure(now)); got != "created created" {
		t.Fatalf("first run: %s", got)
	}
	for p, mode := range map[string]os.FileMode{keyPath: 0o600, certPath: 0o644} {
		fi, _ := os.Stat(p)
		o, _ := plan.ownerOf(p)
		if fi.Mode().Perm() != mode || o != testFulcrum {
			t.Errorf("%s: mode %v owner %v, want %v fulcrum", p, fi.Mode().Perm(), o, mode)
		}
	}
	cert := mustRead(t, certPath)
	if got := statuses(ensure(now.AddDate(5, 0, 0))); got != "unchanged unchanged" {
		t.Fatalf("valid pair: %s", got)
	}

	// Expired: ten years and a day later.
	if got := statuses(ensure(now.AddDate(0, 0, 3651))); got != "changed changed" {
		t.Fatalf("expired pair: %s", got)
	}
	if bytes.Equal(cert, mustRead(t, certPath)) {
		t.Fatal("the expired certificate was kept")
	}

	// Mismatched: a certificate of another key.
	_, otherCert, err := newTLS(now)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certPath, otherCert, 0o644)
	items := ensure(now)
	if statuses(items) != "changed changed" || !strings.Contains(items[0].Detail, "does not belong") {
		t.Fatalf("mismatched pair: %+v", items)
	}

	// Unreadable key, missing certificate.
	os.WriteFile(keyPath, []byte("garbage"), 0o600)
	if got := statuses(ensure(now)); got != "changed changed" {
		t.Fatalf("garbage key: %s", got)
	}
	os.Remove(certPath)
	if got := statuses(ensure(now)); got != "changed created" {
		t.Fatalf("missing certificate: %s", got)
	}

	// A good pair with loose permissions keeps its contents.
	key := mustRead(t, keyPath)
	os.Chmod(keyPath, 0o644)
	if got := statuses(ensure(now)); got != "changed unchanged" || !bytes.Equal(key, mustRead(t, keyPath)) {
		t.Fatalf("loose key mode: %s", got)
	}
}

// openDir opens a test's folder as the agent opens its own.
func openDir(t *testing.T, dir string) *nofollow.Dir {
	t.Helper()
	d, err := nofollow.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEnsureHostKey checks the host key with OpenSSH's own ssh-keygen.
func TestEnsureHostKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ssh_host_ed25519_key")
	w := files{newOwnerPlan()}
	d := openDir(t, dir)
	items, err := ensureHostKey(w, d, "ssh_host_ed25519_key")
	if err != nil {
		t.Fatal(err)
	}
	if items[0].Status != Created || items[1].Status != Created {
		t.Fatalf("first run: %+v", items)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(path + ".pub"); fi.Mode().Perm() != 0o644 {
		t.Errorf("pub mode %v, want 0644", fi.Mode().Perm())
	}
	out, err := exec.Command("ssh-keygen", "-y", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen cannot read the key: %v: %s", err, out)
	}
	pub := mustRead(t, path+".pub")
	if !strings.HasPrefix(string(pub), "ssh-ed25519 ") || strings.Fields(string(out))[1] != strings.Fields(string(pub))[1] {
		t.Fatalf("ssh-keygen derives %q, the .pub holds %q", out, pub)
	}
	key := mustRead(t, path)

	if items, _ := ensureHostKey(w, d, "ssh_host_ed25519_key"); items[0].Status != Unchanged || items[1].Status != Unchanged {
		t.Fatalf("second run: %+v", items)
	}

	// A wrong .pub is rewritten from the key, which stays.
	os.WriteFile(path+".pub", []byte("ssh-ed25519 AAAA wrong\n"), 0o644)
	if items, _ := ensureHostKey(w, d, "ssh_host_ed25519_key"); items[0].Status != Unchanged || items[1].Status != Changed {
		t.Fatalf("wrong .pub: %+v", items)
	}
	if !bytes.Equal(key, mustRead(t, path)) || !bytes.Equal(pub, mustRead(t, path+".pub")) {
		t.Fatal("the key changed, or the .pub was not restored")
	}

	// An unusable key is replaced.
	os.WriteFile(path, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"), 0o600)
	if items, _ := ensureHostKey(w, d, "ssh_host_ed25519_key"); items[0].Status != Changed || items[1].Status != Changed {
		t.Fatalf("broken key: %+v", items)
	}
	if err := exec.Command("ssh-keygen", "-y", "-f", path).Run(); err != nil {
		t.Fatalf("the replaced key is unreadable: %v", err)
	}
}

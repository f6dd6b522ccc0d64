package firstboot

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"time"

	"github.com/nodebake/nodebake/internal/nofollow"
)

// certDays is the validity the guide's `openssl req -days 3650` gives.
const certDays = 3650

// CheckTLS says why a key and certificate pair cannot serve Fulcrum's SSL
// port, or returns nil if it can. The certificate may be a chain: its first
// block is the server's.
func CheckTLS(keyPEM, certPEM []byte, now time.Time) error {
	key, err := parseKey(keyPEM)
	if err != nil {
		return fmt.Errorf("key: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return errors.New("certificate: no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return errors.New("the certificate does not belong to the key")
	}
	if now.After(cert.NotAfter) {
		return fmt.Errorf("the certificate expired on %s", cert.NotAfter.Format(time.DateOnly))
	}
	return nil
}

// parseKey reads a PEM private key in the forms openssl writes: PKCS#8
// (what `openssl req -nodes` makes), PKCS#1 RSA or SEC 1 EC.
func parseKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
	return s, nil
}

// newTLS makes what the guide's
//
//	openssl req -newkey rsa:2048 -sha256 -nodes -x509 -days 3650 -subj "/O=Fulcrum"
//
// makes: an RSA 2048 key (PKCS#8) and a self-signed SHA-256 certificate for
// O=Fulcrum, valid for 3650 days, marked as a CA as openssl's default
// extensions do (wallets that pin the certificate treat it as its own root).
func newTLS(now time.Time) (keyPEM, certPEM []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	now = now.UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Fulcrum"}},
		NotBefore:             now,
		NotAfter:              now.AddDate(0, 0, certDays),
		SignatureAlgorithm:    x509.SHA256WithRSA,
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// ensureTLS keeps a usable key and certificate at keyName and certName in
// d, and makes a new pair when either is missing, unreadable, expired or
// the two do not match. The key is written first: a run killed between the
// two writes leaves a pair that does not match, which the next run
// replaces. A link at either name is the user's choice (a certificate kept
// elsewhere): the agent, which follows no link, cannot check the pair and
// leaves both alone; Fulcrum reads them with its own rights.
func ensureTLS(w files, d *nofollow.Dir, keyName, certName string, o Owner, now time.Time) ([]Item, error) {
	keyPEM, kerr := d.ReadFile(keyName, maxRead)
	certPEM, cerr := d.ReadFile(certName, maxRead)
	if errors.Is(kerr, nofollow.ErrSymlink) || errors.Is(cerr, nofollow.ErrSymlink) {
		var items []Item
		for _, f := range []struct {
			name string
			err  error
		}{{keyName, kerr}, {certName, cerr}} {
			detail := "left alone and unchecked: the other file of the pair is a symbolic link"
			if errors.Is(f.err, nofollow.ErrSymlink) {
				detail = f.name + " is a symbolic link: left alone and unchecked; Fulcrum reads it with its own rights (replace it with a regular file to have it checked)"
			}
			items = append(items, Item{What: d.Join(f.name), Status: Skipped, Detail: detail})
		}
		return items, nil
	}
	var why error
	switch {
	case errors.Is(kerr, fs.ErrNotExist):
		why = errors.New("there was no key")
	case kerr != nil:
		why = kerr
	case errors.Is(cerr, fs.ErrNotExist):
		why = errors.New("there was no certificate")
	case cerr != nil:
		why = cerr
	default:
		why = CheckTLS(keyPEM, certPEM, now)
	}
	if why == nil {
		var items []Item
		for _, f := range []struct {
			name string
			mode os.FileMode
		}{{keyName, 0o600}, {certName, 0o644}} {
			it, err := w.keep(d, f.name, f.mode, o)
			if err != nil {
				return items, err
			}
			items = append(items, it)
		}
		return items, nil
	}
	keyPEM, certPEM, err := newTLS(now)
	if err != nil {
		return nil, fmt.Errorf("making a TLS key: %w", err)
	}
	detail := "new RSA 2048 key and self-signed certificate: " + why.Error()
	it, err := w.file(d, keyName, keyPEM, 0o600, o)
	if err != nil {
		return nil, err
	}
	it.Detail = detail
	items := []Item{it}
	it, err = w.file(d, certName, certPEM, 0o644, o)
	if err != nil {
		return items, err
	}
	it.Detail = detail
	return append(items, it), nil
}

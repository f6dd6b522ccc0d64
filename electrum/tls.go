package electrum

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// PeerCertificate returns the leaf certificate the server presented, or nil
// on a plain TCP connection.
func (c *Client) PeerCertificate() *x509.Certificate {
	tc, ok := c.conn.(*tls.Conn)
	if !ok {
		return nil
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil
	}
	return certs[0]
}

// Pinned returns a TLS configuration that accepts exactly one server
// certificate, byte for byte. Fulcrum serves a self-signed certificate made
// on the device, whose names need not match the address a client dials (a
// forwarded port, an IP); comparing with the known certificate is the check
// that means something there.
func Pinned(cert *x509.Certificate) *tls.Config {
	return &tls.Config{
		// Chain and host-name checks are replaced by VerifyConnection, which
		// Go runs whether or not InsecureSkipVerify is set.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server presented no certificate")
			}
			if got := cs.PeerCertificates[0]; !got.Equal(cert) {
				return fmt.Errorf("server certificate (sha256 %x) is not the pinned one (sha256 %x)",
					sha256.Sum256(got.Raw), sha256.Sum256(cert.Raw))
			}
			return nil
		},
	}
}

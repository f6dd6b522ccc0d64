// Package electrumtest holds the Electrum calls only tests make: the
// banner, the features, the header subscription, and TLS pinned to the
// device's certificate. The device's health check needs none of them, so
// package electrum keeps to the handshake.
package electrumtest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/nodebake/nodebake/internal/electrum"
)

// Client is an electrum.Client that also knows the certificate a TLS
// server presented.
type Client struct {
	*electrum.Client
	addr string
	peer *x509.Certificate
}

// Dial connects like electrum.Dial and keeps the leaf certificate a TLS
// server presents, for PeerCertificate.
func Dial(ctx context.Context, addr string, tlsConfig *tls.Config) (*Client, error) {
	c := &Client{addr: addr}
	if tlsConfig != nil {
		// Go runs VerifyConnection on every handshake, after its own checks
		// if any: the one place that sees the certificate before Dial ends.
		tlsConfig = tlsConfig.Clone()
		verify := tlsConfig.VerifyConnection
		tlsConfig.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 {
				c.peer = cs.PeerCertificates[0]
			}
			if verify != nil {
				return verify(cs)
			}
			return nil
		}
	}
	ec, err := electrum.Dial(ctx, addr, tlsConfig)
	if err != nil {
		return nil, err
	}
	c.Client = ec
	return c, nil
}

// PeerCertificate returns the leaf certificate the server presented, or nil
// on a plain TCP connection.
func (c *Client) PeerCertificate() *x509.Certificate { return c.peer }

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

// Banner returns the server's banner text.
func (c *Client) Banner(ctx context.Context) (string, error) {
	var s string
	err := c.Call(ctx, "server.banner", nil, &s)
	return s, err
}

// Features returns the server.features dictionary (genesis_hash,
// server_version, protocol_min, protocol_max, hosts, ...).
func (c *Client) Features(ctx context.Context) (map[string]any, error) {
	var f map[string]any
	err := c.Call(ctx, "server.features", nil, &f)
	return f, err
}

// HeadersSubscribe subscribes to new block headers and returns the current
// tip: its height and its 80-byte header in hex. Later blocks arrive as
// notifications with method "blockchain.headers.subscribe".
func (c *Client) HeadersSubscribe(ctx context.Context) (height int, hexHeader string, err error) {
	var tip struct {
		Height *int   `json:"height"`
		Hex    string `json:"hex"`
	}
	if err := c.Call(ctx, "blockchain.headers.subscribe", nil, &tip); err != nil {
		return 0, "", err
	}
	if tip.Height == nil || tip.Hex == "" {
		return 0, "", fmt.Errorf("electrum %s: blockchain.headers.subscribe: reply lacks height or hex", c.addr)
	}
	return *tip.Height, tip.Hex, nil
}

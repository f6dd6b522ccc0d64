package electrum

import (
	"context"
	"fmt"
)

// ServerVersion is the handshake. The protocol requires it as the first
// message on a connection, and a server accepts it only once. It returns the
// server's software string (Fulcrum: "Fulcrum 1.11.1") and the protocol
// version both sides will use. A server that shares no version with
// protocolVersion answers with an error or closes the connection. To offer a
// range instead of one version, use Call with params
// []any{clientName, []string{min, max}}.
func (c *Client) ServerVersion(ctx context.Context, clientName, protocolVersion string) (server, protocol string, err error) {
	var r []string
	if err := c.Call(ctx, "server.version", []any{clientName, protocolVersion}, &r); err != nil {
		return "", "", err
	}
	if len(r) != 2 {
		return "", "", fmt.Errorf("electrum %s: server.version: want [server_software, protocol_version], got %q", c.addr, r)
	}
	return r[0], r[1], nil
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

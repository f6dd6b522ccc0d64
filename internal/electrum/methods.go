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

package electrum_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net"
	"testing"
	"time"
)

// A real Electrum server over a real socket, speaking the protocol the way
// Fulcrum does: newline-delimited JSON-RPC 2.0, server.version negotiation
// over [min, max] ranges, error objects, and header pushes interleaved with
// responses once a client has subscribed.

const (
	testServerSoftware = "TestFulcrum 1.0"
	testProtocolMin    = "1.4"
	testProtocolMax    = "1.5"
	testTipHeight      = 100
	// Bitcoin's genesis block header, a real 80-byte header.
	testHeaderHex = "0100000000000000000000000000000000000000000000000000000000000000" +
		"000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa" +
		"4b1e5e4a29ab5f49ffff001d1dac2b7c"
)

type rpcRequest struct {
	JSONRPC string            `json:"jsonrpc"`
	ID      json.RawMessage   `json:"id"`
	Method  string            `json:"method"`
	Params  []json.RawMessage `json:"params"`
}

// serveElectrum accepts connections on ln until the test ends.
func serveElectrum(t *testing.T, ln net.Listener) string {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go handleElectrum(conn)
		}
	}()
	return ln.Addr().String()
}

func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func handleElectrum(conn net.Conn) {
	defer conn.Close()
	in := bufio.NewScanner(conn)
	out := json.NewEncoder(conn) // one object per line
	versioned, subscribed := false, false
	reply := func(id json.RawMessage, result any) {
		out.Encode(map[string]any{"jsonrpc": "2.0", "id": id, "result": result})
	}
	fail := func(id json.RawMessage, code int, msg string) {
		out.Encode(map[string]any{"jsonrpc": "2.0", "id": id, "error": map[string]any{"code": code, "message": msg}})
	}
	for in.Scan() {
		var req rpcRequest
		if err := json.Unmarshal(in.Bytes(), &req); err != nil || req.JSONRPC != "2.0" {
			fail(json.RawMessage("null"), -32700, "parse error")
			continue
		}
		switch req.Method {
		case "server.version":
			if versioned {
				fail(req.ID, 1, "server.version already sent")
				continue
			}
			v, ok := negotiate(req.Params)
			if !ok {
				fail(req.ID, 1, "unsupported protocol version")
				return // as the protocol says: no common version, close
			}
			versioned = true
			reply(req.ID, []string{testServerSoftware, v})
		case "server.banner":
			if subscribed {
				// A block arrives while the client waits, and a late
				// answer to some earlier request: neither is this response.
				out.Encode(map[string]any{"jsonrpc": "2.0", "method": "blockchain.headers.subscribe",
					"params": []any{map[string]any{"height": testTipHeight + 1, "hex": testHeaderHex}}})
				reply(json.RawMessage("9999"), "stale")
			}
			reply(req.ID, "Welcome to TestFulcrum")
		case "server.features":
			reply(req.ID, map[string]any{
				"genesis_hash":   "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
				"hash_function":  "sha256",
				"server_version": testServerSoftware,
				"protocol_min":   testProtocolMin,
				"protocol_max":   testProtocolMax,
				"pruning":        nil,
			})
		case "blockchain.headers.subscribe":
			subscribed = true
			reply(req.ID, map[string]any{"height": testTipHeight, "hex": testHeaderHex})
		case "blockchain.transaction.get":
			fail(req.ID, 1, "Invalid tx hash")
		case "test.hang":
			// never answers
		default:
			fail(req.ID, -32601, "Unknown method")
		}
	}
}

// negotiate applies server.version's rule: use min(client max, server max)
// if that is not below max(client min, server min).
func negotiate(params []json.RawMessage) (string, bool) {
	cmin, cmax := testProtocolMin, testProtocolMin // the protocol's default
	if len(params) > 1 {
		var one string
		var pair []string
		if json.Unmarshal(params[1], &one) == nil {
			cmin, cmax = one, one
		} else if json.Unmarshal(params[1], &pair) == nil && len(pair) == 2 {
			cmin, cmax = pair[0], pair[1]
		} else {
			return "", false
		}
	}
	v := min(cmax, testProtocolMax) // versions here compare correctly as strings
	return v, v >= max(cmin, testProtocolMin)
}

// selfSigned makes a certificate like the one a device generates for
// Fulcrum: self-signed, for 127.0.0.1.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "nodebake-test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

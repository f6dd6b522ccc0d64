package health

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Stand-ins for the real services, on real loopback sockets: bitcoind's
// JSON-RPC with cookie auth, Fulcrum's Electrum port and its stats endpoint,
// each answering in the shape the real program does.

const testCookie = "__cookie__:6d1c0f3f0a9e8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c"

// synced is getblockchaininfo as Bitcoin Core answers on a synced regtest node.
const synced = `{"chain":"regtest","blocks":150,"headers":150,
	"bestblockhash":"3bdb5f4e21b2cd1e0c0b3d4e9a8f6e3b2a1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e","bits":"207fffff",
	"difficulty":4.656542373906925e-10,"time":1700000000,"mediantime":1699999000,"verificationprogress":1,
	"initialblockdownload":false,"chainwork":"000000000000000000000000000000000000000000000000000000000000012e",
	"size_on_disk":45678,"pruned":false,"warnings":[]}`

// writeCookie writes a cookie file the way bitcoind does and returns its path.
func writeCookie(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), ".cookie")
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

// fakeBitcoind serves getblockchaininfo behind Basic auth with testCookie.
// answer returns the HTTP status and JSON-RPC body for the n-th good request.
func fakeBitcoind(t *testing.T, answer func(n int) (int, string)) string {
	t.Helper()
	user, pass, _ := strings.Cut(testCookie, ":")
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="jsonrpc"`)
			w.WriteHeader(http.StatusUnauthorized) // bitcoind sends no body
			return
		}
		var req struct{ Method string }
		if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&req) != nil || req.Method != "getblockchaininfo" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		n++
		status, body := answer(n)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func rpcResult(result string) (int, string) {
	return http.StatusOK, `{"result":` + result + `,"error":null,"id":"health"}`
}

// fakeElectrum is Fulcrum after its first sync: it answers server.version.
func fakeElectrum(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				in := bufio.NewScanner(conn)
				for in.Scan() {
					var req struct {
						ID     json.RawMessage
						Method string
					}
					json.Unmarshal(in.Bytes(), &req)
					resp := map[string]any{"jsonrpc": "2.0", "id": req.ID,
						"error": map[string]any{"code": -32601, "message": "Unknown method"}}
					if req.Method == "server.version" {
						resp = map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": []string{"Fulcrum 1.11.1", "1.4"}}
					}
					json.NewEncoder(conn).Encode(resp)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// fulcrumIndexing is the shape of Fulcrum's /stats while it indexes: no
// Server Manager yet, Controller with its own tip and bitcoind's height.
const fulcrumIndexing = `{"Bitcoin Daemon":{"extant request contexts":1,"request context table size":1,
	"request timeout count":0,"request zombie count":0,"rpc clients":[]},
	"Config":{"stats":["127.0.0.1:8080"]},
	"Controller":{"Chain":"main","Chain tip":"00000000000000000001a2b3","Coin":"BTC","Header count":42,
		"StateMachine":{"BackLog":null,"Blocks downloaded this run":41,"Height":100,"State":"DownloadingBlocks"},
		"TxNum":4242,"TxNum -> TxHash (latest)":"ab12","UTXO set":300,"UTXO set bytes":"0.030 MB",
		"ZMQ Notifiers (active)":{},"activeTimers":{},"tasks":[]},
	"Memory Usage":{"physical kB":123456.0,"virtual kB":654321.0},
	"Server Manager":null}`

// fakeStats serves body at /stats as Fulcrum's stats server does.
func fakeStats(t *testing.T, status int, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stats" {
			http.Error(w, "Error: Unknown endpoint. /stats & /debug are the only valid endpoint I understand.", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		w.Write([]byte(body + "\r\n"))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/stats"
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

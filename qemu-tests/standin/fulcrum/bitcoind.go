package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

// daemon is what the stand-in learnt of bitcoind with getnetworkinfo.
type daemon struct {
	version    int // e.g. 300200
	subversion string
	relayfee   float64
}

// daemonVersion turns bitcoind's version number (300200) into "30.2.0".
func (d *daemon) daemonVersion() string {
	return fmt.Sprintf("%d.%d.%d", d.version/10000, d.version/100%100, d.version%100)
}

// chainInfo is the part of getblockchaininfo Fulcrum's controller reads.
type chainInfo struct {
	Chain                string `json:"chain"`
	Blocks               int    `json:"blocks"`
	Headers              int    `json:"headers"`
	BestBlockHash        string `json:"bestblockhash"`
	InitialBlockDownload bool   `json:"initialblockdownload"`
}

// rpcClient talks to bitcoind as Fulcrum's BitcoinD does: JSON-RPC 1.0
// over keep-alive HTTP, HTTP 200 for results and 500 for errors, and on
// every new connection first the "slow ping" help ["help"]
// (src/BitcoinD.cpp, src/RPC.cpp).
type rpcClient struct {
	url       string
	conf      *config
	ctx       context.Context // cancelled at shutdown
	client    *http.Client
	connected bool
	id        int
}

func newRPCClient(ctx context.Context, c *config) *rpcClient {
	return &rpcClient{url: "http://" + c.bitcoind + "/", conf: c, ctx: ctx, client: &http.Client{Timeout: 30 * time.Second}}
}

// credentials reads the cookie on every call, as Fulcrum re-reads it on
// every (re)connect: bitcoind writes a new one each time it starts.
func (r *rpcClient) credentials() (user, pass string, err error) {
	if r.conf.rpccookie == "" {
		return r.conf.rpcuser, r.conf.rpcpassword, nil
	}
	b, err := os.ReadFile(r.conf.rpccookie)
	if err != nil {
		return "", "", fmt.Errorf("cannot read rpccookie: %v", err)
	}
	user, pass, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	if !ok {
		return "", "", fmt.Errorf("rpccookie %s does not hold user:password", r.conf.rpccookie)
	}
	return user, pass, nil
}

// call makes one call, pinging first on a new connection; a transport
// error drops the connection.
func (r *rpcClient) call(method string, result any, params ...any) error {
	if !r.connected {
		var help string
		if err := r.do("help", &help, "help"); err != nil {
			return fmt.Errorf("slow ping (help): %v", err)
		}
		r.connected = true
	}
	return r.do(method, result, params...)
}

func (r *rpcClient) do(method string, result any, params ...any) error {
	user, pass, err := r.credentials()
	if err != nil {
		r.connected = false
		return err
	}
	if params == nil {
		params = []any{}
	}
	r.id++
	body, _ := json.Marshal(map[string]any{"jsonrpc": "1.0", "id": r.id, "method": method, "params": params})
	req, err := http.NewRequestWithContext(r.ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth(user, pass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		r.connected = false
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusInternalServerError:
	case http.StatusUnauthorized:
		r.connected = false
		return errors.New("authentication failed (HTTP 401): check rpccookie (or rpcuser/rpcpassword)")
	default:
		return fmt.Errorf("%s: unexpected HTTP status %d (bitcoind answers 200, or 500 with an error)", method, resp.StatusCode)
	}
	var reply struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		return fmt.Errorf("%s: HTTP %d and no JSON-RPC reply", method, resp.StatusCode)
	}
	if reply.Error != nil {
		return fmt.Errorf("%s: error %d: %s", method, reply.Error.Code, reply.Error.Message)
	}
	return json.Unmarshal(reply.Result, result)
}

func (r *rpcClient) chainInfo() (chainInfo, error) {
	var info chainInfo
	return info, r.call("getblockchaininfo", &info)
}

func (r *rpcClient) networkInfo() (*daemon, error) {
	var ni struct {
		Version    int     `json:"version"`
		Subversion string  `json:"subversion"`
		RelayFee   float64 `json:"relayfee"`
	}
	if err := r.call("getnetworkinfo", &ni); err != nil {
		return nil, err
	}
	return &daemon{version: ni.Version, subversion: ni.Subversion, relayfee: ni.RelayFee}, nil
}

// block downloads block h: its hash and serialization.
func (r *rpcClient) block(h int) (string, []byte, error) {
	var hash, raw string
	if err := r.call("getblockhash", &hash, h); err != nil {
		return "", nil, err
	}
	if err := r.call("getblock", &raw, hash, 0); err != nil {
		return "", nil, err
	}
	b, err := hex.DecodeString(raw)
	if err != nil {
		return "", nil, fmt.Errorf("getblock %s: not hex: %v", hash, err)
	}
	return hash, b, nil
}

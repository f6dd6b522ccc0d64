package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

// daemon is what the stand-in learnt from bitcoind.
type daemon struct {
	chain      string
	height     int
	headerHex  string // the tip's header
	genesis    string // block 0's hash
	version    int    // getnetworkinfo "version", e.g. 300200
	subversion string
	relayfee   float64
}

// daemonVersion turns bitcoind's version number (300200) into "30.2.0".
func (d *daemon) daemonVersion() string {
	return fmt.Sprintf("%d.%d.%d", d.version/10000, d.version/100%100, d.version%100)
}

type rpcClient struct {
	url    string
	conf   *config
	client *http.Client
}

func newRPCClient(c *config) *rpcClient {
	return &rpcClient{url: "http://" + c.bitcoind + "/", conf: c, client: &http.Client{Timeout: 10 * time.Second}}
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

func (r *rpcClient) call(method string, result any, params ...any) error {
	user, pass, err := r.credentials()
	if err != nil {
		return err
	}
	if params == nil {
		params = []any{}
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	req, err := http.NewRequest(http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth(user, pass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return errors.New("authentication failed (HTTP 401): check rpccookie (or rpcuser/rpcpassword)")
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

// sync asks bitcoind what Fulcrum needs to serve: the chain, its tip and
// the daemon's version.
func (r *rpcClient) sync() (*daemon, error) {
	var info struct {
		Chain                string `json:"chain"`
		Blocks               int    `json:"blocks"`
		BestBlockHash        string `json:"bestblockhash"`
		InitialBlockDownload bool   `json:"initialblockdownload"`
	}
	if err := r.call("getblockchaininfo", &info); err != nil {
		return nil, err
	}
	if info.InitialBlockDownload {
		return nil, errors.New("bitcoind is in initial block download")
	}
	d := &daemon{chain: info.Chain, height: info.Blocks}
	var net struct {
		Version    int     `json:"version"`
		Subversion string  `json:"subversion"`
		RelayFee   float64 `json:"relayfee"`
	}
	if err := r.call("getnetworkinfo", &net); err != nil {
		return nil, err
	}
	d.version, d.subversion, d.relayfee = net.Version, net.Subversion, net.RelayFee
	if err := r.call("getblockheader", &d.headerHex, info.BestBlockHash, false); err != nil {
		return nil, err
	}
	if err := r.call("getblockhash", &d.genesis, 0); err != nil {
		return nil, err
	}
	return d, nil
}

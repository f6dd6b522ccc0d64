package main

import (
	"bytes"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Error codes bitcoind uses for the cases the stand-in can hit.
const (
	codeMisc           = -1
	codeInvalidAddr    = -5 // also "Block not found"
	codeInvalidParam   = -8
	codeInvalidRequest = -32600
	codeMethodNotFound = -32601
	codeParseError     = -32700
)

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// node is the stand-in's RPC server state.
type node struct {
	version  string // e.g. "30.2"
	started  time.Time
	ibd      *ibd
	authUser string
	authPass string
	allowed  []*net.IPNet // besides loopback
	zmq      []zmqNotification
	stopOnce sync.Once
	stopped  chan struct{} // closed by the stop call
}

type zmqNotification struct {
	Type    string `json:"type"`
	Address string `json:"address"`
	HWM     int    `json:"hwm"`
}

// method is one RPC: its parameter names (for named parameters) and code.
type method struct {
	params []string
	call   func(n *node, p params) (any, *rpcError)
}

var methods = map[string]method{
	"getblockchaininfo":   {nil, (*node).getBlockchainInfo},
	"getnetworkinfo":      {nil, (*node).getNetworkInfo},
	"getblockcount":       {nil, (*node).getBlockCount},
	"getbestblockhash":    {nil, (*node).getBestBlockHash},
	"getblockhash":        {[]string{"height"}, (*node).getBlockHash},
	"getblockheader":      {[]string{"blockhash", "verbose"}, (*node).getBlockHeader},
	"getblock":            {[]string{"blockhash", "verbosity"}, (*node).getBlock},
	"getrawmempool":       {[]string{"verbose", "mempool_sequence"}, (*node).getRawMempool},
	"getmempoolinfo":      {nil, (*node).getMempoolInfo},
	"getzmqnotifications": {nil, func(n *node, _ params) (any, *rpcError) { return n.zmq, nil }},
	"uptime":              {nil, func(n *node, _ params) (any, *rpcError) { return int(time.Since(n.started).Seconds()), nil }},
	"stop":                {[]string{"wait"}, (*node).stop},
	"help":                {[]string{"command"}, (*node).help},
}

// params are a call's positional parameters (named ones are put in place).
type params []json.RawMessage

func (p params) has(i int) bool {
	return i < len(p) && len(p[i]) > 0 && string(p[i]) != "null"
}

func (n *node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !n.allowedFrom(r.RemoteAddr) {
		http.Error(w, "", http.StatusForbidden)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "JSONRPC server handles only POST requests", http.StatusMethodNotAllowed)
		return
	}
	if !n.authorized(r) {
		// bitcoind slows down password guessing the same way.
		time.Sleep(250 * time.Millisecond)
		w.Header().Set("WWW-Authenticate", `Basic realm="jsonrpc"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	body = bytes.TrimSpace(body)
	w.Header().Set("Content-Type", "application/json")
	if len(body) > 0 && body[0] == '[' {
		var batch []json.RawMessage
		if json.Unmarshal(body, &batch) != nil {
			writeJSON(w, http.StatusInternalServerError, legacyReply(nil, nil, &rpcError{codeParseError, "Parse error"}))
			return
		}
		var replies []any
		for _, req := range batch {
			if reply, _ := n.handle(req); reply != nil {
				replies = append(replies, reply)
			}
		}
		if replies == nil {
			replies = []any{}
		}
		writeJSON(w, http.StatusOK, replies)
		return
	}
	reply, status := n.handle(body)
	if reply == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, status, reply)
}

// handle answers one request: JSON-RPC 2.0 when it says so ("jsonrpc":
// "2.0"; always HTTP 200, no reply to a notification), else bitcoind's
// legacy 1.0 form (result and error both present; HTTP status from the
// error).
func (n *node) handle(raw json.RawMessage) (reply any, status int) {
	var req struct {
		JSONRPC *string         `json:"jsonrpc"`
		Method  *string         `json:"method"`
		Params  json.RawMessage `json:"params"`
		ID      json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		return legacyReply(nil, nil, &rpcError{codeParseError, "Parse error"}), http.StatusInternalServerError
	}
	v2 := req.JSONRPC != nil && *req.JSONRPC == "2.0"
	if req.JSONRPC != nil && !v2 && *req.JSONRPC != "1.0" {
		return legacyReply(req.ID, nil, &rpcError{codeInvalidRequest, "JSON-RPC version not supported"}), http.StatusBadRequest
	}
	result, rerr := n.call(req.Method, req.Params)
	if v2 {
		if req.ID == nil {
			return nil, http.StatusNoContent
		}
		if rerr != nil {
			return map[string]any{"jsonrpc": "2.0", "error": rerr, "id": req.ID}, http.StatusOK
		}
		return map[string]any{"jsonrpc": "2.0", "result": result, "id": req.ID}, http.StatusOK
	}
	status = http.StatusOK
	if rerr != nil {
		switch rerr.Code {
		case codeInvalidRequest:
			status = http.StatusBadRequest
		case codeMethodNotFound:
			status = http.StatusNotFound
		default:
			status = http.StatusInternalServerError
		}
	}
	return legacyReply(req.ID, result, rerr), status
}

func legacyReply(id json.RawMessage, result any, rerr *rpcError) map[string]any {
	if id == nil {
		id = json.RawMessage("null")
	}
	return map[string]any{"result": result, "error": rerr, "id": id}
}

func (n *node) call(name *string, raw json.RawMessage) (any, *rpcError) {
	if name == nil {
		return nil, &rpcError{codeInvalidRequest, "Missing method"}
	}
	m, ok := methods[*name]
	if !ok {
		return nil, &rpcError{codeMethodNotFound, "Method not found"}
	}
	var p params
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
	case raw[0] == '[':
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, &rpcError{codeInvalidRequest, "Params must be an array or object"}
		}
	case raw[0] == '{':
		var named map[string]json.RawMessage
		if err := json.Unmarshal(raw, &named); err != nil {
			return nil, &rpcError{codeInvalidRequest, "Params must be an array or object"}
		}
		p = make(params, len(m.params))
		for i, pn := range m.params {
			p[i] = named[pn]
			delete(named, pn)
		}
		if len(named) > 0 {
			unknown := slices.Sorted(maps.Keys(named))
			return nil, &rpcError{codeInvalidParam, "Unknown named parameter " + unknown[0]}
		}
	default:
		return nil, &rpcError{codeInvalidRequest, "Params must be an array or object"}
	}
	if len(p) > len(m.params) {
		return nil, &rpcError{codeMisc, fmt.Sprintf("%s takes at most %d parameters (%s)", *name, len(m.params), strings.Join(m.params, ", "))}
	}
	return m.call(n, p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// allowedFrom applies rpcallowip; loopback is always allowed, as in bitcoind.
func (n *node) allowedFrom(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	for _, sub := range n.allowed {
		if sub.Contains(ip) {
			return true
		}
	}
	return false
}

func (n *node) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	u := subtle.ConstantTimeCompare([]byte(user), []byte(n.authUser))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(n.authPass))
	return u&p == 1
}

// --- the calls ---

func (n *node) getBlockchainInfo(params) (any, *rpcError) {
	blocks, headers, inIBD := n.ibd.tip()
	tip := n.ibd.chain.at(blocks)
	return map[string]any{
		"chain":                "main",
		"blocks":               blocks,
		"headers":              headers,
		"bestblockhash":        tip.hash,
		"bits":                 fmt.Sprintf("%08x", tip.bits()),
		"target":               genesisTarget,
		"difficulty":           1,
		"time":                 tip.time(),
		"mediantime":           n.ibd.chain.medianTime(blocks),
		"verificationprogress": n.ibd.progress(blocks),
		"initialblockdownload": inIBD,
		"chainwork":            chainwork(blocks),
		"size_on_disk":         (blocks + 1) * 300, // about the made-up blocks' size, with their undo data
		"pruned":               false,
		"warnings":             []string{"This is a stand-in bitcoind, not Bitcoin Core: not for real use"},
	}, nil
}

func (n *node) getBlockCount(params) (any, *rpcError) {
	blocks, _, _ := n.ibd.tip()
	return blocks, nil
}

func (n *node) getBestBlockHash(params) (any, *rpcError) {
	blocks, _, _ := n.ibd.tip()
	return n.ibd.chain.at(blocks).hash, nil
}

func (n *node) getNetworkInfo(params) (any, *rpcError) {
	major, minor := splitVersion(n.version)
	return map[string]any{
		"version":            major*10000 + minor*100,
		"subversion":         fmt.Sprintf("/Satoshi:%d.%d.0(stand-in)/", major, minor),
		"protocolversion":    70016,
		"localservices":      "0000000000000c09",
		"localservicesnames": []string{"NETWORK", "WITNESS", "NETWORK_LIMITED", "P2P_V2"},
		"localrelay":         true,
		"timeoffset":         0,
		"networkactive":      true,
		"connections":        0,
		"connections_in":     0,
		"connections_out":    0,
		"networks":           []any{},
		"relayfee":           0.00001,
		"incrementalfee":     0.00001,
		"localaddresses":     []any{},
		"warnings":           []string{"This is a stand-in bitcoind, not Bitcoin Core: not for real use"},
	}, nil
}

func (n *node) getBlockHash(p params) (any, *rpcError) {
	if !p.has(0) {
		return nil, &rpcError{codeMisc, "getblockhash height"}
	}
	var h int64
	if err := json.Unmarshal(p[0], &h); err != nil {
		return nil, &rpcError{codeInvalidParam, "JSON value of type " + jsonType(p[0]) + " is not of expected type number"}
	}
	if blocks, _, _ := n.ibd.tip(); h < 0 || h > int64(blocks) {
		return nil, &rpcError{codeInvalidParam, "Block height out of range"}
	}
	return n.ibd.chain.at(int(h)).hash, nil
}

// block finds the block a blockhash parameter names: one bitcoind has at
// least the header of.
func (n *node) block(p params) (int, *rpcError) {
	if !p.has(0) {
		return 0, &rpcError{codeMisc, "missing blockhash"}
	}
	var h string
	if err := json.Unmarshal(p[0], &h); err != nil {
		return 0, &rpcError{codeInvalidParam, "JSON value of type " + jsonType(p[0]) + " is not of expected type string"}
	}
	if len(h) != 64 {
		return 0, &rpcError{codeInvalidParam, fmt.Sprintf("blockhash must be of length 64 (not %d, for '%s')", len(h), h)}
	}
	if strings.Trim(strings.ToLower(h), "0123456789abcdef") != "" {
		return 0, &rpcError{codeInvalidParam, fmt.Sprintf("blockhash must be hexadecimal string (not '%s')", h)}
	}
	height, ok := n.ibd.chain.find(strings.ToLower(h))
	if _, headers, _ := n.ibd.tip(); !ok || height > headers {
		return 0, &rpcError{codeInvalidAddr, "Block not found"}
	}
	return height, nil
}

func (n *node) getBlockHeader(p params) (any, *rpcError) {
	h, err := n.block(p)
	if err != nil {
		return nil, err
	}
	verbose := true
	if p.has(1) && json.Unmarshal(p[1], &verbose) != nil {
		return nil, &rpcError{codeInvalidParam, "verbose must be a boolean"}
	}
	if !verbose {
		return hex.EncodeToString(n.ibd.chain.at(h).header), nil
	}
	blocks, _, _ := n.ibd.tip()
	return n.ibd.chain.headerJSON(h, blocks), nil
}

func (n *node) getBlock(p params) (any, *rpcError) {
	h, err := n.block(p)
	if err != nil {
		return nil, err
	}
	verbosity := 1
	if p.has(1) {
		var b bool
		if json.Unmarshal(p[1], &b) == nil {
			verbosity = map[bool]int{false: 0, true: 1}[b]
		} else if json.Unmarshal(p[1], &verbosity) != nil {
			return nil, &rpcError{codeInvalidParam, "verbosity must be a number or a boolean"}
		}
	}
	blocks, _, _ := n.ibd.tip()
	if h > blocks {
		return nil, &rpcError{codeMisc, "Block not available (not fully downloaded)"}
	}
	b := n.ibd.chain.at(h)
	switch verbosity {
	case 0:
		return hex.EncodeToString(b.raw()), nil
	case 1:
		m := n.ibd.chain.headerJSON(h, blocks)
		m["size"] = b.size()
		m["strippedsize"] = b.size()
		m["weight"] = 4 * b.size()
		m["tx"] = []string{b.txid}
		return m, nil
	}
	return nil, &rpcError{codeInvalidParam, fmt.Sprintf("verbosity %d: the stand-in bitcoind answers verbosity 0 and 1 only", verbosity)}
}

func (n *node) getRawMempool(p params) (any, *rpcError) {
	var verbose, sequence bool
	if p.has(0) && json.Unmarshal(p[0], &verbose) != nil {
		return nil, &rpcError{codeInvalidParam, "verbose must be a boolean"}
	}
	if p.has(1) && json.Unmarshal(p[1], &sequence) != nil {
		return nil, &rpcError{codeInvalidParam, "mempool_sequence must be a boolean"}
	}
	switch {
	case verbose && sequence:
		return nil, &rpcError{codeInvalidParam, "Verbose results cannot contain mempool sequence values."}
	case sequence:
		return map[string]any{"txids": []string{}, "mempool_sequence": 1}, nil
	case verbose:
		return map[string]any{}, nil
	}
	return []string{}, nil
}

func (n *node) getMempoolInfo(params) (any, *rpcError) {
	return map[string]any{
		"loaded":              true,
		"size":                0,
		"bytes":               0,
		"usage":               0,
		"total_fee":           0,
		"maxmempool":          n.ibd.mem.maxmempool,
		"mempoolminfee":       0.00001,
		"minrelaytxfee":       0.00001,
		"incrementalrelayfee": 0.00001,
		"unbroadcastcount":    0,
		"fullrbf":             true,
	}, nil
}

// helpText is what help without a command lists: the calls the stand-in
// answers, in bitcoind's format.
const helpText = `== Blockchain ==
getbestblockhash
getblock "blockhash" ( verbosity )
getblockchaininfo
getblockcount
getblockhash height
getblockheader "blockhash" ( verbose )
getmempoolinfo
getrawmempool ( verbose mempool_sequence )

== Control ==
help ( "command" )
stop
uptime

== Network ==
getnetworkinfo

== Zmq ==
getzmqnotifications`

// help answers as bitcoind does; Fulcrum sends help ["help"] as its first
// request on every connection and counts the connection as up only after
// a good answer to it.
func (n *node) help(p params) (any, *rpcError) {
	var cmd string
	if p.has(0) && json.Unmarshal(p[0], &cmd) != nil {
		return nil, &rpcError{codeInvalidParam, "JSON value of type " + jsonType(p[0]) + " is not of expected type string"}
	}
	switch {
	case cmd == "":
		return helpText, nil
	case cmd == "help":
		return "help ( \"command\" )\n\nList all commands, or get help for a specified command.\n\nArguments:\n1. command    (string, optional, default=all commands) The command to get help on\n\nResult:\n\"str\"    (string) The help text\n", nil
	}
	for _, line := range strings.Split(helpText, "\n") {
		if name, _, _ := strings.Cut(line, " "); name == cmd {
			return line + "\n\n(stand-in: no more help than this)\n", nil
		}
	}
	return "help: unknown command: " + cmd, nil
}

func (n *node) stop(params) (any, *rpcError) {
	n.stopOnce.Do(func() { close(n.stopped) })
	return "Bitcoin Core stopping", nil
}

func jsonType(raw json.RawMessage) string {
	switch {
	case len(raw) == 0:
		return "null"
	case raw[0] == '"':
		return "string"
	case raw[0] == '{':
		return "object"
	case raw[0] == '[':
		return "array"
	case raw[0] == 't' || raw[0] == 'f':
		return "bool"
	case raw[0] == 'n':
		return "null"
	}
	return "number"
}

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// The Electrum protocol range this stand-in speaks, as Fulcrum's
// ServerMisc::MinProtocolVersion/MaxProtocolVersion for BTC.
const (
	protocolMin = "1.4"
	protocolMax = "1.4.2"
)

// Fulcrum's error codes (RPC.h): 1 is a bad request from the client.
const (
	codeBadRequest     = 1
	codeInvalidRequest = -32600
	codeMethodNotFound = -32601
	codeParseError     = -32700
)

// demoLine starts every banner, so no one mistakes the stand-in for a server.
const demoLine = "DEMO — stand-in binaries, not for real use"

type rpcErr struct {
	Code       int    `json:"code"`
	Message    string `json:"message"`
	disconnect bool
}

// session is one client connection (Electrum or admin port).
type session struct {
	f           *fulcrum
	conn        net.Conn
	admin       bool
	sentVersion bool
	// stopAfterReply is set by the admin stop call: Fulcrum stops once the
	// reply is out, so FulcrumAdmin sees it succeed.
	stopAfterReply bool
}

// serve reads newline-delimited JSON-RPC requests (single or batch) and
// answers each on its own line.
func (s *session) serve() {
	defer s.conn.Close()
	r := bufio.NewReaderSize(s.conn, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		line = bytes.TrimSpace(line)
		if len(line) > 0 {
			reply, disconnect := s.handleLine(line)
			if reply != nil {
				b, _ := json.Marshal(reply)
				if _, werr := s.conn.Write(append(b, '\n')); werr != nil {
					return
				}
			}
			if s.stopAfterReply {
				s.f.requestStop("admin RPC")
				return
			}
			if disconnect {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *session) handleLine(line []byte) (reply any, disconnect bool) {
	if line[0] == '[' {
		var batch []json.RawMessage
		if err := json.Unmarshal(line, &batch); err != nil || len(batch) == 0 {
			return errorReply(nil, &rpcErr{Code: codeParseError, Message: "Invalid JSON"}), false
		}
		var replies []any
		for _, req := range batch {
			r, d := s.handle(req)
			if r != nil {
				replies = append(replies, r)
			}
			disconnect = disconnect || d
		}
		return replies, disconnect
	}
	return s.handle(line)
}

func (s *session) handle(raw json.RawMessage) (reply any, disconnect bool) {
	var req struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
		ID     json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		return errorReply(nil, &rpcErr{Code: codeParseError, Message: "Invalid JSON"}), false
	}
	if req.Method == "" {
		return errorReply(req.ID, &rpcErr{Code: codeInvalidRequest, Message: "Invalid request"}), false
	}
	var params []json.RawMessage
	if len(req.Params) > 0 && req.Params[0] == '[' {
		if err := json.Unmarshal(req.Params, &params); err != nil {
			return errorReply(req.ID, &rpcErr{Code: codeInvalidRequest, Message: "Invalid params"}), false
		}
	}
	var result any
	var rerr *rpcErr
	if s.admin {
		result, rerr = s.adminCall(req.Method)
	} else {
		result, rerr = s.call(req.Method, params, req.Params)
	}
	if req.ID == nil { // a notification: no reply
		return nil, rerr != nil && rerr.disconnect
	}
	if rerr != nil {
		return errorReply(req.ID, rerr), rerr.disconnect
	}
	return map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": result}, false
}

func errorReply(id json.RawMessage, e *rpcErr) map[string]any {
	if id == nil {
		id = json.RawMessage("null")
	}
	return map[string]any{"jsonrpc": "2.0", "id": id, "error": e}
}

func (s *session) call(method string, params []json.RawMessage, raw json.RawMessage) (any, *rpcErr) {
	d, st := s.f.daemon(), s.f.db.state()
	switch method {
	case "server.version":
		return s.version(params, raw)
	case "server.banner":
		return s.f.banner(d), nil
	case "server.features":
		return map[string]any{
			"genesis_hash":   st.Genesis,
			"hash_function":  "sha256",
			"hosts":          map[string]any{},
			"protocol_min":   protocolMin,
			"protocol_max":   protocolMax,
			"pruning":        nil,
			"server_version": s.f.subversion(),
		}, nil
	case "server.ping":
		return nil, nil
	case "server.donation_address":
		return s.f.conf.donation, nil
	case "server.peers.subscribe":
		return []any{}, nil
	case "blockchain.headers.subscribe":
		return map[string]any{"height": st.Height, "hex": st.TipHeader}, nil
	case "blockchain.relayfee":
		return d.relayfee, nil
	}
	return nil, &rpcErr{Code: codeMethodNotFound, Message: "Unknown method"}
}

// version negotiates as Fulcrum does: the client sends its name and either
// one protocol version or a [min, max] pair; the answer is the highest
// version both speak, else an error and the connection is closed.
func (s *session) version(params []json.RawMessage, raw json.RawMessage) (any, *rpcErr) {
	if len(params) == 0 && len(raw) > 0 && raw[0] == '{' {
		var named struct {
			ClientName      json.RawMessage `json:"client_name"`
			ProtocolVersion json.RawMessage `json:"protocol_version"`
		}
		json.Unmarshal(raw, &named)
		params = []json.RawMessage{named.ClientName, named.ProtocolVersion}
	}
	if s.sentVersion {
		return nil, &rpcErr{Code: codeBadRequest, Message: "server.version already sent"}
	}
	lo, hi := protocolMin, protocolMin // a missing version means the minimum
	if len(params) > 1 && len(params[1]) > 0 {
		var one string
		var pair []string
		switch {
		case json.Unmarshal(params[1], &one) == nil:
			lo, hi = one, one
		case json.Unmarshal(params[1], &pair) == nil && len(pair) == 2:
			lo, hi = pair[0], pair[1]
			if !validVersion(lo) || !validVersion(hi) || compareVersions(lo, hi) > 0 {
				return nil, &rpcErr{Code: codeBadRequest, Message: "Bad version tuple: " + strings.Join(pair, ", "), disconnect: true}
			}
		default:
			return nil, &rpcErr{Code: codeBadRequest, Message: "Unsupported protocol version", disconnect: true}
		}
	}
	// highest common version: min(clientMax, ourMax), if ≥ max(clientMin, ourMin)
	v := hi
	if compareVersions(v, protocolMax) > 0 {
		v = protocolMax
	}
	low := lo
	if compareVersions(low, protocolMin) < 0 {
		low = protocolMin
	}
	if !validVersion(v) || compareVersions(v, low) < 0 {
		return nil, &rpcErr{Code: codeBadRequest, Message: "Unsupported protocol version", disconnect: true}
	}
	s.sentVersion = true
	return []string{s.f.subversion(), normVersion(v)}, nil
}

func (s *session) adminCall(method string) (any, *rpcErr) {
	switch method {
	case "stop":
		s.stopAfterReply = true
		return true, nil
	case "getinfo":
		return s.f.getinfo(), nil
	}
	return nil, &rpcErr{Code: codeMethodNotFound, Message: "Unknown method (the stand-in's admin port knows stop and getinfo)"}
}

// banner is the banner file with Fulcrum's substitutions, after the DEMO
// line; Fulcrum's default text when there is no file.
func (f *fulcrum) banner(d *daemon) string {
	text := "Connected to a " + f.subversion() + " server"
	if f.conf.banner != "" {
		b, err := os.ReadFile(f.conf.banner)
		if err != nil {
			f.logf("Banner file %s: %v; sending the default banner", f.conf.banner, err)
		} else {
			if len(b) > 16384 {
				b = b[:16384]
			}
			text = strings.NewReplacer(
				"$SERVER_VERSION", version,
				"$SERVER_SUBVERSION", f.subversion(),
				"$DAEMON_VERSION", d.daemonVersion(),
				"$DAEMON_SUBVERSION", d.subversion,
				"$DONATION_ADDRESS", f.conf.donation,
			).Replace(string(b))
		}
	}
	return demoLine + "\n" + text
}

// Versions are dotted numbers; "1.4" is "1.4.0".
func versionParts(v string) ([3]int, bool) {
	var p [3]int
	parts := strings.Split(v, ".")
	if len(parts) == 0 || len(parts) > 3 {
		return p, false
	}
	for i, s := range parts {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return p, false
		}
		p[i] = n
	}
	return p, true
}

func validVersion(v string) bool {
	_, ok := versionParts(v)
	return ok
}

func compareVersions(a, b string) int {
	pa, _ := versionParts(a)
	pb, _ := versionParts(b)
	for i := range pa {
		if pa[i] != pb[i] {
			if pa[i] < pb[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// normVersion prints a version as Fulcrum's Version::toString: the
// revision only when it is not zero.
func normVersion(v string) string {
	p, _ := versionParts(v)
	if p[2] == 0 {
		return fmt.Sprintf("%d.%d", p[0], p[1])
	}
	return fmt.Sprintf("%d.%d.%d", p[0], p[1], p[2])
}

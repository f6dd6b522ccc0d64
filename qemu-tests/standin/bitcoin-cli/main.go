// Command bitcoin-cli is a STAND-IN for Bitcoin Core's bitcoin-cli, built
// by nodebake's test suite (package standin) next to the stand-in bitcoind;
// it is not Bitcoin Core and not for real use. It reads the same options
// and bitcoin.conf as the real one to find the RPC port and credentials
// (the cookie, or rpcuser/rpcpassword), makes one call and prints the
// result as the real one does: strings bare, JSON indented, errors as
// "error code: … error message: …" with exit status 1.
//
//	bitcoin-cli [-datadir=DIR] [-conf=FILE] [-rpcwait] METHOD [PARAMS...]
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nodebake/nodebake/qemu-tests/standin/internal/bitcoinconf"
)

// version is set by package standin with -ldflags "-X main.version=...".
var version = "30.2"

// jsonParams says which parameters of a method are JSON values rather than
// strings, as bitcoin-cli's conversion table does for these calls.
var jsonParams = map[string][]int{
	"getblockhash":   {0},
	"getblock":       {1},
	"getblockheader": {1},
	"getrawmempool":  {0, 1},
	"stop":           {0},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	s, rest, err := bitcoinconf.ParseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "Error parsing command line arguments: %v\n", err)
		return 1
	}
	if _, ok := s.Get("version"); ok {
		fmt.Fprintf(stdout, "Bitcoin Core RPC client version v%s.0 (stand-in)\n\nSTAND-IN: this is not Bitcoin Core; a test program built by nodebake's test suite, not for real use.\n", version)
		return 0
	}
	if len(rest) == 0 {
		fmt.Fprintln(stderr, "error: too few parameters (need at least command)")
		return 1
	}
	home, _ := os.UserHomeDir()
	if err := s.Load(filepath.Join(home, ".bitcoin")); err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	method, params := rest[0], make([]json.RawMessage, 0, len(rest)-1)
	for i, p := range rest[1:] {
		if isJSONParam(method, i) {
			if !json.Valid([]byte(p)) {
				fmt.Fprintf(stderr, "error: Error parsing JSON: %s\n", p)
				return 1
			}
			params = append(params, json.RawMessage(p))
			continue
		}
		b, _ := json.Marshal(p)
		params = append(params, b)
	}
	wait, err := s.Bool("rpcwait", false)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	timeout, _ := strconv.Atoi(s.GetDefault("rpcwaittimeout", "0"))
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(time.Duration(timeout) * time.Second)
	}
	for {
		reply, err := call(s, method, params)
		var transient transientError
		if errors.As(err, &transient) && wait && (deadline.IsZero() || time.Now().Before(deadline)) {
			time.Sleep(time.Second)
			continue
		}
		if err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return 1
		}
		return show(reply, stdout, stderr)
	}
}

func isJSONParam(method string, i int) bool {
	for _, j := range jsonParams[method] {
		if i == j {
			return true
		}
	}
	return false
}

// transientError is a failure -rpcwait waits out: no server yet, or no
// cookie yet.
type transientError struct{ msg string }

func (e transientError) Error() string { return e.msg }

type reply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func call(s *bitcoinconf.Settings, method string, params []json.RawMessage) (*reply, error) {
	host := s.GetDefault("rpcconnect", "127.0.0.1")
	port := s.GetDefault("rpcport", "8332")
	if h, p, err := net.SplitHostPort(host); err == nil {
		host = h
		if _, set := s.Get("rpcport"); !set {
			port = p
		}
	}
	user, pass := s.GetDefault("rpcuser", ""), s.GetDefault("rpcpassword", "")
	if pass == "" {
		cookieFile := s.Path(s.GetDefault("rpccookiefile", ".cookie"))
		b, err := os.ReadFile(cookieFile)
		if err != nil {
			return nil, transientError{fmt.Sprintf("Could not locate RPC credentials. No authentication cookie could be found, and RPC password is not set.  See -rpcpassword and -stdinrpcpass.  Configuration file: (%s)", s.Path(s.GetDefault("conf", "bitcoin.conf")))}
		}
		var ok bool
		if user, pass, ok = strings.Cut(strings.TrimSpace(string(b)), ":"); !ok {
			return nil, fmt.Errorf("%s is not a cookie file (want user:password)", cookieFile)
		}
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "1.0", "id": 1, "method": method, "params": params})
	addr := net.JoinHostPort(host, port)
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(user, pass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, transientError{fmt.Sprintf("timeout on transient error: Could not connect to the server %s\n\nMake sure the bitcoind server is running and that you are connecting to the correct RPC port.\nUse \"bitcoin-cli -help\" for more info.", addr)}
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, errors.New("Authorization failed: Incorrect rpcuser or rpcpassword")
	}
	var r reply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("server returned HTTP error %d", resp.StatusCode)
	}
	return &r, nil
}

func show(r *reply, stdout, stderr io.Writer) int {
	if r.Error != nil {
		fmt.Fprintf(stderr, "error code: %d\nerror message:\n%s\n", r.Error.Code, r.Error.Message)
		return 1
	}
	var str string
	switch {
	case len(r.Result) == 0 || string(r.Result) == "null":
	case json.Unmarshal(r.Result, &str) == nil:
		fmt.Fprintln(stdout, str)
	default:
		var out bytes.Buffer
		if err := json.Indent(&out, r.Result, "", "  "); err != nil {
			out.Write(r.Result)
		}
		fmt.Fprintln(stdout, out.String())
	}
	return 0
}

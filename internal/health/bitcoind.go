package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"

	"github.com/nodebake/nodebake/internal/bytesize"
)

// rpcInWarmup is bitcoind's RPC_IN_WARMUP: the process runs and accepts
// calls but is still loading its block index or verifying recent blocks.
// That can take minutes after an upgrade on slow disks, so it counts as up.
const rpcInWarmup = -28

type blockchainInfo struct {
	Chain                string  `json:"chain"`
	Blocks               int64   `json:"blocks"`
	Headers              int64   `json:"headers"`
	InitialBlockDownload bool    `json:"initialblockdownload"`
	VerificationProgress float64 `json:"verificationprogress"`
}

func checkBitcoind(ctx context.Context, c Config) Status {
	fail := func(format string, a ...any) Status {
		return Status{Err: fmt.Errorf("bitcoind: "+format, a...)}
	}
	user, pass, err := readCookie(c.Cookie)
	if err != nil {
		return fail("%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()

	// JSON-RPC 1.0 is what every Bitcoin Core version speaks; with it,
	// errors come back as HTTP 500 with the error object in the body.
	body := []byte(`{"jsonrpc":"1.0","id":"health","method":"getblockchaininfo","params":[]}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.BitcoindRPC+"/", bytes.NewReader(body))
	if err != nil {
		return fail("rpc %s: %v", c.BitcoindRPC, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(user, pass)
	resp, err := client.Do(req)
	if err != nil {
		return fail("rpc %s: %s", c.BitcoindRPC, httpReason(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return fail("rpc %s: %s: the cookie in %s was refused (left over from an earlier bitcoind run, or another bitcoind on that port?)",
			c.BitcoindRPC, resp.Status, c.Cookie)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, bytesize.MiB))
	if err != nil {
		return fail("rpc %s: reading the answer: %s", c.BitcoindRPC, httpReason(err))
	}
	var r struct {
		Result *blockchainInfo `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &r); err != nil || (r.Result == nil && r.Error == nil) {
		return fail("rpc %s: %s: not a JSON-RPC answer: %s", c.BitcoindRPC, resp.Status, excerpt(raw))
	}
	switch {
	case r.Error != nil && r.Error.Code == rpcInWarmup:
		return Status{OK: true, Detail: "warming up: " + r.Error.Message}
	case r.Error != nil:
		return fail("rpc %s: getblockchaininfo: error %d: %s", c.BitcoindRPC, r.Error.Code, r.Error.Message)
	}
	i := r.Result
	detail := fmt.Sprintf("chain %s, blocks %d, headers %d", i.Chain, i.Blocks, i.Headers)
	if i.InitialBlockDownload {
		detail += fmt.Sprintf(", initial block download %.1f%%", i.VerificationProgress*100)
	} else {
		detail += ", synced"
	}
	return Status{OK: true, Synced: !i.InitialBlockDownload, Detail: detail}
}

// readCookie reads bitcoind's "__cookie__:<password>" file.
func readCookie(path string) (user, pass string, err error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", "", fmt.Errorf("RPC cookie: %w (bitcoind writes it when it starts: is it running?)", err)
	case errors.Is(err, fs.ErrPermission):
		return "", "", fmt.Errorf("RPC cookie: %w (readable by root and group bitcoin only)", err)
	case err != nil:
		return "", "", fmt.Errorf("RPC cookie: %w", err)
	}
	user, pass, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	if !ok || user == "" || pass == "" {
		return "", "", fmt.Errorf("RPC cookie %s: not in user:password form", path)
	}
	return user, pass, nil
}

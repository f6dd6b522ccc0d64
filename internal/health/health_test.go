package health

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

func check(t *testing.T, c Config) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Check(ctx, c)
}

func wantContains(t *testing.T, what, got string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(got, p) {
			t.Errorf("%s = %q\nmissing %q", what, got, p)
		}
	}
}

func TestBitcoindAnswers(t *testing.T) {
	ibd := `{"chain":"main","blocks":1000,"headers":850000,"initialblockdownload":true,"verificationprogress":0.0123}`
	for _, tc := range []struct {
		name       string
		status     int
		body       string
		synced     bool
		wantDetail []string
	}{
		{"synced", http.StatusOK, `{"result":` + synced + `,"error":null,"id":"health"}`, true,
			[]string{"chain regtest, blocks 150, headers 150, synced"}},
		{"initial block download", http.StatusOK, `{"result":` + ibd + `,"error":null,"id":"health"}`, false,
			[]string{"chain main, blocks 1000, headers 850000, initial block download 1.2%"}},
		// Bitcoin Core answers errors with HTTP 500 under JSON-RPC 1.0.
		{"warming up", http.StatusInternalServerError,
			`{"result":null,"error":{"code":-28,"message":"Loading block index…"},"id":"health"}`, false,
			[]string{"warming up: Loading block index…"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rpc := fakeBitcoind(t, func(int) (int, string) { return tc.status, tc.body })
			s := check(t, Config{BitcoindRPC: rpc, Cookie: writeCookie(t, testCookie+"\n"),
				Electrum: closedAddr(t), FulcrumStats: "http://" + closedAddr(t) + "/stats"}).Bitcoind
			if !s.OK || s.Err != nil || s.Synced != tc.synced {
				t.Fatalf("status = %+v, want up, synced %v", s, tc.synced)
			}
			wantContains(t, "detail", s.Detail, tc.wantDetail...)
		})
	}
}

func TestBitcoindFailures(t *testing.T) {
	rpc := fakeBitcoind(t, func(int) (int, string) {
		return http.StatusInternalServerError, `{"result":null,"error":{"code":-1,"message":"internal bug"},"id":"health"}`
	})
	missing := t.TempDir() + "/no/.cookie"
	wrong := writeCookie(t, "__cookie__:0000")
	for _, tc := range []struct {
		name, cookie string
		want         []string
	}{
		{"wrong cookie", wrong, []string{"bitcoind: rpc " + rpc + ": 401 Unauthorized: the cookie in " + wrong + " was refused"}},
		{"cookie missing", missing, []string{"bitcoind: RPC cookie: open " + missing + ": no such file or directory", "is it running?"}},
		{"cookie is a directory", t.TempDir(), []string{"bitcoind: RPC cookie: read ", "is a directory"}},
		{"cookie malformed", writeCookie(t, "garbage"), []string{"not in user:password form"}},
		{"rpc error", writeCookie(t, testCookie), []string{"bitcoind: rpc " + rpc + ": getblockchaininfo: error -1: internal bug"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := check(t, Config{BitcoindRPC: rpc, Cookie: tc.cookie,
				Electrum: closedAddr(t), FulcrumStats: "http://" + closedAddr(t) + "/stats"}).Bitcoind
			if s.OK || s.Err == nil {
				t.Fatalf("status = %+v, want down", s)
			}
			wantContains(t, "error", s.Err.Error(), tc.want...)
		})
	}
}

func TestFulcrumIndexingViaStats(t *testing.T) {
	electrum := closedAddr(t)
	for _, tc := range []struct{ name, body, want string }{
		{"progress", fulcrumIndexing, "indexing: height 41 of 100 (DownloadingBlocks); electrum " + electrum + ": connection refused"},
		{"busy, Fulcrum 1.9+", `{"error":"timed out"}`, "indexing (too busy to report progress: timed out)"},
		{"busy, older Fulcrum", `[null]`, "indexing (too busy to report progress)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := check(t, Config{BitcoindRPC: closedAddr(t), Cookie: writeCookie(t, testCookie),
				Electrum: electrum, FulcrumStats: fakeStats(t, http.StatusOK, tc.body)}).Fulcrum
			if !s.OK || s.Synced || s.Err != nil {
				t.Fatalf("status = %+v, want up and not synced", s)
			}
			wantContains(t, "detail", s.Detail, tc.want)
		})
	}
}

func TestFulcrumSyncedViaElectrum(t *testing.T) {
	s := check(t, Config{BitcoindRPC: closedAddr(t), Cookie: writeCookie(t, testCookie),
		Electrum: fakeElectrum(t), FulcrumStats: "http://" + closedAddr(t) + "/stats"}).Fulcrum
	if !s.OK || !s.Synced || s.Err != nil {
		t.Fatalf("status = %+v, want up and synced", s)
	}
	wantContains(t, "detail", s.Detail, "Fulcrum 1.11.1 (protocol 1.4), serving Electrum")
}

func TestStatsFromSomethingElse(t *testing.T) {
	electrum := closedAddr(t)
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"not found", http.StatusNotFound, "no such page", "404 Not Found: no such page"},
		{"other JSON", http.StatusOK, `{"status":"ok"}`, `not Fulcrum's stats (no Controller "Header count")`},
		{"not JSON", http.StatusOK, `<html>hello</html>`, "not Fulcrum's stats (no JSON object)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stats := fakeStats(t, tc.status, tc.body)
			s := check(t, Config{BitcoindRPC: closedAddr(t), Cookie: writeCookie(t, testCookie),
				Electrum: electrum, FulcrumStats: stats}).Fulcrum
			if s.OK || s.Err == nil {
				t.Fatalf("status = %+v, want down", s)
			}
			wantContains(t, "error", s.Err.Error(), "fulcrum: electrum "+electrum+": connection refused; stats "+stats+": "+tc.want)
		})
	}
}

func TestNothingUpSaysWhatWasTried(t *testing.T) {
	c := Config{BitcoindRPC: closedAddr(t), Cookie: writeCookie(t, testCookie),
		Electrum: closedAddr(t), FulcrumStats: "http://" + closedAddr(t) + "/stats"}
	r := check(t, c)
	if r.OK() || r.Bitcoind.OK || r.Fulcrum.OK {
		t.Fatalf("report says up: %+v", r)
	}
	if got, want := r.Bitcoind.Err.Error(), "bitcoind: rpc "+c.BitcoindRPC+": connection refused"; got != want {
		t.Errorf("bitcoind error %q, want %q", got, want)
	}
	want := "fulcrum: electrum " + c.Electrum + ": connection refused; stats " + c.FulcrumStats + ": connection refused"
	if got := r.Fulcrum.Err.Error(); got != want {
		t.Errorf("fulcrum error %q, want %q", got, want)
	}
	wantContains(t, "report", r.String(), "bitcoind  down: rpc "+c.BitcoindRPC+": connection refused\n",
		"fulcrum   down: electrum "+c.Electrum+": connection refused; stats ")
}

func TestWaitUntilUp(t *testing.T) {
	// bitcoind refuses twice (still starting), then answers.
	rpc := fakeBitcoind(t, func(n int) (int, string) {
		if n <= 2 {
			return http.StatusServiceUnavailable, "starting"
		}
		return rpcResult(synced)
	})
	c := Config{BitcoindRPC: rpc, Cookie: writeCookie(t, testCookie),
		Electrum: fakeElectrum(t), FulcrumStats: "http://" + closedAddr(t) + "/stats"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := Wait(ctx, c, 10*time.Millisecond)
	if err != nil || !r.OK() {
		t.Fatalf("Wait = %v, %v", r, err)
	}
	wantContains(t, "report", r.String(), "bitcoind  up: chain regtest", "fulcrum   up: Fulcrum 1.11.1")
}

func TestWaitGivesUpWithReport(t *testing.T) {
	rpc := fakeBitcoind(t, func(int) (int, string) { return http.StatusServiceUnavailable, "starting" })
	c := Config{BitcoindRPC: rpc, Cookie: writeCookie(t, testCookie),
		Electrum: fakeElectrum(t), FulcrumStats: "http://" + closedAddr(t) + "/stats"}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	r, err := Wait(ctx, c, 20*time.Millisecond)
	if err == nil || r.OK() {
		t.Fatalf("Wait = %v, %v; want an error", r, err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Wait took %v after a 200ms deadline", time.Since(start))
	}
	wantContains(t, "error", err.Error(), "node not healthy before the wait ended (context deadline exceeded)",
		"bitcoind  down: rpc "+rpc+": 503 Service Unavailable: not a JSON-RPC answer: starting", "fulcrum   up: Fulcrum 1.11.1")
}

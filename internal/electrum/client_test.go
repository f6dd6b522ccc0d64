package electrum_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/internal/electrum"
	"github.com/nodebake/nodebake/internal/electrumtest"
)

func dialTest(t *testing.T, addr string, cfg *tls.Config) *electrumtest.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := electrumtest.Dial(ctx, addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestHandshakeBannerFeatures(t *testing.T) {
	c := dialTest(t, serveElectrum(t, listenTCP(t)), nil)
	ctx := testCtx(t)

	server, protocol, err := c.ServerVersion(ctx, "nodebake-test", "1.4")
	if err != nil {
		t.Fatal(err)
	}
	if server != testServerSoftware || protocol != "1.4" {
		t.Errorf("server.version = %q, %q; want %q, 1.4", server, protocol, testServerSoftware)
	}
	banner, err := c.Banner(ctx)
	if err != nil || banner != "Welcome to TestFulcrum" {
		t.Errorf("banner = %q, %v", banner, err)
	}
	f, err := c.Features(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f["server_version"] != testServerSoftware || f["protocol_max"] != testProtocolMax {
		t.Errorf("features = %v", f)
	}
	if c.PeerCertificate() != nil {
		t.Error("plain TCP connection reports a peer certificate")
	}
}

func TestVersionRangeNegotiates(t *testing.T) {
	c := dialTest(t, serveElectrum(t, listenTCP(t)), nil)
	var r []string
	if err := c.Call(testCtx(t), "server.version", []any{"nodebake-test", []string{"1.4", "1.6"}}, &r); err != nil {
		t.Fatal(err)
	}
	if len(r) != 2 || r[1] != testProtocolMax {
		t.Errorf("negotiated %q, want protocol %s (the server's max)", r, testProtocolMax)
	}
}

func TestUnsupportedVersionIsServerError(t *testing.T) {
	c := dialTest(t, serveElectrum(t, listenTCP(t)), nil)
	ctx := testCtx(t)
	_, _, err := c.ServerVersion(ctx, "nodebake-test", "1.0")
	var e *electrum.Error
	if !errors.As(err, &e) || e.Code != 1 || e.Message != "unsupported protocol version" || e.Method != "server.version" {
		t.Fatalf("err = %#v, want *Error code 1 from server.version", err)
	}
	// The server hung up after refusing; the next call must say so.
	if _, err := c.Banner(ctx); err == nil {
		t.Error("call on a connection the server closed succeeded")
	}
}

func TestHeadersSkipsInterleavedNotification(t *testing.T) {
	c := dialTest(t, serveElectrum(t, listenTCP(t)), nil)
	ctx := testCtx(t)
	if _, _, err := c.ServerVersion(ctx, "nodebake-test", "1.4"); err != nil {
		t.Fatal(err)
	}
	height, hdr, err := c.HeadersSubscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if height != testTipHeight || hdr != testHeaderHex || len(hdr) != 160 {
		t.Errorf("tip = %d %q", height, hdr)
	}

	// The server now pushes block 101 and a stale response before the banner.
	banner, err := c.Banner(ctx)
	if err != nil || banner != "Welcome to TestFulcrum" {
		t.Fatalf("banner = %q, %v (a push or stale response was taken for the answer?)", banner, err)
	}
	pushed := c.Notifications()
	if len(pushed) != 1 || pushed[0].Method != "blockchain.headers.subscribe" {
		t.Fatalf("notifications = %+v, want one header push", pushed)
	}
	var tips []struct{ Height int }
	if err := json.Unmarshal(pushed[0].Params, &tips); err != nil || len(tips) != 1 || tips[0].Height != testTipHeight+1 {
		t.Errorf("pushed params %s: %v", pushed[0].Params, err)
	}
	if again := c.Notifications(); len(again) != 0 {
		t.Errorf("notifications not forgotten after reading: %+v", again)
	}
}

func TestServerErrorIsGoError(t *testing.T) {
	addr := serveElectrum(t, listenTCP(t))
	c := dialTest(t, addr, nil)
	ctx := testCtx(t)

	err := c.Call(ctx, "blockchain.transaction.get", []any{"not-a-txid"}, nil)
	var e *electrum.Error
	if !errors.As(err, &e) || e.Code != 1 || e.Message != "Invalid tx hash" {
		t.Fatalf("err = %#v", err)
	}
	if want := "electrum " + addr + ": blockchain.transaction.get: server error 1: Invalid tx hash"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	err = c.Call(ctx, "no.such.method", nil, nil)
	if !errors.As(err, &e) || e.Code != -32601 {
		t.Errorf("unknown method: err = %#v", err)
	}
	// An error response leaves the connection in step.
	if _, err := c.Banner(ctx); err != nil {
		t.Errorf("call after a server error: %v", err)
	}
}

func TestCancelledCallLeavesConnectionUnusable(t *testing.T) {
	c := dialTest(t, serveElectrum(t, listenTCP(t)), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := c.Call(ctx, "test.hang", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	_, err = c.Banner(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "connection unusable after test.hang failed") {
		t.Errorf("next call: %v", err)
	}
}

func TestTLSPinnedCertificate(t *testing.T) {
	cert := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveElectrum(t, ln)

	c := dialTest(t, addr, electrumtest.Pinned(cert.Leaf))
	server, _, err := c.ServerVersion(testCtx(t), "nodebake-test", "1.4")
	if err != nil || server != testServerSoftware {
		t.Fatalf("handshake over TLS: %q, %v", server, err)
	}
	if got := c.PeerCertificate(); got == nil || !got.Equal(cert.Leaf) {
		t.Error("PeerCertificate is not the server's certificate")
	}

	other := selfSigned(t)
	_, err = electrum.Dial(testCtx(t), addr, electrumtest.Pinned(other.Leaf))
	if err == nil || !strings.Contains(err.Error(), "is not the pinned one") {
		t.Errorf("dial with another pinned certificate: %v", err)
	}
	// Without pinning, a self-signed device certificate does not verify.
	_, err = electrum.Dial(testCtx(t), addr, &tls.Config{})
	if err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("dial with system roots: %v", err)
	}
}

// Package health answers "is the node up?" for the two services that make a
// node: bitcoind (its JSON-RPC, with cookie auth) and Fulcrum (the Electrum
// protocol once it has indexed the chain, its stats endpoint before that,
// because Fulcrum opens its Electrum ports only after its first full sync).
//
// "Up" means running and answering, not synced: a fresh node indexes for
// days, and the OTA boot assessment must still be able to bless a new slot
// during that time.
package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config says where to find the services.
type Config struct {
	BitcoindRPC  string // host:port of bitcoind's JSON-RPC
	Cookie       string // bitcoind's RPC cookie file
	Electrum     string // host:port of Fulcrum's plain-TCP Electrum port
	FulcrumStats string // URL of Fulcrum's stats endpoint
}

// Default is where a nodebake image runs the services.
func Default() Config {
	return Config{
		BitcoindRPC:  "127.0.0.1:8332",
		Cookie:       "/data/bitcoin/.cookie",
		Electrum:     "127.0.0.1:50001",
		FulcrumStats: "http://127.0.0.1:8080/stats",
	}
}

// Status is the state of one service.
type Status struct {
	OK     bool   // running and answering
	Synced bool   // bitcoind out of initial block download; Fulcrum serving Electrum
	Detail string // what it said: version, heights, sync state
	Err    error  // why it is not OK, naming everything that was tried
}

// Report is the state of the node.
type Report struct {
	Bitcoind, Fulcrum Status
}

// OK reports whether both services are up.
func (r Report) OK() bool { return r.Bitcoind.OK && r.Fulcrum.OK }

func (r Report) String() string {
	line := func(name string, s Status) string {
		if !s.OK {
			// The error names its service for use on its own; the column
			// already does here.
			return fmt.Sprintf("%-9s down: %s", name, strings.TrimPrefix(s.Err.Error(), name+": "))
		}
		return fmt.Sprintf("%-9s up: %s", name, s.Detail)
	}
	return line("bitcoind", r.Bitcoind) + "\n" + line("fulcrum", r.Fulcrum)
}

// probeTimeout bounds each single attempt, so one service that accepts a
// connection and then hangs cannot use up a caller's whole deadline.
const probeTimeout = 5 * time.Second

// Check asks both services once, at the same time.
func Check(ctx context.Context, c Config) Report {
	var r Report
	var wg sync.WaitGroup
	wg.Go(func() { r.Bitcoind = checkBitcoind(ctx, c) })
	wg.Go(func() { r.Fulcrum = checkFulcrum(ctx, c) })
	wg.Wait()
	return r
}

// Wait checks every interval (which must be positive) until the node is up
// or ctx ends. It returns the last report, and an error carrying that report
// if ctx ended first.
func Wait(ctx context.Context, c Config, interval time.Duration) (Report, error) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last Report
	for i := 0; ; i++ {
		r := Check(ctx, c)
		if r.OK() {
			return r, nil
		}
		// A check cut short by ctx reports the cut, not the services; the
		// one before it says more. Sockets time out at ctx's deadline,
		// possibly a moment before ctx itself reports it.
		deadline, hasDeadline := ctx.Deadline()
		cut := ctx.Err() != nil || hasDeadline && !time.Now().Before(deadline)
		if !cut || i == 0 {
			last = r
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("node not healthy before the wait ended (%v):\n%s", context.Cause(ctx), last)
		case <-tick.C:
		}
	}
}

// client talks to loopback services only: no proxy from the environment,
// and no idle connections kept between probes.
var client = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

// netReason shortens the common network failures to what a person needs; the
// address is already in the message around it. It returns "" for others.
func netReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "no answer in time"
	case errors.Is(err, context.Canceled):
		return "check cancelled"
	}
	return ""
}

// httpReason describes a failed HTTP request without repeating its URL.
func httpReason(err error) string {
	if r := netReason(err); r != "" {
		return r
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// excerpt is the start of a response body, on one line, for error messages.
func excerpt(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

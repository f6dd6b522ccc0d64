// Command Fulcrum is a STAND-IN for Calin Culianu's Fulcrum Electrum
// server, built by nodebake's test suite (package standin) because the
// test machines cannot download Fulcrum. It is not Fulcrum and not for
// real use: it indexes nothing and answers a handful of Electrum calls
// about the tip bitcoind reports.
//
// What it checks is what an image must get right around the real one:
//   - `Fulcrum <conf>` reads fulcrum.conf strictly: an option that this
//     release (baked in with -ldflags "-X main.version=1.11.1" or 2.1.1)
//     does not document, or utxo-cache on 2.x, is an error (exit 1);
//   - it reads bitcoind's cookie (rpccookie) and calls getblockchaininfo,
//     retrying every polltime until bitcoind answers;
//   - then, like Fulcrum once synced, it serves the Electrum protocol on
//     tcp and ssl (TLS with cert/key) and JSON-RPC on admin (FulcrumAdmin's
//     stop and getinfo); the stats HTTP endpoint is up from the start;
//   - SIGINT/SIGTERM (or admin stop) end it cleanly with status 0.
package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// version is the Fulcrum release this stand-in poses as; package standin
// sets it with -ldflags "-X main.version=...".
var version = "2.1.1"

const standIn = "STAND-IN: this is not Fulcrum. It is a test program built by nodebake's test suite that answers a few Electrum calls; not for real use."

func main() {
	os.Exit(run(os.Args[1:]))
}

type fulcrum struct {
	conf    *config
	started time.Time
	tls     *tls.Config

	mu        sync.Mutex
	synced    *daemon // nil until bitcoind answered
	listeners []net.Listener

	stopOnce sync.Once
	stop     chan string // the reason, once
}

func (f *fulcrum) logf(format string, args ...any) {
	fmt.Printf("[%s] %s\n", time.Now().Format("2006-01-02 15:04:05.000"), fmt.Sprintf(format, args...))
}

func (f *fulcrum) subversion() string { return "Fulcrum " + version + " (stand-in)" }

func (f *fulcrum) daemon() *daemon {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.synced
}

func (f *fulcrum) requestStop(reason string) {
	f.stopOnce.Do(func() { f.stop <- reason })
}

// usageError prints an error as Fulcrum does for bad arguments or config.
func usageError(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	fmt.Fprintln(os.Stderr, "Use the -h option to show help.")
	return 1
}

func run(args []string) int {
	var confFile string
	for _, a := range args {
		switch {
		case a == "-v" || a == "--version":
			fmt.Printf("Fulcrum %s (stand-in)\n%s\n", version, standIn)
			return 0
		case a == "-h" || a == "--help":
			fmt.Printf("Usage: Fulcrum [config]  (stand-in for Fulcrum %s: options come from the config file only)\n\n%s\n", version, standIn)
			return 0
		case strings.HasPrefix(a, "-"):
			fmt.Fprintf(os.Stderr, "Fulcrum: Unknown option '%s'.\n", strings.TrimLeft(a, "-"))
			return 1
		case confFile != "":
			return usageError("More than 1 config file was specified. Please specify at most 1 config file.")
		default:
			confFile = a
		}
	}
	if confFile == "" {
		return usageError("No config file given: the stand-in Fulcrum reads its options from one (Fulcrum /data/fulcrum/fulcrum.conf)")
	}
	fh, err := os.Open(confFile)
	if err != nil {
		return usageError("Unable to open config file %s", confFile)
	}
	conf, err := parseConfig(version, confFile, fh)
	fh.Close()
	if err != nil {
		return usageError("%v", err)
	}
	f := &fulcrum{conf: conf, started: time.Now(), stop: make(chan string, 1)}
	if len(conf.ssl) > 0 {
		cert, err := tls.LoadX509KeyPair(conf.cert, conf.key)
		if err != nil {
			return usageError("Failed to load SSL cert %s / key %s: %v", conf.cert, conf.key, err)
		}
		f.tls = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	f.logf("Fulcrum %s (stand-in) - %s - starting up ...", version, time.Now().Format("Mon Jan 2, 2006 15:04:05.000 MST"))
	f.logf("%s", standIn)
	f.logf("Config file %s: %s", confFile, strings.Join(conf.set, ", "))
	if err := os.MkdirAll(conf.datadir, 0o755); err != nil {
		f.logf("FATAL: cannot create datadir %s: %v", conf.datadir, err)
		return 1
	}
	if conf.pidfile != "" {
		if err := os.WriteFile(conf.pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			f.logf("FATAL: cannot write pidfile %s: %v", conf.pidfile, err)
			return 1
		}
		defer os.Remove(conf.pidfile)
	}

	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
	signal.Ignore(syscall.SIGHUP) // as Fulcrum does
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, " -- Caught signal %d, exiting ...\n", s.(syscall.Signal))
		f.requestStop("signal")
	}()

	defer f.closeListeners()
	if len(conf.stats) > 0 {
		f.logf("Stats HTTP: starting %d server(s) ...", len(conf.stats))
	}
	for _, addr := range conf.stats {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			f.logf("FATAL: Stats HTTP %s: %v", addr, err)
			return 1
		}
		f.addListeners(ln)
		mux := http.NewServeMux()
		mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(f.stats())
		})
		go http.Serve(ln, mux)
		f.logf("Stats HTTP: listening on %s", addr)
	}

	fatal := make(chan string, 1)
	go func() {
		d := f.waitForBitcoind()
		if d == nil {
			return
		}
		f.mu.Lock()
		f.synced = d
		f.mu.Unlock()
		ls, err := f.startServices()
		if err != nil {
			fatal <- err.Error()
			return
		}
		f.addListeners(ls...)
	}()

	select {
	case reason := <-f.stop:
		f.logf("Shutdown requested via %s", reason)
	case msg := <-fatal:
		f.logf("FATAL: %s", msg)
		return 1
	}
	f.logf("Stopping Controller ... ")
	f.logf("Shutdown complete")
	return 0
}

func (f *fulcrum) addListeners(ls ...net.Listener) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listeners = append(f.listeners, ls...)
}

func (f *fulcrum) closeListeners() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ln := range f.listeners {
		ln.Close()
	}
}

// waitForBitcoind asks bitcoind every polltime until it answers, logging
// why it did not; nil if a stop came first.
func (f *fulcrum) waitForBitcoind() *daemon {
	rpc := newRPCClient(f.conf)
	f.logf("BitcoinDMgr: connecting to bitcoind at %s ...", f.conf.bitcoind)
	for {
		d, err := rpc.sync()
		if err == nil {
			if d.chain != "main" {
				f.logf("bitcoind is on chain %q; the stand-in serves mainnet", d.chain)
			}
			f.logf("BitcoinDMgr: bitcoind %s (%s) at %s, chain %s, block height %d: up-to-date", d.daemonVersion(), d.subversion, f.conf.bitcoind, d.chain, d.height)
			return d
		}
		f.logf("<BitcoinD> %s: %v; retrying in %v", f.conf.bitcoind, err, f.conf.polltime)
		select {
		case <-time.After(f.conf.polltime):
		case reason := <-f.stop:
			f.stop <- reason // for run's select
			return nil
		}
	}
}

// startServices opens the Electrum (tcp, ssl) and admin ports, as
// Fulcrum's SrvMgr does once it has synced.
func (f *fulcrum) startServices() ([]net.Listener, error) {
	type service struct {
		kind, addr string
		admin      bool
		tls        *tls.Config
	}
	var svcs []service
	for _, a := range f.conf.tcp {
		svcs = append(svcs, service{"TcpSrv", a, false, nil})
	}
	for _, a := range f.conf.ssl {
		svcs = append(svcs, service{"SslSrv", a, false, f.tls})
	}
	for _, a := range f.conf.admin {
		svcs = append(svcs, service{"AdminSrv", a, true, nil})
	}
	f.logf("SrvMgr: starting %d services ...", len(svcs))
	var ls []net.Listener
	for _, s := range svcs {
		f.logf("Starting listener service for %s %s ...", s.kind, s.addr)
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, fmt.Errorf("%s %s: %v", s.kind, s.addr, err)
		}
		if s.tls != nil {
			ln = tls.NewListener(ln, s.tls)
		}
		ls = append(ls, ln)
		f.logf("Service started, listening for connections on %s", s.addr)
		go f.accept(ln, s.admin)
	}
	return ls, nil
}

func (f *fulcrum) accept(ln net.Listener, admin bool) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s := &session{f: f, conn: c, admin: admin}
		go s.serve()
	}
}

// stats is the stats endpoint's and admin getinfo's answer.
func (f *fulcrum) stats() map[string]any {
	d := f.daemon()
	st := map[string]any{
		"stand-in": true,
		"version":  version,
		"synced":   d != nil,
		"uptime":   int(time.Since(f.started).Seconds()),
		"bitcoind": f.conf.bitcoind,
	}
	if d != nil {
		st["chain"] = d.chain
		st["height"] = d.height
		st["bitcoind_version"] = d.daemonVersion()
		st["bitcoind_subversion"] = d.subversion
	}
	return st
}

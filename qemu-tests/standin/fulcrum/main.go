// Command Fulcrum is a STAND-IN for Calin Culianu's Fulcrum Electrum
// server, built by nodebake's test suite (package standin) because the
// test machines cannot download Fulcrum. It is not Fulcrum and not for
// real use: its "index" is the chain of block headers, and it answers a
// handful of Electrum calls about its tip. The release it poses as (1.11.1
// or 2.1.1) is baked in with -ldflags "-X main.version=...".
//
// What it models (facts from /work/shared/reference/upstream-behaviour.md,
// "Fulcrum 2.1.1", read at tags v2.1.1 and v1.11.1 of cculianu/Fulcrum):
//   - `Fulcrum <conf> [--db-upgrade]`; fulcrum.conf names matched
//     case-insensitively but literally (db_mem is not db-mem), unknown
//     names ignored silently (src/Options.cpp ConfigFile::optValue);
//     peering through ConfParseBool (non-zero number, yes, true, on or
//     empty: true; anything else false) and the other booleans through
//     ConfigFile::boolValue, where db_use_fsync, anon_logs, rpa and (2.x)
//     zmq_allow_hashtx and upnp refuse a value it cannot read (src/App.cpp);
//   - db_mem in MiB, at least 50; without it 2.x takes max(512 MiB,
//     min(2 GiB, RAM/4)) and 1.x 512 MiB (src/App.cpp ~L1305–1322);
//     1.x's utxo_cache in MB (utxo-cache, utxo_cache, or the deprecated
//     fast-sync), 2.x refusing all three (src/App.cpp ~L1455–1476);
//   - bitcoind's cookie re-read on every reconnect, and JSON-RPC 1.0 with
//     help ["help"] as the first call of a connection (src/BitcoinD.cpp);
//   - the controller (src/Controller.cpp ~L1150–1281): it indexes while its
//     tip is below bitcoind's blocks, IBD or not; at bitcoind's tip during
//     IBD it polls (RetryInIBD); at the tip with bitcoind out of IBD it
//     logs "Block height N, up-to-date" and only then opens the Electrum
//     tcp/ssl ports and the admin port (src/Controller.cpp ~L179–206);
//     before that FulcrumAdmin gets "connection refused";
//   - the stats HTTP server from startup (src/App.cpp ~L283–288), in the
//     shape of Controller::stats: the indexed height is Controller "Header
//     count" minus 1; Controller "StateMachine" {"State", "Height"} while
//     it processes (Height: bitcoind's blocks); "Server Manager" is null
//     until the servers are open;
//   - its database: progress saved in the datadir, so a restart resumes;
//     1.x writes format 1, 2.x format 2; 2.x opens a 1.x database only
//     with the command-line flag --db-upgrade, after its countdown, and
//     the upgrade is irreversible: 1.x refuses the result
//     (src/Storage.cpp ~L1745–1760; see db.go);
//   - memory: it holds what its configuration grants (package ballast): a
//     400 MiB base plus db_mem (and 1.x's utxo_cache), filling as it
//     indexes;
//   - SIGINT/SIGTERM (or admin stop) end it cleanly with status 0 at any
//     time, saving its progress.
//
// The pace is set in <datadir>/standin.conf (blocks_per_second,
// upgrade_countdown; see readPace), a file only the stand-in reads.
//
// Left out: real indexing (addresses, UTXOs, history), mempool, peers,
// ZMQ, web sockets, bitcoind over TLS, reorgs (it stops following a chain
// that no longer extends its tip), txindex checks, and every Electrum
// method beyond server.*, blockchain.headers.subscribe and
// blockchain.relayfee.
package main

import (
	"context"
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

	"github.com/nodebake/nodebake/qemu-tests/standin/internal/ballast"
)

// version is the Fulcrum release this stand-in poses as; package standin
// sets it with -ldflags "-X main.version=...".
var version = "2.1.1"

const standIn = "STAND-IN: this is not Fulcrum. It is a test program built by nodebake's test suite that follows bitcoind's chain and answers a few Electrum calls; not for real use."

func main() {
	os.Exit(run(os.Args[1:]))
}

type fulcrum struct {
	conf    *config
	pace    pace
	started time.Time
	tls     *tls.Config
	ballast *ballast.Ballast
	db      *database

	mu        sync.Mutex
	bitcoind  *daemon  // nil until bitcoind answered
	sm        *smState // the controller's state machine, for /stats
	target    int      // the longest chain bitcoind reported
	servers   bool     // up-to-date once: Electrum and admin ports open
	listeners []net.Listener

	stopOnce sync.Once
	stop     chan string   // the reason, once
	quit     chan struct{} // closed when stopping
}

func (f *fulcrum) logf(format string, args ...any) {
	fmt.Printf("[%s] %s\n", time.Now().Format("2006-01-02 15:04:05.000"), fmt.Sprintf(format, args...))
}

func (f *fulcrum) subversion() string { return "Fulcrum " + version + " (stand-in)" }

func (f *fulcrum) daemon() *daemon {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bitcoind
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
	var upgrade bool
	for _, a := range args {
		switch {
		case a == "-v" || a == "--version":
			fmt.Printf("Fulcrum %s (stand-in)\n%s\n", version, standIn)
			return 0
		case a == "-h" || a == "--help":
			fmt.Printf("Usage: Fulcrum [config] [--db-upgrade]  (stand-in for Fulcrum %s: other options come from the config file only)\n\n%s\n", version, standIn)
			return 0
		case a == "--db-upgrade" && !strings.HasPrefix(version, "1."):
			upgrade = true
		case strings.HasPrefix(a, "-"):
			fmt.Fprintf(os.Stderr, "Unknown option '%s'.\n", strings.TrimLeft(a, "-"))
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
	conf, err := parseConfig(version, fh, totalRAM())
	fh.Close()
	if err != nil {
		return usageError("%v", err)
	}
	f := &fulcrum{conf: conf, started: time.Now(), ballast: ballast.New(), stop: make(chan string, 1), quit: make(chan struct{})}
	if len(conf.ssl) > 0 {
		cert, err := tls.LoadX509KeyPair(conf.cert, conf.key)
		if err != nil {
			return usageError("Failed to load SSL cert %s / key %s: %v", conf.cert, conf.key, err)
		}
		f.tls = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	f.logf("Fulcrum %s (stand-in) - %s - starting up ...", version, time.Now().Format("Mon Jan 2, 2006 15:04:05.000 MST"))
	f.logf("%s", standIn)
	for _, w := range conf.warnings {
		f.logf("Warning: %s", w)
	}
	f.logf("config: db_mem = %g MiB, utxo_cache = %g MB", float64(conf.dbMem)/mib, float64(conf.utxoCache)/1e6)
	if err := os.MkdirAll(conf.datadir, 0o755); err != nil {
		f.logf("FATAL: Caught exception: cannot create datadir %s: %v", conf.datadir, err)
		return 1
	}
	if f.pace, err = readPace(conf.datadir); err != nil {
		f.logf("FATAL: Caught exception: %v", err)
		return 1
	}
	if conf.pidfile != "" {
		if err := os.WriteFile(conf.pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			f.logf("FATAL: Caught exception: cannot write pidfile %s: %v", conf.pidfile, err)
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

	if err := f.ballast.GrowTo(baseMemory); err != nil {
		f.logf("FATAL: Caught exception: %v", err)
		return 1
	}
	if f.db, err = f.openDB(upgrade, f.pace.upgradeCountdown); err != nil {
		f.logf("FATAL: Caught exception: %v", err)
		return 1
	}
	if err := f.startStats(); err != nil {
		f.logf("FATAL: Caught exception: %v", err)
		return 1
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fatal := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := f.controller(newRPCClient(ctx, conf)); err != nil {
			fatal <- err
		}
	}()

	status := 0
	select {
	case reason := <-f.stop:
		f.logf("Shutdown requested via %s", reason)
	case err := <-fatal:
		f.logf("FATAL: %v", err)
		status = 1
	}
	close(f.quit)
	cancel()
	<-done
	f.logf("Stopping Controller ... ")
	if err := f.db.save(); err != nil {
		f.logf("FATAL: %v", err)
		status = 1
	}
	if status == 0 {
		f.logf("Shutdown complete")
	}
	return status
}

// startStats starts the stats HTTP servers, as Fulcrum does at startup.
func (f *fulcrum) startStats() error {
	if len(f.conf.stats) > 0 {
		f.logf("Stats HTTP: starting %d server(s) ...", len(f.conf.stats))
	}
	for _, addr := range f.conf.stats {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("Stats HTTP %s: %v", addr, err)
		}
		f.mu.Lock()
		f.listeners = append(f.listeners, ln)
		f.mu.Unlock()
		mux := http.NewServeMux()
		mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			json.NewEncoder(w).Encode(f.stats())
		})
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "Error: Unknown endpoint. /stats & /debug are the only valid endpoint I understand.", http.StatusNotFound)
		})
		go http.Serve(ln, mux)
		f.logf("Stats HTTP: listening on %s", addr)
	}
	return nil
}

func (f *fulcrum) closeListeners() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ln := range f.listeners {
		ln.Close()
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

// stats is the stats endpoint's answer, in the shape of Fulcrum's
// Controller::stats: "Controller" "Header count" is the indexed height + 1.
func (f *fulcrum) stats() map[string]any {
	st := f.db.state()
	f.mu.Lock()
	d, sm, servers := f.bitcoind, f.sm, f.servers
	f.mu.Unlock()
	var smMap any // null between rounds and once up-to-date
	if sm != nil {
		m := map[string]any{"State": sm.State, "Height": sm.Height, "BackLog": nil}
		if sm.Downloaded > 0 {
			m["Blocks downloaded this run"] = sm.Downloaded
		}
		smMap = m
	}
	var tip any
	if st.Tip != "" {
		tip = st.Tip
	}
	var srvMgr any
	if servers {
		srvMgr = map[string]any{"tcp": f.conf.tcp, "ssl": f.conf.ssl, "admin": f.conf.admin}
	}
	daemonStats := map[string]any{"bitcoind": f.conf.bitcoind, "connected": d != nil}
	if d != nil {
		daemonStats["version"] = d.daemonVersion()
		daemonStats["subversion"] = d.subversion
	}
	rss, vsz := memoryUsage()
	return map[string]any{
		"Bitcoin Daemon": daemonStats,
		"Config":         f.configMap(),
		"Controller": map[string]any{
			"Chain":        st.Chain,
			"Chain tip":    tip,
			"Coin":         "BTC",
			"Header count": st.Height + 1,
			"StateMachine": smMap,
			"TxNum":        st.TxNum,
		},
		"Memory Usage":   map[string]any{"physical kB": rss, "virtual kB": vsz},
		"Server Manager": srvMgr,
		"Stand-in": map[string]any{
			"version":         version,
			"db format":       st.Format,
			"memory held MiB": f.ballast.Held() / mib,
			"utxo_cache MB":   float64(f.conf.utxoCache) / 1e6,
		},
	}
}

// configMap is the part of Options::toMap the stand-in has.
func (f *fulcrum) configMap() map[string]any {
	return map[string]any{
		"admin":    f.conf.admin,
		"bitcoind": f.conf.bitcoind,
		"datadir":  f.conf.datadir,
		"db_mem":   float64(f.conf.dbMem) / mib,
		"peering":  f.conf.peering,
		"polltime": f.conf.polltime.Seconds(),
		"ssl":      f.conf.ssl,
		"stats":    f.conf.stats,
		"tcp":      f.conf.tcp,
	}
}

// getinfo is the admin port's getinfo, as AdminServer::rpc_getinfo.
func (f *fulcrum) getinfo() map[string]any {
	st := f.db.state()
	return map[string]any{
		"bitcoind":     f.conf.bitcoind,
		"chain":        st.Chain,
		"coin":         "BTC",
		"config":       f.configMap(),
		"genesis_hash": st.Genesis,
		"height":       st.Height,
		"pid":          os.Getpid(),
		"uptime":       fmt.Sprintf("%.1f secs", time.Since(f.started).Seconds()),
		"version":      f.subversion(),
	}
}

// memoryUsage is the process's resident and virtual size in kB, as
// Fulcrum reports them.
func memoryUsage() (rss, vsz float64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, value, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 64)
		switch name {
		case "VmRSS":
			rss = kb
		case "VmSize":
			vsz = kb
		}
	}
	return rss, vsz
}

// totalRAM is the machine's memory in bytes, as Util::getTotalPhysicalRAM.
func totalRAM() int64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}

// Command bitcoind is a STAND-IN for Bitcoin Core's bitcoind, built by
// nodebake's test suite (package standin) because the test machines cannot
// download Bitcoin Core. It is not Bitcoin Core and not for real use: it
// has no peer-to-peer network, no wallet, and its chain after the real
// genesis block is made up.
//
// What it models (facts from /work/shared/reference/upstream-behaviour.md,
// "Bitcoin Core 30.2"):
//   - options from the command line, -conf and bitcoin.conf with
//     includeconf as bitcoind reads them: the first value in a config file
//     wins, includeconf must exist (src/common/args.cpp); server, rpcbind,
//     rpcallowip, rpcport, rpccookiefile, rpccookieperms (owner, group,
//     all; since 28.0), rpcuser/rpcpassword, zmqpub* (it listens there,
//     and getzmqnotifications lists them), pid, startupnotify and
//     shutdownnotify; other options are logged as ignored;
//   - the RPC cookie written with the configured permissions and removed
//     on shutdown; JSON-RPC 1.0 (HTTP 200, or 500 for an error, 404 for an
//     unknown method) and 2.0 with Basic auth; help, which Fulcrum sends
//     first on every connection, and uptime, its ping (Fulcrum's
//     src/BitcoinD.cpp);
//   - an initial block download (src/rpc/blockchain.cpp getblockchaininfo):
//     headers come in first, blocks follow at a set pace, and blocks,
//     headers, verificationprogress (0..1) and initialblockdownload move
//     until the chain's end, where bitcoind leaves IBD for good. The
//     progress is kept in the data directory (standin-chain.json), so a
//     restart continues where the last run stopped. getblockhash,
//     getblockheader and getblock answer for the chain as far as it has
//     got, as Fulcrum reads it; a block whose header is known but not yet
//     its data is "not available (not fully downloaded)";
//   - memory: it holds what its configuration grants (package ballast):
//     a 200 MiB base, dbcache (MiB, default 450 in 30.x) filling as the
//     chain is done and full by its middle, and once out of IBD maxmempool
//     (MB of 10^6 bytes, default 300; blocksonly keeps the mempool empty).
//
// The pace is set in <datadir>/standin.conf (chain_length,
// blocks_per_second, headers_per_second; see readPace), a file only the
// stand-in reads: the demo image's default is 3000 blocks at 35 a second.
//
// Left out: peers, proof of work, reorgs, transactions beyond one coinbase
// per block, a mempool that ever holds anything, new blocks after the
// chain's end, ZMQ messages, wallets, txindex (accepted, not checked),
// other chains than mainnet, and daemon mode.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nodebake/nodebake/qemu-tests/standin/internal/ballast"
	"github.com/nodebake/nodebake/qemu-tests/standin/internal/bitcoinconf"
)

// version is the Bitcoin Core release this stand-in poses as; package
// standin sets it with -ldflags "-X main.version=...".
var version = "30.2"

const standIn = "STAND-IN: this is not Bitcoin Core. It is a test program built by nodebake's test suite that plays an initial block download of a made-up chain; not for real use."

// honoured are the options the stand-in acts on; others are logged as ignored.
var honoured = map[string]bool{
	"conf": true, "datadir": true, "includeconf": true, "server": true, "rpcbind": true, "rpcallowip": true,
	"rpcport": true, "rpccookiefile": true, "rpccookieperms": true, "rpcuser": true, "rpcpassword": true,
	"pid": true, "startupnotify": true, "shutdownnotify": true, "daemon": true, "chain": true,
	"testnet": true, "testnet4": true, "regtest": true, "signet": true, "printtoconsole": true,
	"dbcache": true, "maxmempool": true, "blocksonly": true,
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func logf(format string, args ...any) {
	fmt.Printf("%s %s\n", time.Now().UTC().Format("2006-01-02T15:04:05Z"), fmt.Sprintf(format, args...))
}

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "Error: "+format+"\n", args...)
	return 1
}

func run(args []string) int {
	s, rest, err := bitcoinconf.ParseArgs(args)
	if err != nil {
		return fail("Error parsing command line arguments: %v", err)
	}
	if len(rest) > 0 {
		return fail("Error parsing command line arguments: Command line contains unexpected token '%s', see bitcoind -h for a list of options.", rest[0])
	}
	if _, ok := s.Get("version"); ok {
		fmt.Printf("Bitcoin Core daemon version v%s.0 (stand-in)\n\n%s\n", version, standIn)
		return 0
	}
	if _, ok := s.Get("help"); ok {
		fmt.Printf("Usage: bitcoind [options]  (stand-in for Bitcoin Core %s)\n\n%s\n", version, standIn)
		return 0
	}
	home, _ := os.UserHomeDir()
	if err := s.Load(filepath.Join(home, ".bitcoin")); err != nil {
		return fail("%v", err)
	}
	logf("Bitcoin Core version v%s.0 (stand-in)", version)
	logf("%s", standIn)
	for _, w := range s.Warnings {
		logf("Warning: %s", w)
	}
	if err := checkChain(s); err != nil {
		return fail("%v", err)
	}
	if d, err := s.Bool("daemon", false); err != nil {
		return fail("%v", err)
	} else if d {
		return fail("-daemon: the stand-in bitcoind does not fork: run it in the foreground (systemd Type=notify with -startupnotify, or Type=exec)")
	}
	logf("Using data directory %s", s.DataDir)
	for _, f := range s.ConfFiles {
		logf("Config file: %s", f)
	}
	for _, name := range s.Names() {
		if !honoured[name] && !strings.HasPrefix(name, "zmqpub") {
			logf("Stand-in: ignoring -%s (it has no effect in the stand-in)", name)
		}
	}

	mem, err := memoryOptions(s)
	if err != nil {
		return fail("%v", err)
	}
	p, err := readPace(s.DataDir)
	if err != nil {
		return fail("%v", err)
	}
	d, err := loadIBD(s.DataDir, p, mem)
	if err != nil {
		return fail("%v", err)
	}
	blocks, headers, inIBD := d.tip()
	logf("Stand-in chain: %d of %d blocks, %d headers, initial block download %v; pace %g blocks/s, %g headers/s (%s)",
		blocks, d.st.Length, headers, inIBD, p.blocksPerSecond, p.headersPerSecond, filepath.Join(s.DataDir, PaceFile))
	logf("Cache configuration: dbcache %d MiB, maxmempool %d MB, blocksonly %v; stand-in memory held: %d MiB%s",
		mem.dbcache>>20, mem.maxmempool/1e6, mem.blocksonly, d.ballast.Held()>>20, map[bool]string{true: " (not allocated: " + ballast.SkipEnv + "=1)"}[d.ballast.Skipped()])

	n := &node{version: version, started: time.Now(), ibd: d, stopped: make(chan struct{})}
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()

	if p, ok := s.Get("pid"); ok {
		pidFile := s.Path(p)
		if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return fail("Unable to create the PID file '%s': %v", pidFile, err)
		}
		cleanups = append(cleanups, func() { os.Remove(pidFile) })
	}

	server, err := s.Bool("server", true)
	if err != nil {
		return fail("%v", err)
	}
	var srv *http.Server
	if server {
		var stopRPC func()
		srv, stopRPC, err = startRPC(s, n)
		if err != nil {
			return fail("%v", err)
		}
		cleanups = append(cleanups, stopRPC)
		removeCookie, err := writeAuth(s, n)
		if err != nil {
			return fail("%v", err)
		}
		cleanups = append(cleanups, removeCookie)
	}
	closeZMQ, err := startZMQ(s, n)
	if err != nil {
		return fail("%v", err)
	}
	cleanups = append(cleanups, closeZMQ)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	if cmd, ok := s.Get("startupnotify"); ok && cmd != "" {
		go runNotify(cmd) // bitcoind does not wait for it either
	}
	logf("init message: Done loading")
	stopIBD := make(chan struct{})
	ibdFailed := make(chan error, 1)
	go d.run(stopIBD, ibdFailed)

	status := 0
	select {
	case got := <-sig:
		logf("Shutdown: caught signal %v", got)
	case <-n.stopped:
		logf("Shutdown: requested over RPC")
	case err := <-ibdFailed:
		logf("Error: %v", err)
		status = 1
	}
	close(stopIBD)
	if err := d.save(); err != nil {
		logf("Error: %v", err)
		status = 1
	}
	for _, cmd := range s.All("shutdownnotify") {
		runNotify(cmd)
	}
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(ctx) // lets the stop call's reply go out
		cancel()
	}
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
	logf("Shutdown: done")
	return status
}

// memoryOptions reads dbcache, maxmempool and blocksonly as Bitcoin Core
// 30.x does: integers read leniently (leading digits, else 0), dbcache at
// least 4 MiB, and maxmempool 5 MB by default in blocksonly mode.
func memoryOptions(s *bitcoinconf.Settings) (memory, error) {
	blocksonly, err := s.Bool("blocksonly", false)
	if err != nil {
		return memory{}, err
	}
	dbcache := max(intArg(s.GetDefault("dbcache", "450")), 4)
	mempoolDefault := "300"
	if blocksonly {
		mempoolDefault = "5"
	}
	mempool := max(intArg(s.GetDefault("maxmempool", mempoolDefault)), 0)
	return memory{dbcache: dbcache << 20, maxmempool: mempool * 1_000_000, blocksonly: blocksonly}, nil
}

// intArg reads an integer option as bitcoind's LocaleIndependentAtoi: a
// leading integer, or 0.
func intArg(v string) int64 {
	v = strings.TrimSpace(v)
	end := 0
	for end < len(v) && (v[end] >= '0' && v[end] <= '9' || end == 0 && (v[end] == '-' || v[end] == '+')) {
		end++
	}
	n, err := strconv.ParseInt(v[:end], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// checkChain refuses other chains than mainnet: the stand-in knows only
// mainnet's genesis block.
func checkChain(s *bitcoinconf.Settings) error {
	if c, ok := s.Get("chain"); ok && c != "main" {
		return fmt.Errorf("-chain=%s: the stand-in bitcoind serves mainnet only", c)
	}
	for _, name := range []string{"testnet", "testnet4", "regtest", "signet"} {
		on, err := s.Bool(name, false)
		if err != nil {
			return err
		}
		if on {
			return fmt.Errorf("-%s: the stand-in bitcoind serves mainnet only", name)
		}
	}
	return nil
}

// startRPC listens where bitcoind would: without rpcallowip only on
// loopback (rpcbind is then ignored, with bitcoind's warning); with
// rpcallowip on each rpcbind address, or on all interfaces.
func startRPC(s *bitcoinconf.Settings, n *node) (*http.Server, func(), error) {
	port, err := strconv.Atoi(s.GetDefault("rpcport", "8332"))
	if err != nil || port <= 0 || port > 65535 {
		return nil, nil, fmt.Errorf("Invalid port specified in -rpcport: '%s'", s.GetDefault("rpcport", ""))
	}
	for _, a := range s.All("rpcallowip") {
		sub, err := parseSubnet(a)
		if err != nil {
			return nil, nil, err
		}
		n.allowed = append(n.allowed, sub)
	}
	var endpoints []string
	binds := s.All("rpcbind")
	switch {
	case len(s.All("rpcallowip")) == 0:
		endpoints = []string{net.JoinHostPort("::1", strconv.Itoa(port)), net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
		if len(binds) > 0 {
			logf("WARNING: option -rpcbind was ignored because -rpcallowip was not specified, refusing to allow everyone to connect")
		}
	case len(binds) > 0:
		for _, b := range binds {
			host, p, err := net.SplitHostPort(b)
			if err != nil {
				host, p = strings.Trim(b, "[]"), strconv.Itoa(port)
			}
			endpoints = append(endpoints, net.JoinHostPort(host, p))
		}
	default:
		endpoints = []string{net.JoinHostPort("::", strconv.Itoa(port)), net.JoinHostPort("0.0.0.0", strconv.Itoa(port))}
	}
	srv := &http.Server{Handler: n, ReadHeaderTimeout: 30 * time.Second}
	var bound []net.Listener
	for _, ep := range endpoints {
		network := "tcp4"
		if strings.Contains(ep, "[") {
			network = "tcp6"
		}
		ln, err := net.Listen(network, ep)
		if err != nil {
			logf("Binding RPC on address %s failed: %v", ep, err)
			continue
		}
		logf("Binding RPC on address %s", ep)
		bound = append(bound, ln)
		go srv.Serve(ln)
	}
	if len(bound) == 0 {
		return nil, nil, errors.New("Unable to start HTTP server. See debug log for details.")
	}
	return srv, func() { srv.Close() }, nil
}

// parseSubnet reads an rpcallowip value: an address, address/CIDR or
// address/netmask.
func parseSubnet(s string) (*net.IPNet, error) {
	bad := fmt.Errorf("Invalid -rpcallowip subnet specification: %s. Valid values are a single IP (e.g. 1.2.3.4), a network/netmask (e.g. 1.2.3.4/255.255.255.0), a network/CIDR (e.g. 1.2.3.4/24).", s)
	addr, mask, hasMask := strings.Cut(s, "/")
	ip := net.ParseIP(addr)
	if ip == nil {
		return nil, bad
	}
	if !hasMask {
		bits := 128
		if ip.To4() != nil {
			ip, bits = ip.To4(), 32
		}
		return &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}, nil
	}
	if _, sub, err := net.ParseCIDR(s); err == nil {
		return sub, nil
	}
	m := net.ParseIP(mask)
	if m == nil || ip.To4() == nil || m.To4() == nil {
		return nil, bad
	}
	im := net.IPMask(m.To4())
	return &net.IPNet{IP: ip.To4().Mask(im), Mask: im}, nil
}

// writeAuth sets the RPC credentials: rpcuser/rpcpassword when a password
// is configured, else a fresh cookie. The cookie is written to a temporary
// file and renamed into place, as bitcoind does, so a reader never sees a
// half-written one; the returned func removes it.
func writeAuth(s *bitcoinconf.Settings, n *node) (func(), error) {
	if pass, ok := s.Get("rpcpassword"); ok && pass != "" {
		n.authUser, n.authPass = s.GetDefault("rpcuser", ""), pass
		return func() {}, nil
	}
	perm := os.FileMode(0o600)
	if p, ok := s.Get("rpccookieperms"); ok {
		switch p {
		case "owner":
		case "group":
			perm = 0o640
		case "all":
			perm = 0o644
		default:
			return nil, fmt.Errorf("Invalid -rpccookieperms=%s; must be one of 'owner', 'group', or 'all'.", p)
		}
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	n.authUser, n.authPass = "__cookie__", hex.EncodeToString(secret)
	path := s.Path(s.GetDefault("rpccookiefile", ".cookie"))
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err == nil {
		_, err = io.WriteString(f, n.authUser+":"+n.authPass)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Chmod(tmp, perm) // the umask may have narrowed it
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("Unable to open cookie authentication file %s for writing: %v", tmp, err)
	}
	logf("Generated RPC authentication cookie %s (mode %04o)", path, perm)
	return func() {
		if err := os.Remove(path); err == nil {
			logf("Removed RPC authentication cookie %s", path)
		}
	}, nil
}

// startZMQ listens on each zmqpub* address so that the port is open as
// with the real one. It speaks no ZMTP: connections are accepted and held.
func startZMQ(s *bitcoinconf.Settings, n *node) (func(), error) {
	listening := map[string]net.Listener{}
	for _, name := range s.Names() {
		if !strings.HasPrefix(name, "zmqpub") || strings.HasSuffix(name, "hwm") {
			continue
		}
		for _, addr := range s.All(name) {
			n.zmq = append(n.zmq, zmqNotification{Type: strings.TrimPrefix(name, "zmq"), Address: addr, HWM: 1000})
			if listening[addr] != nil {
				continue
			}
			hostport, ok := strings.CutPrefix(addr, "tcp://")
			if !ok {
				return nil, fmt.Errorf("-%s=%s: the stand-in bitcoind listens on tcp:// addresses only", name, addr)
			}
			ln, err := net.Listen("tcp", hostport)
			if err != nil {
				return nil, fmt.Errorf("Unable to bind ZMQ %s on %s: %v", name, addr, err)
			}
			logf("zmq: Outbound message high water mark for %s at %s is 1000 (stand-in: listening, no messages)", name, addr)
			listening[addr] = ln
			go holdConnections(ln)
		}
	}
	return func() {
		for _, ln := range listening {
			ln.Close()
		}
	}, nil
}

func holdConnections(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			io.Copy(io.Discard, c)
			c.Close()
		}()
	}
}

// runNotify runs a -startupnotify/-shutdownnotify command through the
// shell and waits for it.
func runNotify(cmd string) {
	c := exec.Command("/bin/sh", "-c", cmd)
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	if err := c.Run(); err != nil {
		logf("Warning: %q failed: %v", cmd, err)
	}
}

func splitVersion(v string) (major, minor int) {
	a, b, _ := strings.Cut(v, ".")
	major, _ = strconv.Atoi(a)
	minor, _ = strconv.Atoi(b)
	return major, minor
}

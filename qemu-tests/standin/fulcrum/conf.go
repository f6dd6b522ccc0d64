package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// commonOptions are the config-file options that both Fulcrum 1.11.1 and
// 2.1.1 document in their fulcrum-example-config.conf.
var commonOptions = []string{
	"datadir", "bitcoind", "rpcuser", "rpcpassword", "rpccookie", "polltime", "tcp", "ssl", "ws", "wss",
	"cert", "key", "wss_cert", "wss_key", "admin", "stats", "syslog", "debug", "quiet", "checkdb", "donation",
	"banner", "anon_logs", "hostname", "public_tcp_port", "public_ssl_port", "public_ws_port",
	"public_wss_port", "peering", "announce", "tor_hostname", "tor_banner", "tor_tcp_port", "tor_ssl_port",
	"tor_ws_port", "tor_wss_port", "tor_proxy", "tor_user", "tor_pass", "bitcoind_clients",
	"bitcoind_throttle", "bitcoind_timeout", "bitcoind_tls", "daemon_passthrough_subnets",
	"db_keep_log_file_num", "db_max_open_files", "db_mem", "db_use_fsync", "max_batch", "max_buffer",
	"max_clients_per_ip", "max_history", "max_pending_connections", "max_reorg", "max_subs",
	"max_subs_per_ip", "peering_enforce_unique_ip", "simdjson", "subnets_to_exclude_from_per_ip_limits",
	"tls_disallow_deprecated", "ts_format", "txhash_cache", "workqueue", "worker_threads", "pidfile",
	"rpa", "rpa_start_height", "rpa_history_blocks", "rpa_max_history", "rpa_prefix_bits_min",
}

// versionOptions are the options only one of the releases documents.
var versionOptions = map[string][]string{
	"1.11.1": {"utxo_cache"},
	"2.1.1":  {"upnp", "zmq_allow_hashtx"},
}

// removedOptions make a release refuse to start, with the reason.
var removedOptions = map[string]map[string]string{
	"2.1.1": {"utxo_cache": "this option was removed in Fulcrum 2.0.0 (the 2.x database has no UTXO cache; size memory with db_mem instead)"},
}

// config is what the stand-in uses of fulcrum.conf; everything else known
// is accepted and has no effect.
type config struct {
	file                            string
	datadir, bitcoind               string
	rpcuser, rpcpassword, rpccookie string
	tcp, ssl, admin, stats          []string
	cert, key, banner, donation     string
	pidfile                         string
	polltime                        time.Duration
	set                             []string // every option given, in order, for the log
}

// parseConfig reads a fulcrum.conf as Fulcrum does (name = value, '#'
// comments, names case-insensitive, a bare name is boolean true) but
// strictly: a name that this release of Fulcrum does not document is an
// error instead of being skipped, so that a typo in a generated config
// fails here. '-' and '_' are the same in names (the MiniBolt guide writes
// utxo-cache, the example config utxo_cache).
func parseConfig(version, file string, r io.Reader) (*config, error) {
	extra, ok := versionOptions[version]
	if !ok {
		return nil, fmt.Errorf("stand-in Fulcrum %s: no option list for this version (the stand-in knows 1.11.1 and 2.1.1)", version)
	}
	known := append(slices.Clone(commonOptions), extra...)
	c := &config{file: file, polltime: 2 * time.Second}
	values := map[string][]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, value, _ := strings.Cut(line, "=")
		spelled := strings.TrimSpace(name)
		name = strings.ReplaceAll(strings.ToLower(spelled), "-", "_")
		value = strings.TrimSpace(value)
		if why, gone := removedOptions[version][name]; gone {
			return nil, fmt.Errorf("%s line %d: '%s': %s", file, n, spelled, why)
		}
		if !slices.Contains(known, name) {
			return nil, fmt.Errorf("%s line %d: unknown option '%s': Fulcrum %s does not know it (this stand-in refuses options the real release does not document)", file, n, spelled, version)
		}
		if _, seen := values[name]; !seen {
			c.set = append(c.set, name)
		}
		values[name] = append(values[name], value)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	last := func(name string) string {
		v := values[name]
		if len(v) == 0 {
			return ""
		}
		return v[len(v)-1]
	}
	c.datadir, c.bitcoind = last("datadir"), last("bitcoind")
	c.rpcuser, c.rpcpassword, c.rpccookie = last("rpcuser"), last("rpcpassword"), last("rpccookie")
	c.cert, c.key, c.banner, c.donation, c.pidfile = last("cert"), last("key"), last("banner"), last("donation"), last("pidfile")
	c.tcp, c.ssl = values["tcp"], values["ssl"]
	switch {
	case c.datadir == "":
		return nil, fmt.Errorf("%s: required option missing: datadir", file)
	case c.bitcoind == "":
		return nil, fmt.Errorf("%s: required option missing: bitcoind", file)
	case c.rpccookie != "" && (c.rpcuser != "" || c.rpcpassword != ""):
		return nil, fmt.Errorf("%s: rpccookie cannot be used together with rpcuser/rpcpassword", file)
	case c.rpccookie == "" && (c.rpcuser == "" || c.rpcpassword == ""):
		return nil, fmt.Errorf("%s: required option missing: rpcuser and rpcpassword, or rpccookie", file)
	case len(values["ws"]) > 0 || len(values["wss"]) > 0:
		return nil, fmt.Errorf("%s: ws/wss: the stand-in Fulcrum serves no Web Socket ports", file)
	case len(c.ssl) > 0 && (c.cert == "" || c.key == ""):
		return nil, fmt.Errorf("%s: SSL option requires both cert and key options be specified", file)
	}
	if _, _, err := net.SplitHostPort(c.bitcoind); err != nil {
		return nil, fmt.Errorf("%s: bitcoind = %s: want hostname:port", file, c.bitcoind)
	}
	if len(c.tcp) == 0 && len(c.ssl) == 0 {
		c.tcp = []string{"0.0.0.0:50001"} // Fulcrum's default
	}
	for _, a := range append(slices.Clone(c.tcp), c.ssl...) {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("%s: %s: want interface:port", file, a)
		}
	}
	for _, o := range []struct {
		name string
		to   *[]string
	}{{"admin", &c.admin}, {"stats", &c.stats}} {
		for _, v := range values[o.name] {
			a, err := portOrAddress(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %s = %s: %v", file, o.name, v, err)
			}
			*o.to = append(*o.to, a)
		}
	}
	if p := last("polltime"); p != "" {
		secs, err := strconv.ParseFloat(p, 64)
		if err != nil || secs < 0.5 || secs > 30 {
			return nil, fmt.Errorf("%s: polltime = %s: want seconds between 0.5 and 30", file, p)
		}
		c.polltime = time.Duration(secs * float64(time.Second))
	}
	for _, name := range []string{"syslog", "debug", "quiet", "checkdb", "anon_logs", "peering", "announce", "bitcoind_tls",
		"db_use_fsync", "peering_enforce_unique_ip", "simdjson", "tls_disallow_deprecated", "upnp", "zmq_allow_hashtx", "rpa"} {
		for _, v := range values[name] {
			if _, err := parseBool(v); err != nil {
				return nil, fmt.Errorf("%s: %s = %s: %v", file, name, v, err)
			}
		}
	}
	if b, _ := parseBool(last("bitcoind_tls")); b && len(values["bitcoind_tls"]) > 0 {
		return nil, fmt.Errorf("%s: bitcoind_tls: the stand-in Fulcrum talks plain HTTP to bitcoind", file)
	}
	return c, nil
}

// portOrAddress reads admin/stats: a port alone means 127.0.0.1:port.
func portOrAddress(v string) (string, error) {
	if p, err := strconv.Atoi(v); err == nil {
		if p <= 0 || p > 65535 {
			return "", fmt.Errorf("bad port")
		}
		return net.JoinHostPort("127.0.0.1", v), nil
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		return "", fmt.Errorf("want port or interface:port")
	}
	return v, nil
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "", "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	if n, err := strconv.Atoi(v); err == nil {
		return n != 0, nil
	}
	return false, fmt.Errorf("not a boolean (use true or false)")
}

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

// confFile is fulcrum.conf as Fulcrum's ConfigFile holds it: name = value
// pairs, every occurrence kept; a name alone on a line has the value "".
type confFile struct {
	entries []confEntry
}

type confEntry struct{ name, value string }

// readConfFile parses as ConfigFile::open (src/Options.cpp): lines
// trimmed, "[section]" lines skipped, everything after '#' dropped.
func readConfFile(r io.Reader) (*confFile, error) {
	c := &confFile{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			continue
		}
		line, _, _ = strings.Cut(line, "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, value, _ := strings.Cut(line, "=")
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		c.entries = append(c.entries, confEntry{name, strings.TrimSpace(value)})
	}
	return c, sc.Err()
}

// Names match case-insensitively but literally: db_mem and db-mem are two
// names (ConfigFile::optValue); Fulcrum reads a few options under both
// spellings, and only those.

func (c *confFile) has(name string) bool {
	_, ok := c.value(name)
	return ok
}

// value is the option's last value: Fulcrum's QMultiHash returns the most
// recently inserted one.
func (c *confFile) value(name string) (string, bool) {
	for i := len(c.entries) - 1; i >= 0; i-- {
		if strings.EqualFold(c.entries[i].name, name) {
			return c.entries[i].value, true
		}
	}
	return "", false
}

func (c *confFile) values(name string) []string {
	var vs []string
	for _, e := range c.entries {
		if strings.EqualFold(e.name, name) {
			vs = append(vs, e.value)
		}
	}
	return vs
}

// parseBool is ConfParseBool (src/App.cpp), which peering, announce and
// peering_enforce_unique_ip go through: true for a non-zero number, yes,
// true, on or an empty value; false for anything else, without an error.
func (c *confFile) parseBool(name string, def bool) bool {
	v, ok := c.value(name)
	if !ok {
		return def
	}
	if n, err := strconv.Atoi(v); err == nil && n != 0 {
		return true
	}
	return slices.Contains([]string{"yes", "true", "on", ""}, strings.ToLower(v))
}

// boolValue is ConfigFile::boolValue, which the other boolean options go
// through: true/yes/on/"" and false/no/off, else an integer; ok is false
// (and the result def) for anything else.
func (c *confFile) boolValue(name string, def bool) (val, ok bool) {
	v, present := c.value(name)
	if !present {
		return def, false
	}
	switch strings.ToLower(v) {
	case "true", "yes", "on", "":
		return true, true
	case "false", "no", "off":
		return false, true
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return def, false
	}
	return n != 0, true
}

const (
	mib = 1 << 20
	// dbMemMin is Fulcrum's smallest db_mem (Options::DBOpts::maxMemMin).
	dbMemMin = 50 * mib
	// minUtxoCache is 1.x's smallest non-zero utxo_cache, in bytes (MB).
	minUtxoCache = 64_000_000
)

// config is what the stand-in uses of fulcrum.conf. Options it does not
// read are ignored without a word, as Fulcrum ignores unknown names.
type config struct {
	datadir, bitcoind               string
	rpcuser, rpcpassword, rpccookie string
	tcp, ssl, admin, stats          []string
	cert, key, banner, donation     string
	pidfile                         string
	polltime                        time.Duration
	peering                         bool
	dbMem                           int64 // bytes
	utxoCache                       int64 // bytes; 1.x only
	warnings                        []string
}

// parseConfig reads a fulcrum.conf as Fulcrum version does. ram is the
// machine's memory, for 2.x's default db_mem.
func parseConfig(version string, r io.Reader, ram int64) (*config, error) {
	cf, err := readConfFile(r)
	if err != nil {
		return nil, err
	}
	v2 := !strings.HasPrefix(version, "1.")
	c := &config{polltime: 2 * time.Second}
	get := func(name string) string { v, _ := cf.value(name); return v }
	c.datadir, c.bitcoind = get("datadir"), get("bitcoind")
	c.rpcuser, c.rpcpassword, c.rpccookie = get("rpcuser"), get("rpcpassword"), get("rpccookie")
	c.cert, c.key, c.banner, c.donation, c.pidfile = get("cert"), get("key"), get("banner"), get("donation"), get("pidfile")
	c.tcp, c.ssl = cf.values("tcp"), cf.values("ssl")
	switch {
	case c.datadir == "":
		return nil, fmt.Errorf("No datadir specified")
	case c.bitcoind == "":
		return nil, fmt.Errorf("Required option missing: bitcoind")
	case c.rpccookie != "" && (c.rpcuser != "" || c.rpcpassword != ""):
		return nil, fmt.Errorf("rpccookie cannot be used together with rpcuser/rpcpassword")
	case c.rpccookie == "" && (c.rpcuser == "" || c.rpcpassword == ""):
		return nil, fmt.Errorf("Required option missing: rpcuser and rpcpassword, or rpccookie")
	case len(cf.values("ws")) > 0 || len(cf.values("wss")) > 0:
		return nil, fmt.Errorf("ws/wss: the stand-in Fulcrum serves no Web Socket ports")
	case len(c.ssl) > 0 && (c.cert == "" || c.key == ""):
		return nil, fmt.Errorf("SSL option requires both cert and key options be specified")
	}
	if _, _, err := net.SplitHostPort(c.bitcoind); err != nil {
		return nil, fmt.Errorf("bitcoind = %s: want hostname:port", c.bitcoind)
	}
	if len(c.tcp) == 0 && len(c.ssl) == 0 {
		c.tcp = []string{"0.0.0.0:50001"} // Fulcrum's default
	}
	for _, a := range append(slices.Clone(c.tcp), c.ssl...) {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("%s: want interface:port", a)
		}
	}
	for _, o := range []struct {
		name string
		to   *[]string
	}{{"admin", &c.admin}, {"stats", &c.stats}} {
		for _, v := range cf.values(o.name) {
			a, err := portOrAddress(v)
			if err != nil {
				return nil, fmt.Errorf("%s = %s: %v", o.name, v, err)
			}
			*o.to = append(*o.to, a)
		}
	}
	if p, ok := cf.value("polltime"); ok {
		secs, err := strconv.ParseFloat(p, 64)
		if err != nil || secs < 0.5 || secs > 30 {
			return nil, fmt.Errorf("polltime = %s: want seconds between 0.5 and 30", p)
		}
		c.polltime = time.Duration(secs * float64(time.Second))
	}
	c.peering = cf.parseBool("peering", true)

	// These booleans refuse a value boolValue cannot read (src/App.cpp).
	strict := []string{"db_use_fsync", "anon_logs", "rpa"}
	if v2 {
		strict = append(strict, "zmq_allow_hashtx", "upnp")
	}
	for _, name := range strict {
		if _, ok := cf.boolValue(name, false); cf.has(name) && !ok {
			return nil, fmt.Errorf("%s: bad value. Specify a boolean value such as 0, 1, true, false, yes, no", name)
		}
	}
	tlsA, _ := cf.boolValue("bitcoind-tls", false)
	if tls, _ := cf.boolValue("bitcoind_tls", tlsA); tls {
		return nil, fmt.Errorf("bitcoind_tls: the stand-in Fulcrum talks plain HTTP to bitcoind")
	}

	if err := c.memory(cf, v2, ram); err != nil {
		return nil, err
	}
	return c, nil
}

// memory reads db_mem (MiB) and, on 1.x, utxo_cache (MB), or refuses the
// latter on 2.x, as src/App.cpp does.
func (c *config) memory(cf *confFile, v2 bool, ram int64) error {
	if v, ok := cf.value("db_mem"); ok {
		mb, err := strconv.ParseFloat(v, 64)
		if err != nil || mb < 0 || int64(mb*mib) < dbMemMin {
			return fmt.Errorf("db_mem: bad value. Specify a value in the range [50.0, 17592186044416.0]")
		}
		c.dbMem = int64(mb * mib)
	} else if v2 {
		// 2.x: 25% of the RAM, at most 2 GiB and at least 512 MiB.
		c.dbMem = max(min(2048*mib, ram/4), 512*mib)
	} else {
		c.dbMem = 512 * mib
	}
	var key, val string
	for _, k := range []string{"utxo-cache", "utxo_cache", "fast-sync"} {
		if v, ok := cf.value(k); ok {
			key, val = k, v
			break
		}
	}
	switch {
	case key == "":
	case v2:
		return fmt.Errorf("The UTXO cache facility has been removed, use `db_mem` instead!\n\n"+
			"The conf file option `%s` has been removed from Fulcrum since it is incompatible with the\n"+
			"improved database consistency guarantees of Fulcrum. If you wish to leverage system memory to\n"+
			"maximize initial sync speed, then please set the `db_mem` conf file option and/or the --db_mem\n"+
			"CLI option and provide additional memory there, to the DB itsef, which is a better use of\n"+
			"system resources than the old `%s` option ever was.\n", key, key)
	default:
		if key == "fast-sync" {
			c.warnings = append(c.warnings, "The conf file option `fast-sync` has been renamed to `utxo_cache`. The old option `fast-sync` is deprecated. Please edit your conf file and use `utxo_cache` instead.")
		}
		mb, err := strconv.ParseFloat(val, 64)
		if err != nil || mb < 0 {
			return fmt.Errorf("%s: Please specify a positive numeric value in MB, or 0 to disable", key)
		}
		c.utxoCache = int64(mb * 1e6)
		if c.utxoCache > 0 && c.utxoCache < minUtxoCache {
			return fmt.Errorf("%s: Specified value %s is too small (minimum: 64.0 MB)", key, val)
		}
	}
	return nil
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

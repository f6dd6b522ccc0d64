package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Negotiation as in Fulcrum's Server::rpc_server_version: the highest
// version both sides speak, or an error that closes the connection.
func TestVersionNegotiation(t *testing.T) {
	f := &fulcrum{conf: &config{}}
	for _, c := range []struct {
		params string
		want   string // the negotiated version, or "" for an error
	}{
		{`["w", "1.4"]`, "1.4"},
		{`["w", "1.4.2"]`, "1.4.2"},
		{`["w", ["1.4", "1.4"]]`, "1.4"},
		{`["w", ["1.2", "1.4.1"]]`, "1.4.1"},
		{`["w", ["1.4", "1.6"]]`, "1.4.2"},
		{`["w"]`, "1.4"},
		{`[]`, "1.4"},
		{`["w", "1.2"]`, ""},
		{`["w", "1.5"]`, ""},
		{`["w", ["1.5", "1.6"]]`, ""},
		{`["w", ["1.4", "1.2"]]`, ""},
		{`["w", "one.four"]`, ""},
	} {
		var params []json.RawMessage
		if err := json.Unmarshal([]byte(c.params), &params); err != nil {
			t.Fatal(err)
		}
		s := &session{f: f}
		res, rerr := s.version(params, json.RawMessage(c.params))
		switch {
		case c.want == "" && (rerr == nil || !rerr.disconnect):
			t.Errorf("%s: %v, want an error that disconnects", c.params, res)
		case c.want != "" && (rerr != nil || res.([]string)[1] != c.want):
			t.Errorf("%s: %v %v, want %s", c.params, res, rerr, c.want)
		}
	}
	s := &session{f: f}
	s.version(nil, nil)
	if _, rerr := s.version(nil, nil); rerr == nil || rerr.Message != "server.version already sent" {
		t.Errorf("second server.version: %v", rerr)
	}
}

func TestConfig(t *testing.T) {
	base := "datadir = /d\nbitcoind = 127.0.0.1:8332\nrpccookie = /c  # comment\n"
	parse := func(version, text string) (*config, error) {
		return parseConfig(version, strings.NewReader(text), 16<<30)
	}
	c, err := parse("2.1.1", base+"[main]\nADMIN = 8000\nstats = 0.0.0.0:8080\nssl = 0.0.0.0:50002\ncert = c.pem\nkey = k.pem\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.rpccookie != "/c" || strings.Join(c.admin, " ") != "127.0.0.1:8000" || strings.Join(c.stats, " ") != "0.0.0.0:8080" ||
		len(c.tcp) != 0 || strings.Join(c.ssl, " ") != "0.0.0.0:50002" {
		t.Errorf("parsed %+v", c)
	}
	if c, err := parse("1.11.1", base); err != nil || strings.Join(c.tcp, " ") != "0.0.0.0:50001" {
		t.Errorf("default tcp: %v %v", c, err)
	}

	// Unknown names are ignored, and names are literal: db-mem is not db_mem.
	for v, dflt := range map[string]int64{"2.1.1": 2048, "1.11.1": 512} { // with 16 GiB of RAM
		c, err := parse(v, base+"no_such_option = 1\ndb-mem = 100\nfast_sync = 300\n")
		if err != nil {
			t.Errorf("%s with unknown names: %v", v, err)
		} else if c.dbMem != dflt*mib || c.utxoCache != 0 {
			t.Errorf("%s: db-mem = 100, fast_sync = 300 made db_mem %d MiB, utxo_cache %d, want the default %d MiB and none", v, c.dbMem/mib, c.utxoCache, dflt)
		}
		if c, err := parse(v, base+"DB_MEM = 100\ndb_mem = 1024.5\n"); err != nil || c.dbMem != int64(1024.5*mib) {
			t.Errorf("%s: db_mem = 1024.5 (the last value): %v %v", v, c, err)
		}
	}
	// Without db_mem: 2.x takes a quarter of the RAM within [512 MiB, 2 GiB], 1.x 512 MiB.
	for ram, want := range map[int64]int64{1 << 30: 512, 4 << 30: 1024, 64 << 30: 2048} {
		if c, err := parseConfig("2.1.1", strings.NewReader(base), ram); err != nil || c.dbMem != want*mib {
			t.Errorf("2.x default db_mem with %d MiB of RAM: %v %v, want %d MiB", ram/mib, c, err, want)
		}
	}

	// peering goes through ConfParseBool: no value is an error.
	for value, want := range map[string]bool{"on": true, "yes": true, "1": true, "": true, "TRUE": true, "-2": true,
		"off": false, "maybe": false, "0": false, "false": false} {
		c, err := parse("2.1.1", base+"peering = "+value+"\n")
		if err != nil || c.peering != want {
			t.Errorf("peering = %q: %v %v, want %v", value, c, err, want)
		}
	}
	if c, _ := parse("2.1.1", base+"PEERING\n"); c == nil || !c.peering {
		t.Error("a bare PEERING is not true")
	}

	for _, tc := range []struct{ version, text, want string }{
		{"2.1.1", "datadir = /d\nrpccookie = /c\n", "Required option missing: bitcoind"},
		{"2.1.1", base + "rpcuser = u\n", "rpccookie cannot be used together with rpcuser/rpcpassword"},
		{"2.1.1", base + "ssl = 0.0.0.0:50002\n", "SSL option requires both cert and key"},
		{"2.1.1", base + "wss = 0.0.0.0:50004\n", "serves no Web Socket ports"},
		{"2.1.1", base + "polltime = 60\n", "polltime = 60: want seconds between 0.5 and 30"},
		{"2.1.1", base + "tcp = 50001\n", "50001: want interface:port"},
		{"2.1.1", base + "db_mem = 49\n", "db_mem: bad value. Specify a value in the range [50.0,"},
		{"2.1.1", base + "utxo-cache = 2000\n", "The conf file option `utxo-cache` has been removed"},
		{"2.1.1", base + "utxo_cache = 2000\n", "The conf file option `utxo_cache` has been removed"},
		{"2.1.1", base + "fast-sync = 2000\n", "The UTXO cache facility has been removed, use `db_mem` instead!"},
		{"2.1.1", base + "anon_logs = maybe\n", "anon_logs: bad value. Specify a boolean value"},
		{"2.1.1", base + "upnp = maybe\n", "upnp: bad value"},
		{"1.11.1", base + "utxo_cache = 10\n", "utxo_cache: Specified value 10 is too small (minimum: 64.0 MB)"},
		{"1.11.1", base + "utxo-cache = lots\n", "utxo-cache: Please specify a positive numeric value in MB"},
	} {
		if _, err := parse(tc.version, tc.text); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: %v, want %q", tc.version, tc.text, err, tc.want)
		}
	}
	// 1.x reads utxo_cache in MB under three names; upnp is unknown to it.
	for _, line := range []string{"utxo-cache = 2000", "utxo_cache = 2000", "fast-sync = 2000"} {
		c, err := parse("1.11.1", base+line+"\nupnp = maybe\n")
		if err != nil || c.utxoCache != 2_000_000_000 {
			t.Errorf("1.11.1 %q: %v %v", line, c, err)
		}
		if deprecated := len(c.warnings) > 0; deprecated != strings.HasPrefix(line, "fast-sync") {
			t.Errorf("1.11.1 %q: warnings %q", line, c.warnings)
		}
	}
}

func TestPaceFile(t *testing.T) {
	dir := t.TempDir()
	if p, err := readPace(dir); err != nil || p != defaultPace {
		t.Errorf("no pace file: %+v %v", p, err)
	}
	os.WriteFile(filepath.Join(dir, PaceFile), []byte("# test\nblocks_per_second = 5\nupgrade_countdown = 0.5\n"), 0o644)
	if p, err := readPace(dir); err != nil || p.blocksPerSecond != 5 || p.upgradeCountdown != 500*time.Millisecond {
		t.Errorf("pace file: %+v %v", p, err)
	}
	os.WriteFile(filepath.Join(dir, PaceFile), []byte("block_per_second = 5\n"), 0o644)
	if _, err := readPace(dir); err == nil || !strings.Contains(err.Error(), `unknown setting "block_per_second"`) {
		t.Errorf("a misspelt setting: %v", err)
	}
}

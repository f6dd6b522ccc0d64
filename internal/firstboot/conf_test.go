package firstboot

import (
	"strings"
	"testing"

	"github.com/nodebake/nodebake/internal/bytesize"
)

// lines returns the non-comment lines of a config, trimmed.
func activeLines(conf []byte) []string {
	var out []string
	for _, l := range strings.Split(string(conf), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func hasLine(conf []byte, line string) bool {
	for _, l := range strings.Split(string(conf), "\n") {
		if l == line {
			return true
		}
	}
	return false
}

func TestBitcoinConfig(t *testing.T) {
	s := Size(Hardware{MemTotal: 4 * bytesize.GiB, CPUs: 2}, 2)
	conf, warnings := BitcoinConfig(s, false, nil)
	if len(warnings) > 0 {
		t.Errorf("warnings for no override: %q", warnings)
	}
	for _, want := range []string{
		"server=1", "txindex=1", "disablewallet=1", "datadir=/data/bitcoin", "rpccookieperms=group",
		"rpcbind=127.0.0.1", "rpcallowip=127.0.0.1", "listen=1", "bind=127.0.0.1", "bind=127.0.0.1=onion",
		"proxy=127.0.0.1:9050", "zmqpubhashblock=tcp://127.0.0.1:8433", "dbcache=2048", "maxmempool=5", "blocksonly=1",
		"includeconf=/data/bitcoin/bitcoin.override.conf",
	} {
		if !hasLine(conf, want) {
			t.Errorf("bitcoin.conf lacks %q:\n%s", want, conf)
		}
	}
	synced, _ := BitcoinConfig(s, true, nil)
	if !hasLine(synced, "dbcache=450") || !hasLine(synced, "maxmempool=300") || strings.Contains(string(synced), "blocksonly") {
		t.Errorf("synced bitcoin.conf: want dbcache=450, maxmempool=300, no blocksonly:\n%s", synced)
	}
}

// TestBitcoinConfigOverride checks that a setting in the override file
// replaces the image's: bitcoind would otherwise take the image's value,
// the first it reads.
func TestBitcoinConfigOverride(t *testing.T) {
	s := Size(Hardware{MemTotal: 8 * bytesize.GiB, CPUs: 4}, 2)
	override := []byte(`# my node
dbcache = 1000
nolisten=1
main.proxy=10.0.0.1:9050
bind=0.0.0.0   # a comment
[test]
maxmempool=5
[main]
rpcallowip=192.168.1.0/24
`)
	conf, warnings := BitcoinConfig(s, false, override)
	if len(warnings) > 0 {
		t.Errorf("warnings for known keys: %q", warnings)
	}
	for _, key := range []string{"dbcache", "listen", "proxy", "bind", "rpcallowip"} {
		for _, l := range activeLines(conf) {
			if strings.HasPrefix(l, key+"=") {
				t.Errorf("%s is set in the override, yet bitcoin.conf still has %q", key, l)
			}
		}
	}
	for _, want := range []string{"#dbcache=4096   (set in " + BitcoinOverride + ")", "#bind=127.0.0.1=onion   (set in " + BitcoinOverride + ")"} {
		if !hasLine(conf, want) {
			t.Errorf("bitcoin.conf lacks %q:\n%s", want, conf)
		}
	}
	// [test] applies to testnet only: mainnet keeps the image's mempool.
	if !hasLine(conf, "maxmempool=5") {
		t.Errorf("a [test] setting replaced the mainnet maxmempool:\n%s", conf)
	}
	if !hasLine(conf, "includeconf="+BitcoinOverride) {
		t.Error("includeconf is gone")
	}
}

func TestFulcrumConfig(t *testing.T) {
	s := Size(Hardware{MemTotal: 4 * bytesize.GiB, CPUs: 2}, 2)
	conf, warnings := FulcrumConfig(s, nil)
	if len(warnings) > 0 {
		t.Errorf("warnings %q for an empty override", warnings)
	}
	for _, want := range []string{
		"bitcoind = 127.0.0.1:8332", "rpccookie = /data/bitcoin/.cookie", "admin = 8000",
		"datadir = /data/fulcrum/fulcrum_db", "cert = /data/fulcrum/cert.pem", "key = /data/fulcrum/key.pem",
		"ssl = 0.0.0.0:50002", "tcp = 0.0.0.0:50001", "peering = false", "stats = 127.0.0.1:8080",
		"banner = /data/fulcrum/fulcrum-banner.txt",
		"db_mem = 1024", "db_max_open_files = 200", "bitcoind_timeout = 600", "bitcoind_clients = 1", "worker_threads = 1",
	} {
		if !hasLine(conf, want) {
			t.Errorf("fulcrum.conf lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(string(conf), "utxo") {
		t.Errorf("Fulcrum 2.x got a utxo option:\n%s", conf)
	}
	// A large machine keeps Fulcrum's defaults for what it does not size;
	// bitcoind_timeout is sized because Fulcrum indexes during bitcoind's IBD.
	big, _ := FulcrumConfig(Size(Hardware{MemTotal: 32 * bytesize.GiB, CPUs: 8}, 2), nil)
	for _, l := range activeLines(big) {
		for _, k := range []string{"db_max_open_files", "bitcoind_clients", "worker_threads"} {
			if strings.HasPrefix(l, k+" ") {
				t.Errorf("32 GiB, 8 CPUs: want Fulcrum's default for %s, got %q", k, l)
			}
		}
	}
}

func TestFulcrumConfigOverride(t *testing.T) {
	override := []byte("DB_MEM = 512\ntcp = 0.0.0.0:50011\nutxo_cache = 2000\nts-format = utc\n")

	s2 := Size(Hardware{MemTotal: 8 * bytesize.GiB, CPUs: 4}, 2)
	conf, warnings := FulcrumConfig(s2, override)
	if len(warnings) != 1 || !strings.Contains(warnings[0], "utxo_cache = 2000 left out: Fulcrum 2.x refuses to start with it") {
		t.Errorf("Fulcrum 2.x: warnings %q, want the utxo_cache line left out", warnings)
	}
	active := activeLines(conf)
	count := func(prefix string) int {
		n := 0
		for _, l := range active {
			if strings.HasPrefix(strings.ToLower(l), prefix) {
				n++
			}
		}
		return n
	}
	if count("db_mem") != 1 || !hasLine(conf, "DB_MEM = 512") {
		t.Errorf("want only the override's db_mem:\n%s", conf)
	}
	if count("tcp ") != 1 || !hasLine(conf, "tcp = 0.0.0.0:50011") {
		t.Errorf("want only the override's tcp:\n%s", conf)
	}
	if count("utxo") != 0 {
		t.Errorf("Fulcrum 2.x would refuse this config:\n%s", conf)
	}
	if !hasLine(conf, "ts-format = utc") || count("ssl ") != 1 {
		t.Errorf("the override's other lines and the image's ssl must stay:\n%s", conf)
	}

	s1 := Size(Hardware{MemTotal: 8 * bytesize.GiB, CPUs: 4}, 1)
	conf, warnings = FulcrumConfig(s1, override)
	if len(warnings) != 0 || !hasLine(conf, "utxo_cache = 2000") || !hasLine(conf, "#utxo_cache = 4200   (set in "+FulcrumOverride+")") {
		t.Errorf("Fulcrum 1.x: the override's utxo_cache must replace the sized one (warnings %q):\n%s", warnings, conf)
	}
}

// TestOverrideKeyRules: an override line replaces the image's only when the
// program reads the two as one option; any other line stays in the file,
// and the report says what the program will make of it.
func TestOverrideKeyRules(t *testing.T) {
	s := Size(Hardware{MemTotal: 4 * bytesize.GiB, CPUs: 2}, 2)
	for _, c := range []struct {
		name, override string
		keep           []string // active lines the rendered fulcrum.conf must have
		gone           []string // image lines that must be commented out
		warn           string   // "" for no warning
	}{
		{"different case is the same key", "DB_MEM = 512\n", []string{"DB_MEM = 512"}, []string{"db_mem = 1024"}, ""},
		{"db-mem is not db_mem", "db-mem = 4096\n", []string{"db-mem = 4096", "db_mem = 1024"}, nil,
			"fulcrum.override.conf: db-mem is not a Fulcrum 2.x option (Fulcrum ignores it): did you mean db_mem?"},
		{"worker-threads is not worker_threads", "worker-threads = 4\n", []string{"worker-threads = 4", "worker_threads = 1"}, nil,
			"fulcrum.override.conf: worker-threads is not a Fulcrum 2.x option (Fulcrum ignores it): did you mean worker_threads?"},
		{"an unknown key", "frobnicate = 1\n", []string{"frobnicate = 1"}, nil,
			"fulcrum.override.conf: frobnicate is not a Fulcrum 2.x option (Fulcrum ignores it)"},
		{"a dual spelling", "TS-Format = utc\n", []string{"TS-Format = utc"}, nil, ""},
		{"a boolean spelled on", "peering = on\n", []string{"peering = on"}, []string{"peering = false"}, ""},
		{"a boolean Fulcrum reads as false", "peering = enabled\n", []string{"peering = enabled"}, []string{"peering = false"},
			`fulcrum.override.conf: peering = enabled: Fulcrum reads "enabled" as false`},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf, warnings := FulcrumConfig(s, []byte(c.override))
			for _, l := range c.keep {
				if !hasLine(conf, l) {
					t.Errorf("fulcrum.conf lacks %q:\n%s", l, conf)
				}
			}
			for _, l := range c.gone {
				if hasLine(conf, l) || !hasLine(conf, "#"+l+"   (set in "+FulcrumOverride+")") {
					t.Errorf("fulcrum.conf must comment out %q:\n%s", l, conf)
				}
			}
			switch {
			case c.warn == "" && len(warnings) > 0:
				t.Errorf("warnings %q, want none", warnings)
			case c.warn != "" && (len(warnings) != 1 || !strings.HasPrefix(warnings[0], c.warn)):
				t.Errorf("warnings %q, want %q", warnings, c.warn)
			}
		})
	}
}

func TestBitcoindOverrideKeyRules(t *testing.T) {
	s := Size(Hardware{MemTotal: 4 * bytesize.GiB, CPUs: 2}, 2)
	for _, c := range []struct {
		name, override string
		gone           []string // image lines that must be commented out
		keep           []string // image lines that must stay
		warn           string
	}{
		{"dbcache replaces the sized one", "dbcache=3000\n", []string{"dbcache=2048"}, nil, ""},
		{"case matters to bitcoind", "DBCACHE=3000\n", nil, []string{"dbcache=2048"},
			"bitcoin.override.conf: DBCACHE is not a Bitcoin Core 30.x option (bitcoind ignores it): did you mean dbcache?"},
		{"a misspelt key", "db-cache=3000\n", nil, []string{"dbcache=2048"},
			"bitcoin.override.conf: db-cache is not a Bitcoin Core 30.x option (bitcoind ignores it): did you mean dbcache?"},
		{"a boolean spelled on", "listen=on\n", []string{"listen=1"}, nil,
			`bitcoin.override.conf: listen=on: bitcoind reads "on" as 0 (false): write listen=1`},
		{"a leading dash", "-dbcache=3000\n", nil, []string{"dbcache=2048"},
			"bitcoin.override.conf line 1: -dbcache=3000: bitcoind refuses to start with a leading -"},
		{"a line without =", "blocksonly\n", nil, []string{"blocksonly=1"},
			"bitcoin.override.conf line 1: blocksonly: bitcoind refuses to start with a line without =: write blocksonly=1"},
		{"another network", "[test]\nfoo=1\ndbcache=1\n", nil, []string{"dbcache=2048"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf, warnings := BitcoinConfig(s, false, []byte(c.override))
			for _, l := range c.gone {
				if hasLine(conf, l) || !hasLine(conf, "#"+l+"   (set in "+BitcoinOverride+")") {
					t.Errorf("bitcoin.conf must comment out %q:\n%s", l, conf)
				}
			}
			for _, l := range c.keep {
				if !hasLine(conf, l) {
					t.Errorf("bitcoin.conf lacks %q:\n%s", l, conf)
				}
			}
			switch {
			case c.warn == "" && len(warnings) > 0:
				t.Errorf("warnings %q, want none", warnings)
			case c.warn != "" && (len(warnings) != 1 || !strings.HasPrefix(warnings[0], c.warn)):
				t.Errorf("warnings %q, want %q", warnings, c.warn)
			}
		})
	}
}

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
	conf := BitcoinConfig(s, false, nil)
	for _, want := range []string{
		"server=1", "txindex=1", "disablewallet=1", "datadir=/data/bitcoin", "rpccookieperms=group",
		"rpcbind=127.0.0.1", "rpcallowip=127.0.0.1", "listen=1", "bind=127.0.0.1", "bind=127.0.0.1=onion",
		"proxy=127.0.0.1:9050", "zmqpubhashblock=tcp://127.0.0.1:8433", "dbcache=2048", "maxmempool=300",
		"includeconf=/data/bitcoin/bitcoin.override.conf",
	} {
		if !hasLine(conf, want) {
			t.Errorf("bitcoin.conf lacks %q:\n%s", want, conf)
		}
	}
	if synced := BitcoinConfig(s, true, nil); !hasLine(synced, "dbcache=450") {
		t.Errorf("synced bitcoin.conf lacks dbcache=450:\n%s", synced)
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
	conf := BitcoinConfig(s, false, override)
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
	if !hasLine(conf, "maxmempool=300") {
		t.Errorf("a [test] setting replaced the mainnet maxmempool:\n%s", conf)
	}
	if !hasLine(conf, "includeconf="+BitcoinOverride) {
		t.Error("includeconf is gone")
	}
}

func TestFulcrumConfig(t *testing.T) {
	s := Size(Hardware{MemTotal: 4 * bytesize.GiB, CPUs: 2}, 2)
	conf, dropped := FulcrumConfig(s, nil)
	if len(dropped) > 0 {
		t.Errorf("dropped %q from an empty override", dropped)
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
	// A large machine keeps Fulcrum's defaults for what it does not size.
	big, _ := FulcrumConfig(Size(Hardware{MemTotal: 32 * bytesize.GiB, CPUs: 8}, 2), nil)
	for _, l := range activeLines(big) {
		for _, k := range []string{"db_max_open_files", "bitcoind_timeout", "bitcoind_clients", "worker_threads"} {
			if strings.HasPrefix(l, k+" ") {
				t.Errorf("32 GiB, 8 CPUs: want Fulcrum's default for %s, got %q", k, l)
			}
		}
	}
}

func TestFulcrumConfigOverride(t *testing.T) {
	override := []byte("DB_MEM = 512\ntcp = 0.0.0.0:50011\nutxo_cache = 2000\nts-format = utc\n")

	s2 := Size(Hardware{MemTotal: 8 * bytesize.GiB, CPUs: 4}, 2)
	conf, dropped := FulcrumConfig(s2, override)
	if len(dropped) != 1 || dropped[0] != "utxo_cache = 2000" {
		t.Errorf("Fulcrum 2.x: dropped %q, want the utxo_cache line", dropped)
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
	conf, dropped = FulcrumConfig(s1, override)
	if len(dropped) != 0 || !hasLine(conf, "utxo_cache = 2000") || !hasLine(conf, "#utxo_cache = 4200   (set in "+FulcrumOverride+")") {
		t.Errorf("Fulcrum 1.x: the override's utxo_cache must replace the sized one (dropped %q):\n%s", dropped, conf)
	}
}

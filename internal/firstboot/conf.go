package firstboot

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Paths on the device. Configs name them, so they are absolute, whatever
// root the agent works in.
const (
	BitcoinDir       = "/data/bitcoin"
	BitcoinConf      = BitcoinDir + "/bitcoin.conf"
	BitcoinOverride  = BitcoinDir + "/bitcoin.override.conf"
	FulcrumDir       = "/data/fulcrum"
	FulcrumDB        = FulcrumDir + "/fulcrum_db"
	FulcrumConf      = FulcrumDir + "/fulcrum.conf"
	FulcrumOverride  = FulcrumDir + "/fulcrum.override.conf"
	FulcrumKey       = FulcrumDir + "/key.pem"
	FulcrumCert      = FulcrumDir + "/cert.pem"
	FulcrumBanner    = FulcrumDir + "/fulcrum-banner.txt"
	ImageBanner      = "/usr/share/nodebake/fulcrum-banner.txt"
	SyncedMarker     = "/data/.nodebake/bitcoind-synced"
	bitcoindCookie   = BitcoinDir + "/.cookie"
	bitcoindZMQBlock = "tcp://127.0.0.1:8433"
)

// option is one line of a rendered config: a comment line (value written
// as it is) when key is empty, a blank line when both are.
type option struct{ key, value string }

func comment(s string) option { return option{value: "# " + s} }

func heading(s string) option { return option{value: "## " + s} }

// renderConf writes options in the style of one program's config file:
// sep is "=" for bitcoind, " = " for Fulcrum. An option whose name the user
// sets in the override file is written commented out, so the override
// always wins and the file still shows what it replaced.
func renderConf(opts []option, sep string, overridden map[string]bool, canon func(string) string, overrideName string) []byte {
	var b bytes.Buffer
	for _, o := range opts {
		switch {
		case o.key == "" && o.value == "":
			b.WriteString("\n")
		case o.key == "":
			fmt.Fprintf(&b, "%s\n", o.value)
		case overridden[canon(o.key)]:
			fmt.Fprintf(&b, "#%s%s%s   (set in %s)\n", o.key, sep, o.value, overrideName)
		default:
			fmt.Fprintf(&b, "%s%s%s\n", o.key, sep, o.value)
		}
	}
	return b.Bytes()
}

// bitcoindKey is how bitcoind matches option names: "nofoo=1" negates foo.
func bitcoindKey(k string) string { return strings.TrimPrefix(k, "no") }

// bitcoindOverrides returns the option names an override file sets for
// mainnet: in its top section or in [main]. bitcoind takes the first value
// of a single-valued option it reads, and it reads an included file after
// the main one, so without this the image's values would beat the user's.
func bitcoindOverrides(b []byte) map[string]bool {
	keys := map[string]bool{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !ok || (section != "" && section != "main") {
			continue
		}
		// A "main." prefix scopes an option to mainnet, like [main].
		k = strings.TrimPrefix(strings.TrimSpace(k), "main.")
		keys[bitcoindKey(k)] = true
	}
	return keys
}

// BitcoinConfig renders /data/bitcoin/bitcoin.conf: the guide's settings
// for this image, the sizing and an includeconf of the user's override.
func BitcoinConfig(s Settings, synced bool, override []byte) []byte {
	dbcache, phase := s.Bitcoind.DBCacheIBD, fmt.Sprintf("initial block download (%d once %s exists)", s.Bitcoind.DBCacheSynced, SyncedMarker)
	if synced {
		dbcache, phase = s.Bitcoind.DBCacheSynced, fmt.Sprintf("synced (%d during the initial block download)", s.Bitcoind.DBCacheIBD)
	}
	opts := []option{
		comment("nodebake: " + BitcoinConf + ", written by `nodectl firstboot` on every boot"),
		comment("from the image's defaults and the sizing for this device. Do not edit it:"),
		comment("put your settings into " + BitcoinOverride + "."),
		comment("A setting made there replaces every line of that name here (they are"),
		comment("commented out below); bitcoind reads the file through includeconf."),
		{},
		comment("Bitcoin daemon"),
		{"server", "1"},
		{"txindex", "1"},
		{"disablewallet", "1"},
		{"datadir", BitcoinDir},
		comment("Members of the bitcoin group (fulcrum, admin) may read the RPC cookie"),
		{"rpccookieperms", "group"},
		comment("Log to the journal only"),
		{"nodebuglogfile", "1"},
		{},
		comment("RPC on loopback only"),
		{"rpcbind", "127.0.0.1"},
		{"rpcallowip", "127.0.0.1"},
		{},
		comment("Network: outbound through Tor, inbound as an onion service"),
		{"listen", "1"},
		{"bind", "127.0.0.1"},
		{"bind", "127.0.0.1=onion"},
		{"proxy", "127.0.0.1:9050"},
		{},
		comment("Block notifications for Fulcrum"),
		{"zmqpubhashblock", bitcoindZMQBlock},
		{},
		comment(fmt.Sprintf("Memory for %d MiB of RAM, tier %s (`nodectl status` shows why)", s.Budget.RAM, s.Tier)),
		comment("dbcache for " + phase),
		{"dbcache", strconv.Itoa(dbcache)},
		{"maxmempool", strconv.Itoa(s.Bitcoind.MaxMempool)},
	}
	if !synced {
		// The guide: no mempool while syncing; activated once synced, as
		// Fulcrum needs mempool fee data.
		opts = append(opts, comment("Mempool off during the initial block download"), option{"blocksonly", "1"})
	}
	opts = append(opts, option{}, option{"includeconf", BitcoinOverride})
	return renderConf(opts, "=", bitcoindOverrides(override), bitcoindKey, BitcoinOverride)
}

// fulcrumKey is how the agent matches Fulcrum option names: Fulcrum reads
// them case-insensitively, and several exist with both - and _ spellings
// (ts-format and ts_format, wss-cert and wss_cert).
func fulcrumKey(k string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(k)), "-", "_")
}

// fulcrumRemoved are option names Fulcrum 2.x refuses to start with.
var fulcrumRemoved = map[string]bool{"utxo_cache": true, "fast_sync": true}

// fulcrumOverride reads an override file: the option names it sets, and
// the text to append, with the options the image's Fulcrum version rejects
// commented out (listed in dropped).
func fulcrumOverride(b []byte, v FulcrumVersion) (keys map[string]bool, text []byte, dropped []string) {
	keys = map[string]bool{}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		raw := sc.Text()
		line, _, _ := strings.Cut(raw, "#")
		k, _, _ := strings.Cut(line, "=")
		k = fulcrumKey(k)
		if k != "" && v >= 2 && fulcrumRemoved[k] {
			fmt.Fprintf(&out, "# nodebake: left out, Fulcrum %d.x refuses to start with it: %s\n", v, raw)
			dropped = append(dropped, strings.TrimSpace(raw))
			continue
		}
		if k != "" {
			keys[k] = true
		}
		out.WriteString(raw + "\n")
	}
	return keys, out.Bytes(), dropped
}

// FulcrumConfig renders /data/fulcrum/fulcrum.conf: the guide's settings,
// the sizing, then the user's override file. Fulcrum has no include, so the
// override is copied in; an option it sets is commented out above. dropped
// lists override lines left out because the Fulcrum version rejects them.
func FulcrumConfig(s Settings, override []byte) (conf []byte, dropped []string) {
	keys, text, dropped := fulcrumOverride(override, s.FulcrumVersion)
	f := s.Fulcrum
	opts := []option{
		comment("nodebake: " + FulcrumConf + ", written by `nodectl firstboot` on every boot"),
		comment("from the image's defaults and the sizing for this device. Do not edit it:"),
		comment("put your settings into " + FulcrumOverride + "."),
		comment("It is copied to the end of this file, and a setting made there replaces"),
		comment("every line of that name here (they are commented out below)."),
		{},
		heading("Bitcoin Core settings"),
		{"bitcoind", "127.0.0.1:8332"},
		{"rpccookie", bitcoindCookie},
		{},
		heading("Admin Script settings"),
		{"admin", "8000"},
		{},
		heading("Fulcrum server general settings"),
		{"datadir", FulcrumDB},
		{"cert", FulcrumCert},
		{"key", FulcrumKey},
		{"ssl", "0.0.0.0:50002"},
		{"tcp", "0.0.0.0:50001"},
		{"peering", "false"},
		{"stats", "127.0.0.1:8080"},
		{},
		heading("Banner"),
		{"banner", FulcrumBanner},
		{},
		heading(fmt.Sprintf("Memory and speed for %d MiB of RAM and %s, tier %s (`nodectl status` shows why)",
			s.Budget.RAM, plural(s.Hardware.CPUs, "CPU"), s.Tier)),
		{"db_mem", strconv.Itoa(f.DBMem)},
	}
	add := func(k string, v int) {
		if v != 0 {
			opts = append(opts, option{k, strconv.Itoa(v)})
		}
	}
	if s.FulcrumVersion == 1 {
		add("utxo_cache", f.UTXOCacheMB)
	}
	add("db_max_open_files", f.DBMaxOpenFiles)
	add("bitcoind_timeout", f.BitcoindTimeout)
	add("bitcoind_clients", f.BitcoindClients)
	add("worker_threads", f.WorkerThreads)
	conf = renderConf(opts, " = ", keys, fulcrumKey, FulcrumOverride)
	if len(text) > 0 {
		conf = append(conf, "\n# ---- "+FulcrumOverride+" ----\n"...)
		conf = append(conf, text...)
	}
	return conf, dropped
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

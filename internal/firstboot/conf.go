package firstboot

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Paths on the device. Configs name them, so they are absolute, whatever
// root the agent works in.
const (
	BitcoinDir      = "/data/bitcoin"
	BitcoinConf     = BitcoinDir + "/bitcoin.conf"
	BitcoinOverride = BitcoinDir + "/bitcoin.override.conf"
	FulcrumDir      = "/data/fulcrum"
	FulcrumDB       = FulcrumDir + "/fulcrum_db"
	FulcrumConf     = FulcrumDir + "/fulcrum.conf"
	FulcrumOverride = FulcrumDir + "/fulcrum.override.conf"
	FulcrumKey      = FulcrumDir + "/key.pem"
	FulcrumCert     = FulcrumDir + "/cert.pem"
	FulcrumBanner   = FulcrumDir + "/fulcrum-banner.txt"
	ImageBanner     = "/usr/share/nodebake/fulcrum-banner.txt"
	SyncedMarker    = "/data/.nodebake/bitcoind-synced"
	// FulcrumMayStart is fulcrum.service's condition: the agent creates it
	// when the plan lets Fulcrum run (see Plan); /run is empty at boot.
	FulcrumMayStart  = "/run/nodebake/fulcrum-may-start"
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

// bitcoindKey is how bitcoind matches option names (InterpretKey in
// src/common/args.cpp): case-sensitive, a "section." prefix scopes it to a
// network, and "nofoo=1" negates foo.
func bitcoindKey(k string) string { return strings.TrimPrefix(k, "no") }

// bitcoindOverrides reads an override file as Bitcoin Core 30.x does
// (ReadConfigStream in src/common/config.cpp) and returns the option names
// it sets for mainnet, in its top section or in [main], and what the user
// should know: keys bitcoind does not know (it logs and ignores them), lines
// it refuses to start with, and booleans spelled as words, which bitcoind
// reads as 0. bitcoind takes the first value of a single-valued option it
// reads, and it reads an included file after the main one, so without this
// the image's values would beat the user's.
func bitcoindOverrides(b []byte) (keys map[string]bool, warnings []string) {
	keys = map[string]bool{}
	name := "bitcoin.override.conf"
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		k, v, hasEq := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		case strings.HasPrefix(line, "-"):
			warnings = append(warnings, fmt.Sprintf("%s line %d: %s: bitcoind refuses to start with a leading - in a config file: remove the -", name, n, line))
			continue
		case !hasEq:
			warnings = append(warnings, fmt.Sprintf("%s line %d: %s: bitcoind refuses to start with a line without =: write %s=1", name, n, line, line))
			continue
		}
		sec := section
		if s, rest, ok := strings.Cut(k, "."); ok && sec == "" {
			sec, k = s, rest
		}
		if sec != "" && sec != "main" {
			continue
		}
		opt := bitcoindKey(k)
		if !slices.Contains(bitcoindKeys, opt) {
			msg := fmt.Sprintf("%s: %s is not a Bitcoin Core 30.x option (bitcoind ignores it)", name, k)
			if near := nearest(opt, bitcoindKeys); near != "" {
				msg += ": did you mean " + near + "?"
			}
			warnings = append(warnings, msg)
			continue
		}
		if w := strings.ToLower(v); w == "true" || w == "yes" || w == "on" {
			warnings = append(warnings, fmt.Sprintf("%s: %s=%s: bitcoind reads %q as 0 (false): write %s=1", name, k, v, v, k))
		}
		keys[opt] = true
	}
	return keys, warnings
}

// BitcoinConfig renders /data/bitcoin/bitcoin.conf: the guide's settings
// for this image, the sizing and an includeconf of the user's override.
// warnings are what the user should know about the override.
func BitcoinConfig(s Settings, synced bool, override []byte) (conf []byte, warnings []string) {
	mempool := s.Bitcoind.MaxMempool
	if !synced {
		mempool = s.Bitcoind.MaxMempoolIBD
	}
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
	}
	if !synced {
		// The guide: no mempool while syncing; activated once synced, as
		// Fulcrum needs mempool fee data. The small maxmempool keeps the
		// coins cache from growing into the empty mempool's allowance.
		opts = append(opts, comment(fmt.Sprintf("Mempool off during the initial block download (maxmempool %d once synced)", s.Bitcoind.MaxMempool)),
			option{"maxmempool", strconv.Itoa(mempool)}, option{"blocksonly", "1"})
	} else {
		opts = append(opts, option{"maxmempool", strconv.Itoa(mempool)})
	}
	opts = append(opts, option{}, option{"includeconf", BitcoinOverride})
	keys, warnings := bitcoindOverrides(override)
	return renderConf(opts, "=", keys, bitcoindKey, BitcoinOverride), warnings
}

// fulcrumKey is the option Fulcrum of major version v reads for the key k
// (Options.cpp ConfigFile::optValue): case-insensitive but literal, so
// db-mem is not db_mem, except the few keys it reads under two spellings.
// known says whether that Fulcrum reads it at all.
func fulcrumKey(k string, v FulcrumVersion) (opt string, known bool) {
	v = min(v, 2)
	k = strings.ToLower(strings.TrimSpace(k))
	if a, ok := fulcrumAliases[v][k]; ok {
		return a, true
	}
	return k, slices.Contains(fulcrumKeys[v], k)
}

// fulcrumOverride reads an override file: the options it sets, the text to
// append, with the options the image's Fulcrum version refuses to start
// with commented out, and what the user should know: those left-out lines,
// keys Fulcrum ignores (it ignores unknown keys silently) and booleans it
// reads as false.
func fulcrumOverride(b []byte, v FulcrumVersion) (keys map[string]bool, text []byte, warnings []string) {
	keys = map[string]bool{}
	name := "fulcrum.override.conf"
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		raw := sc.Text()
		line, _, _ := strings.Cut(raw, "#")
		k, val, _ := strings.Cut(line, "=")
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		if k == "" {
			out.WriteString(raw + "\n")
			continue
		}
		if v >= 2 && fulcrumRemoved[strings.ToLower(k)] {
			fmt.Fprintf(&out, "# nodebake: left out, Fulcrum %d.x refuses to start with it: %s\n", v, raw)
			warnings = append(warnings, fmt.Sprintf("%s: %s left out: Fulcrum %d.x refuses to start with it (a 1.x option)", name, strings.TrimSpace(raw), v))
			continue
		}
		out.WriteString(raw + "\n")
		opt, known := fulcrumKey(k, v)
		if !known {
			msg := fmt.Sprintf("%s: %s is not a Fulcrum %d.x option (Fulcrum ignores it)", name, k, v)
			if near := nearest(opt, fulcrumKeys[min(v, 2)]); near != "" {
				msg += ": did you mean " + near + "?"
			}
			warnings = append(warnings, msg)
			continue
		}
		keys[opt] = true
		if fulcrumBools[opt] && !fulcrumBool(val) {
			warnings = append(warnings, fmt.Sprintf("%s: %s = %s: Fulcrum reads %q as false (it takes yes, true, on or a number other than 0 as true; no, false, off or 0 as false)", name, k, val, val))
		}
	}
	return keys, out.Bytes(), warnings
}

// fulcrumBool reports whether Fulcrum's ConfParseBool reads s as the user
// meant: true for a non-zero number, yes, true, on or nothing; false for
// 0, no, false or off. Any other word is read as false, silently.
func fulcrumBool(s string) bool {
	if _, err := strconv.Atoi(s); err == nil {
		return true
	}
	return slices.Contains([]string{"", "yes", "true", "on", "no", "false", "off"}, strings.ToLower(s))
}

// FulcrumConfig renders /data/fulcrum/fulcrum.conf: the guide's settings,
// the sizing, then the user's override file. Fulcrum has no include, so the
// override is copied in; an option it sets is commented out above, when
// Fulcrum reads the two as the same option. warnings are what the user
// should know about the override.
func FulcrumConfig(s Settings, override []byte) (conf []byte, warnings []string) {
	keys, text, warnings := fulcrumOverride(override, s.FulcrumVersion)
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
	canon := func(k string) string { opt, _ := fulcrumKey(k, s.FulcrumVersion); return opt }
	conf = renderConf(opts, " = ", keys, canon, FulcrumOverride)
	if len(text) > 0 {
		conf = append(conf, "\n# ---- "+FulcrumOverride+" ----\n"...)
		conf = append(conf, text...)
	}
	return conf, warnings
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

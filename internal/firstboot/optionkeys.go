package firstboot

import "strings"

// fulcrumKeys are the config keys each Fulcrum major version reads, as its
// example config (doc/fulcrum-example-config.conf at tags v1.11.1 and
// v2.1.1) documents them. Fulcrum matches keys case-insensitively but
// literally, so these are lower case.
var fulcrumKeys = map[FulcrumVersion][]string{
	1: append([]string{"utxo_cache"}, fulcrumCommonKeys...),
	2: append([]string{"upnp", "zmq_allow_hashtx"}, fulcrumCommonKeys...),
}

var fulcrumCommonKeys = []string{
	"admin", "announce", "anon_logs", "banner", "bitcoind", "bitcoind_clients", "bitcoind_throttle",
	"bitcoind_timeout", "bitcoind_tls", "cert", "checkdb", "daemon_passthrough_subnets", "datadir",
	"db_keep_log_file_num", "db_max_open_files", "db_mem", "db_use_fsync", "debug", "donation", "hostname",
	"key", "max_batch", "max_buffer", "max_clients_per_ip", "max_history", "max_pending_connections",
	"max_reorg", "max_subs", "max_subs_per_ip", "peering", "peering_enforce_unique_ip", "pidfile", "polltime",
	"public_ssl_port", "public_tcp_port", "public_ws_port", "public_wss_port", "quiet", "rpa",
	"rpa_history_blocks", "rpa_max_history", "rpa_prefix_bits_min", "rpa_start_height", "rpccookie",
	"rpcpassword", "rpcuser", "simdjson", "ssl", "stats", "subnets_to_exclude_from_per_ip_limits", "syslog",
	"tcp", "tls_disallow_deprecated", "tor_banner", "tor_hostname", "tor_pass", "tor_proxy", "tor_ssl_port",
	"tor_tcp_port", "tor_user", "tor_ws_port", "tor_wss_port", "ts_format", "txhash_cache", "worker_threads",
	"workqueue", "ws", "wss", "wss_cert", "wss_key",
}

// fulcrumAliases are the second spellings Fulcrum reads for a few keys
// (Options.cpp ConfigFile::optValue callers), mapped to the documented one.
var fulcrumAliases = map[FulcrumVersion]map[string]string{
	1: {"utxo-cache": "utxo_cache", "fast-sync": "fast-sync", "ts-format": "ts_format", "wss-cert": "wss_cert", "wss-key": "wss_key",
		"bitcoind-tls": "bitcoind_tls", "tls-disallow-deprecated": "tls_disallow_deprecated"},
	2: {"ts-format": "ts_format", "wss-cert": "wss_cert", "wss-key": "wss_key",
		"bitcoind-tls": "bitcoind_tls", "tls-disallow-deprecated": "tls_disallow_deprecated"},
}

// fulcrumRemoved are keys Fulcrum 2.x refuses to start with (App.cpp): they
// were 1.x options.
var fulcrumRemoved = map[string]bool{"utxo_cache": true, "utxo-cache": true, "fast-sync": true}

// fulcrumBools are the keys Fulcrum reads with ConfParseBool.
var fulcrumBools = map[string]bool{
	"announce": true, "anon_logs": true, "bitcoind_tls": true, "checkdb": true, "db_use_fsync": true, "debug": true,
	"peering": true, "peering_enforce_unique_ip": true, "quiet": true, "simdjson": true, "syslog": true,
	"tls_disallow_deprecated": true, "upnp": true, "zmq_allow_hashtx": true,
}

// bitcoindKeys are the options of Bitcoin Core 30.x that a config file may
// set: the names `bitcoind -help -help-debug` lists (registered with AddArg
// in src/init.cpp, src/init/common.cpp, src/chainparamsbase.cpp,
// src/wallet/init.cpp and src/common/args.cpp at tag v30.2), without the
// command-line-only help and version options.
var bitcoindKeys = strings.Fields(`
	alertnotify allowignoredconf assumevalid blockfilterindex blocknotify blockreconstructionextratxn
	blocksdir blocksonly blocksxor coinstatsindex conf daemon daemonwait datadir dbbatchsize dbcache
	debuglogfile includeconf loadblock maxmempool maxorphantx mempoolexpiry par persistmempool
	persistmempoolv1 pid prune reindex reindex-chainstate settings shutdownnotify startupnotify sysperms
	txindex
	addnode asmap bantime bind cjdnsreachable connect discover dns dnsseed externalip fixedseeds
	forcednsseed i2pacceptincoming i2psam listen listenonion maxconnections maxreceivebuffer maxsendbuffer
	maxuploadtarget natpmp networkactive onion onlynet peerblockfilters peerbloomfilters port proxy
	proxyrandomize seednode timeout torcontrol torpassword v2transport whitebind whitelist peertimeout
	addresstype avoidpartialspends changetype consolidatefeerate disablewallet discardfee fallbackfee
	keypool maxapsfee maxtxfee mintxfee signer spendzeroconfchange txconfirmtarget wallet walletbroadcast
	walletdir walletnotify walletrbf walletrejectlongchains walletcrosschain unsafesqlitesync
	zmqpubhashblock zmqpubhashblockhwm zmqpubhashtx zmqpubhashtxhwm zmqpubrawblock zmqpubrawblockhwm
	zmqpubrawtx zmqpubrawtxhwm zmqpubsequence zmqpubsequencehwm
	checkaddrman checkblockindex checkblocks checklevel checkmempool debug debugexclude logips loglevel
	loglevelalways logsourcelocations logthreadnames logtimestamps logtimemicros logratelimit
	maxsigcachesize maxtipage mocktime printtoconsole shrinkdebugfile uacomment limitancestorcount
	limitancestorsize limitdescendantcount limitdescendantsize stopafterblockimport stopatheight
	capturemessages deprecatedrpc fastprune acceptstalefeeestimates test
	chain signet signetchallenge signetseednode testnet testnet4 regtest vbparams
	acceptnonstdtxn bytespersigop datacarrier datacarriersize dustrelayfee incrementalrelayfee
	minrelaytxfee permitbaremultisig whitelistforcerelay whitelistrelay
	blockmaxweight blockmintxfee blockreservedweight
	rest rpcallowip rpcauth rpcbind rpccookiefile rpccookieperms rpcpassword rpcport rpcservertimeout
	rpcthreads rpcuser rpcwhitelist rpcwhitelistdefault rpcworkqueue server
`)

// nearest returns the known key closest to k (the same but for case, - and
// _, or else at most two edits away), or "" if none is close.
func nearest(k string, known []string) string {
	best, bestD := "", 3
	for _, c := range known {
		if strings.EqualFold(strings.ReplaceAll(k, "-", "_"), c) || strings.EqualFold(strings.ReplaceAll(k, "_", "-"), c) {
			return c
		}
		if d := editDistance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

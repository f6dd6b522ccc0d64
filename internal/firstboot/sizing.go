package firstboot

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/nodebake/nodebake/internal/bytesize"
)

// Hardware is what the sizing depends on.
type Hardware struct {
	MemTotal uint64 `json:"mem_total_bytes"` // as /proc/meminfo reports it: a little below the installed RAM
	CPUs     int    `json:"cpus"`            // online CPUs
}

// FulcrumVersion is the major version of the Fulcrum the image carries: the
// two take different memory options.
type FulcrumVersion int

// ParseFulcrumVersion reads a version such as "2.1.1" or "v1.11.1".
func ParseFulcrumVersion(s string) (FulcrumVersion, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	major, _, _ := strings.Cut(s, ".")
	n, err := strconv.Atoi(major)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("fulcrum version %q: want a version such as 2.1.1", s)
	}
	return FulcrumVersion(n), nil
}

// The budget's fixed parts, in MiB. They are estimates of what each program
// takes beyond the caches it is told to size (see the table in the README):
const (
	// osReserve: kernel, systemd, journald, tor, sshd and a floor of page
	// cache, which both databases lean on.
	osReserve = 512
	// bitcoindBase: the block index, peer buffers and signature/script
	// caches, none of which dbcache bounds.
	bitcoindBase = 300
	// fulcrumBase: Fulcrum's own mirror of the mempool, its txhash cache
	// (128 MB by default) and client buffers.
	fulcrumBase = 512
)

// Floors below which a value makes no sense; a machine that cannot give
// them is too small and Size says so. Fulcrum's db_mem and bitcoind's
// dbcache and maxmempool are MiB; Fulcrum 1.x's utxo_cache is MB (10^6
// bytes).
const (
	minDBCache = 100 // MiB; Bitcoin Core accepts 4, but syncing with it takes weeks
	minDBMem   = 128 // MiB; Fulcrum accepts 50, its docs call 256 fine on an SSD
	minUTXOMB  = 64  // MB; Fulcrum's own minimum for utxo_cache
)

// Bitcoind holds what bitcoin.conf gets from the sizing.
type Bitcoind struct {
	DBCacheIBD    int `json:"dbcache_ibd_mib"`    // dbcache during the initial block download
	DBCacheSynced int `json:"dbcache_synced_mib"` // dbcache once the chain is synced
	MaxMempool    int `json:"maxmempool_mib"`
}

// Fulcrum holds what fulcrum.conf gets from the sizing. A zero leaves the
// option out, so Fulcrum uses its default (for WorkerThreads that default is
// 0, "one per CPU").
type Fulcrum struct {
	UTXOCacheMB     int `json:"utxo_cache_mb,omitempty"` // MB (10^6); Fulcrum 1.x only, for its initial sync
	DBMem           int `json:"db_mem_mib"`
	DBMaxOpenFiles  int `json:"db_max_open_files,omitempty"`
	BitcoindTimeout int `json:"bitcoind_timeout_s,omitempty"`
	BitcoindClients int `json:"bitcoind_clients,omitempty"`
	WorkerThreads   int `json:"worker_threads,omitempty"`
}

// Reason says why a setting got its value.
type Reason struct {
	Setting string `json:"setting"`
	Value   string `json:"value"`
	Why     string `json:"why"`
}

// Budget is the memory arithmetic behind the settings, in MiB. Bitcoind
// and Fulcrum are the most each may take in the two phases of a node's
// life; together with the reserve they stay within RAM.
type Budget struct {
	RAM       int `json:"ram_mib"`
	OSReserve int `json:"os_reserve_mib"`
	// While bitcoind downloads the chain, Fulcrum waits for it (it retries
	// until bitcoind leaves initial block download): only its base counts.
	IBDBitcoind int `json:"ibd_bitcoind_mib"`
	IBDFulcrum  int `json:"ibd_fulcrum_mib"`
	// Once bitcoind is synced, Fulcrum indexes and serves with all its caches.
	SyncedBitcoind int `json:"synced_bitcoind_mib"`
	SyncedFulcrum  int `json:"synced_fulcrum_mib"`
}

// Fits reports whether both phases stay within RAM.
func (b Budget) Fits() bool {
	return b.OSReserve+b.IBDBitcoind+b.IBDFulcrum <= b.RAM &&
		b.OSReserve+b.SyncedBitcoind+b.SyncedFulcrum <= b.RAM
}

// Settings is the outcome of Size.
type Settings struct {
	Hardware       Hardware       `json:"hardware"`
	Tier           string         `json:"tier"`
	Slow           bool           `json:"slow_device"`
	FulcrumVersion FulcrumVersion `json:"fulcrum_version"`
	Bitcoind       Bitcoind       `json:"bitcoind"`
	Fulcrum        Fulcrum        `json:"fulcrum"`
	Budget         Budget         `json:"budget"`
	Reasons        []Reason       `json:"reasons"`
	Warnings       []string       `json:"warnings,omitempty"`
}

// tier is one row of the sizing table, chosen by MemTotal. MemTotal is a
// little below the installed RAM, so a "4 GiB" machine falls in "≤ 4 GiB".
type tier struct {
	upTo          uint64 // bytes; the last tier has math.MaxUint64
	name          string
	slow          bool
	maxMempool    int
	dbCacheSynced int
	openFiles     int
	openFilesWhy  string
}

var tiers = []tier{
	{upTo: 3 * bytesize.GiB, name: "≤ 3 GiB", slow: true, maxMempool: 100, dbCacheSynced: 200, openFiles: 200, openFilesWhy: "the guide's value for 4 GB"},
	{upTo: 4 * bytesize.GiB, name: "≤ 4 GiB", slow: true, maxMempool: 300, dbCacheSynced: 450, openFiles: 200, openFilesWhy: "the guide's value for 4 GB"},
	{upTo: 8 * bytesize.GiB, name: "≤ 8 GiB", slow: true, maxMempool: 300, dbCacheSynced: 450, openFiles: 400, openFilesWhy: "the guide's value for 8 GB"},
	{upTo: math.MaxUint64, name: "> 8 GiB", maxMempool: 300, dbCacheSynced: 450},
}

// Size chooses bitcoind's and Fulcrum's memory settings for a machine. It
// follows the MiniBolt guide where the guide has a rule, and otherwise
// shares out what is left of RAM after the fixed parts of the budget:
//
//   - dbcache during IBD: half the RAM (the guide), no more than what is
//     left beside bitcoind's base and mempool, Fulcrum's base and the reserve;
//   - dbcache after sync: Bitcoin Core's default 450 (the guide comments the
//     IBD value out), 200 on machines of 3 GiB or less;
//   - slow devices (≤ 8 GiB, the guide's "slow devices mode"): db_mem 1024,
//     bitcoind_timeout 600, bitcoind_clients 1, worker_threads 1,
//     db_max_open_files 200 (≤ 4 GiB) or 400 (≤ 8 GiB);
//   - larger machines: db_mem half the RAM for Fulcrum 2.x (the guide), a
//     quarter for 1.x, whose utxo_cache takes the other half while it syncs;
//     bitcoind_clients no more than the CPUs;
//   - Fulcrum 1.x: utxo_cache half the RAM (the guide: 4 GB → 2000), no
//     more than what is left once db_mem is given; Fulcrum 2.x has no
//     utxo_cache and refuses to start with one.
//
// Every value Fulcrum's and bitcoind's caches get is capped so that, in
// both phases, bitcoind + Fulcrum + the reserve ≤ RAM.
func Size(hw Hardware, fv FulcrumVersion) Settings {
	ram := int(hw.MemTotal / bytesize.MiB)
	t := tiers[len(tiers)-1]
	for _, c := range tiers {
		if hw.MemTotal <= c.upTo {
			t = c
			break
		}
	}
	s := Settings{Hardware: hw, Tier: t.name, Slow: t.slow, FulcrumVersion: fv}
	why := func(setting, value, format string, args ...any) {
		s.Reasons = append(s.Reasons, Reason{Setting: setting, Value: value, Why: fmt.Sprintf(format, args...)})
	}
	mib := func(n int) string { return fmt.Sprintf("%d MiB", n) }
	warn := func(format string, args ...any) { s.Warnings = append(s.Warnings, fmt.Sprintf(format, args...)) }

	b := &s.Bitcoind
	b.MaxMempool = t.maxMempool
	b.DBCacheSynced = t.dbCacheSynced

	// Initial block download: Fulcrum waits, bitcoind takes the rest up to
	// half the RAM. bitcoind's coins cache also grows into the unused part
	// of the mempool, so the mempool counts in full even while it is empty.
	ibdLeft := ram - osReserve - bitcoindBase - b.MaxMempool - fulcrumBase
	b.DBCacheIBD = roundDown(min(ram/2, ibdLeft), 64)
	switch {
	case b.DBCacheIBD < minDBCache:
		b.DBCacheIBD = minDBCache
		warn("%d MiB of RAM is too small for bitcoind's initial sync beside Fulcrum: dbcache=%d, expect heavy swapping", ram, minDBCache)
		why("dbcache (IBD)", mib(b.DBCacheIBD), "the floor: RAM is too small")
	case b.DBCacheIBD < roundDown(ram/2, 64):
		why("dbcache (IBD)", mib(b.DBCacheIBD), "what is left of %d MiB beside bitcoind's base and mempool, Fulcrum's base and the reserve (the guide's half the RAM does not fit)", ram)
	default:
		why("dbcache (IBD)", mib(b.DBCacheIBD), "half the RAM (the guide: 4 GB → 2048)")
	}
	if t.dbCacheSynced == 450 {
		why("dbcache (synced)", mib(b.DBCacheSynced), "Bitcoin Core's default, as the guide returns to after the initial sync")
	} else {
		why("dbcache (synced)", mib(b.DBCacheSynced), "RAM %s: below Bitcoin Core's default 450 so that Fulcrum keeps room", t.name)
	}
	if t.maxMempool == 300 {
		why("maxmempool", mib(b.MaxMempool), "Bitcoin Core's default")
	} else {
		why("maxmempool", mib(b.MaxMempool), "RAM %s: a smaller mempool leaves room for Fulcrum (Bitcoin Core's default is 300)", t.name)
	}

	// After the sync: Fulcrum's caches share what bitcoind leaves.
	syncedLeft := ram - osReserve - bitcoindBase - b.DBCacheSynced - b.MaxMempool - fulcrumBase
	f := &s.Fulcrum
	want, wantWhy := 1024, "the guide's slow-device setting"
	switch {
	case !t.slow && fv >= 2:
		want, wantWhy = roundDown(ram/2, 64), "half the RAM (the guide)"
	case !t.slow:
		want, wantWhy = roundDown(ram/4, 64), "a quarter of the RAM: utxo_cache takes half while Fulcrum 1.x syncs"
	}
	f.DBMem = min(want, roundDown(syncedLeft, 64))
	switch {
	case f.DBMem < minDBMem:
		f.DBMem = minDBMem
		warn("%d MiB of RAM is too small for Fulcrum beside a synced bitcoind: db_mem=%d, expect heavy swapping", ram, minDBMem)
		why("db_mem", mib(f.DBMem), "the floor: RAM is too small")
	case f.DBMem < want:
		why("db_mem", mib(f.DBMem), "what is left of %d MiB once bitcoind is synced (%s would be %d)", ram, wantWhy, want)
	default:
		why("db_mem", mib(f.DBMem), "%s", wantWhy)
	}

	if fv == 1 {
		// utxo_cache is in MB; the budget is in MiB.
		leftMB := int(float64(syncedLeft-f.DBMem) * bytesize.MiB / 1e6)
		halfMB := int(hw.MemTotal / 2 / 1e6)
		f.UTXOCacheMB = roundDown(min(halfMB, leftMB), 100)
		switch {
		case f.UTXOCacheMB < minUTXOMB:
			f.UTXOCacheMB = 0
			why("utxo_cache", "off", "no room left beside db_mem once bitcoind is synced")
		case f.UTXOCacheMB < roundDown(halfMB, 100):
			why("utxo_cache", fmt.Sprintf("%d MB", f.UTXOCacheMB), "what is left once db_mem is given (the guide's half the RAM, %d MB, does not fit beside bitcoind)", roundDown(halfMB, 100))
		default:
			why("utxo_cache", fmt.Sprintf("%d MB", f.UTXOCacheMB), "half the RAM (the guide: 4 GB → 2000)")
		}
	}

	if t.slow {
		f.BitcoindTimeout, f.BitcoindClients, f.WorkerThreads = 600, 1, 1
		f.DBMaxOpenFiles = t.openFiles
		why("bitcoind_timeout", "600 s", "slow device (RAM %s): the guide's slow-device setting", t.name)
		why("bitcoind_clients", "1", "slow device: the guide's slow-device setting")
		why("worker_threads", "1", "slow device: the guide's slow-device setting")
		why("db_max_open_files", strconv.Itoa(t.openFiles), "slow device: %s", t.openFilesWhy)
	} else if hw.CPUs < 3 {
		// Fulcrum's default is 3; its docs advise no more than the cores.
		f.BitcoindClients = max(hw.CPUs, 1)
		why("bitcoind_clients", strconv.Itoa(f.BitcoindClients), "one per CPU (Fulcrum's default 3 is more than the %d CPUs)", hw.CPUs)
	}

	mb := func(n int) int { return int(math.Ceil(float64(n) * 1e6 / bytesize.MiB)) }
	s.Budget = Budget{
		RAM:            ram,
		OSReserve:      osReserve,
		IBDBitcoind:    bitcoindBase + b.DBCacheIBD + b.MaxMempool,
		IBDFulcrum:     fulcrumBase,
		SyncedBitcoind: bitcoindBase + b.DBCacheSynced + b.MaxMempool,
		SyncedFulcrum:  fulcrumBase + f.DBMem + mb(f.UTXOCacheMB),
	}
	return s
}

func roundDown(n, unit int) int {
	if n < 0 {
		return n
	}
	return n / unit * unit
}

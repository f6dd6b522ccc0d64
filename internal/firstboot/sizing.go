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
	// ibdMempool is the maxmempool bitcoin.conf gets during the initial
	// block download, in MiB: Bitcoin Core's own default under blocksonly
	// (DEFAULT_BLOCKSONLY_MAX_MEMPOOL_SIZE_MB). It matters because bitcoind's
	// coins cache grows into whatever part of maxmempool the mempool does
	// not use, so an empty 300 MiB mempool would add 300 MiB to dbcache.
	ibdMempool = 5
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

// slowCPUs is the most CPUs a slow device has. The guide's slow-device
// options (worker_threads 1, bitcoind_clients 1, bitcoind_timeout 600) are
// "first-time start optimizations" for a slow-performance device with 4 or
// 8 GB: one worker and one RPC client keep Fulcrum from crowding out
// bitcoind on a machine with few cores. With 4 cores or more, Fulcrum's
// defaults (one worker per CPU, 3 clients) do not, so RAM alone does not
// make a device slow.
const slowCPUs = 2

// Bitcoind holds what bitcoin.conf gets from the sizing.
type Bitcoind struct {
	DBCacheIBD    int `json:"dbcache_ibd_mib"`    // dbcache during the initial block download
	DBCacheSynced int `json:"dbcache_synced_mib"` // dbcache once the chain is synced
	MaxMempoolIBD int `json:"maxmempool_ibd_mib"` // maxmempool during the initial block download (blocksonly)
	MaxMempool    int `json:"maxmempool_mib"`     // maxmempool once the chain is synced
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

// The phases of a node's life, in the order they come. Fulcrum's caches
// are largest while it builds its index (1.x adds utxo_cache), bitcoind's
// while it downloads the chain.
const (
	// PhaseIBD: bitcoind downloads the chain (blocksonly, dbcache_ibd).
	// Fulcrum either waits (stopped) or indexes alongside it at full size.
	PhaseIBD = "initial block download"
	// PhaseIndexing: bitcoind is synced (dbcache_synced, mempool on);
	// Fulcrum builds or finishes its index with all its caches.
	PhaseIndexing = "Fulcrum indexing, bitcoind synced"
	// PhaseSynced: both synced; Fulcrum 1.x has dropped its utxo_cache.
	PhaseSynced = "both synced"
)

// Phase is the memory one phase configures, in MiB: what each program may
// take with the caches it is given, and Peak, which adds the reserve.
type Phase struct {
	Name     string `json:"name"`
	Bitcoind int    `json:"bitcoind_mib"`
	Fulcrum  int    `json:"fulcrum_mib"` // 0: Fulcrum is stopped in this phase
	Peak     int    `json:"peak_mib"`
}

// Budget is the memory arithmetic behind the settings, in MiB: for every
// phase, reserve + bitcoind + Fulcrum ≤ RAM.
type Budget struct {
	RAM       int     `json:"ram_mib"`
	OSReserve int     `json:"os_reserve_mib"`
	Phases    []Phase `json:"phases"`
}

// Fits reports whether every phase stays within RAM.
func (b Budget) Fits() bool {
	for _, p := range b.Phases {
		if p.Peak > b.RAM {
			return false
		}
	}
	return len(b.Phases) > 0
}

// Plan says how bitcoind's and Fulcrum's first syncs share the memory.
type Plan struct {
	// FulcrumWaits: Fulcrum starts only once bitcoind has synced (the
	// guide's order). Otherwise both run at once, at full size.
	FulcrumWaits bool   `json:"fulcrum_waits"`
	Why          string `json:"why"`
}

// Settings is the outcome of Size.
type Settings struct {
	Hardware       Hardware       `json:"hardware"`
	Tier           string         `json:"tier"`
	Slow           bool           `json:"slow_device"`
	FulcrumVersion FulcrumVersion `json:"fulcrum_version"`
	Plan           Plan           `json:"plan"`
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
	small         bool // the guide's 4 GB and 8 GB rows: db_mem 1024, db_max_open_files
	maxMempool    int
	dbCacheSynced int
	openFiles     int
	openFilesWhy  string
	// waits1, waits2: Fulcrum 1.x / 2.x waits for bitcoind's initial sync
	// (the arithmetic is in the README and at Size).
	waits1, waits2 bool
}

var tiers = []tier{
	{upTo: 3 * bytesize.GiB, name: "≤ 3 GiB", small: true, maxMempool: 100, dbCacheSynced: 200, openFiles: 200, openFilesWhy: "the guide's value for 4 GB", waits1: true, waits2: true},
	{upTo: 4 * bytesize.GiB, name: "≤ 4 GiB", small: true, maxMempool: 300, dbCacheSynced: 450, openFiles: 200, openFilesWhy: "the guide's value for 4 GB", waits1: true, waits2: true},
	{upTo: 8 * bytesize.GiB, name: "≤ 8 GiB", small: true, maxMempool: 300, dbCacheSynced: 450, openFiles: 400, openFilesWhy: "the guide's value for 8 GB", waits1: true},
	{upTo: math.MaxUint64, name: "> 8 GiB", maxMempool: 300, dbCacheSynced: 450},
}

// Size chooses bitcoind's and Fulcrum's memory settings for a machine. It
// follows the MiniBolt guide where the guide has a rule, and otherwise
// shares out what is left of RAM after the fixed parts of the budget.
//
// Fulcrum does not wait for bitcoind's initial block download: it indexes
// alongside it. So Size first chooses the plan:
//
//   - Fulcrum waits (the guide's order: Fulcrum after bitcoind's sync) on
//     machines of 4 GiB or less, and for Fulcrum 1.x up to 8 GiB. Run at
//     once there, the caches would starve each other: at 4 GiB, 4096 − 512
//     reserve − 305 bitcoind − 512 Fulcrum leaves 2767 MiB for dbcache and
//     db_mem together, where waiting gives bitcoind 2048 and Fulcrum 1024
//     (and 1.x its utxo_cache) each in turn; at 8 GiB Fulcrum 1.x wants
//     db_mem 1024 + utxo_cache of half the RAM beside a dbcache of half
//     the RAM, 1 GiB more than there is.
//   - Otherwise both run at full size: Fulcrum 2.x at 8 GiB keeps the
//     guide's 1024 beside a dbcache of half the RAM (512 + 4401 + 1536 =
//     6449 MiB); above 8 GiB dbcache and Fulcrum's caches share what is
//     left half and half.
//
// Then:
//   - dbcache during IBD: half the RAM (the guide), no more than what is
//     left beside bitcoind's base, the reserve and, if both run at once,
//     Fulcrum; maxmempool 5 (blocksonly's own default);
//   - dbcache after sync: Bitcoin Core's default 450 (the guide comments the
//     IBD value out), 200 on machines of 3 GiB or less;
//   - Fulcrum's caches, db_mem first: ≤ 8 GiB the guide's 1024; larger
//     machines half the RAM for Fulcrum 2.x (the guide), a quarter for 1.x,
//     whose utxo_cache wants half the RAM while it syncs; each no more than
//     what is left beside a synced bitcoind (and, if both run at once, beside
//     bitcoind's IBD dbcache); Fulcrum 2.x has no utxo_cache and refuses to
//     start with one;
//   - slow devices (≤ 8 GiB and at most slowCPUs CPUs): the guide's
//     bitcoind_timeout 600, bitcoind_clients 1, worker_threads 1;
//     db_max_open_files 200 (≤ 4 GiB) or 400 (≤ 8 GiB) go by RAM alone;
//   - bitcoind_clients no more than the CPUs; bitcoind_timeout 600 also
//     whenever Fulcrum indexes during bitcoind's IBD.
//
// In every phase, reserve + bitcoind + Fulcrum ≤ RAM (Budget.Fits).
func Size(hw Hardware, fv FulcrumVersion) Settings {
	ram := int(hw.MemTotal / bytesize.MiB)
	t := tiers[len(tiers)-1]
	for _, c := range tiers {
		if hw.MemTotal <= c.upTo {
			t = c
			break
		}
	}
	waits := t.waits2
	if fv == 1 {
		waits = t.waits1
	}
	s := Settings{Hardware: hw, Tier: t.name, Slow: t.small && hw.CPUs <= slowCPUs, FulcrumVersion: fv}
	why := func(setting, value, format string, args ...any) {
		s.Reasons = append(s.Reasons, Reason{Setting: setting, Value: value, Why: fmt.Sprintf(format, args...)})
	}
	mib := func(n int) string { return fmt.Sprintf("%d MiB", n) }
	warn := func(format string, args ...any) { s.Warnings = append(s.Warnings, fmt.Sprintf(format, args...)) }
	toMB := func(n int) int { return int(float64(n) * bytesize.MiB / 1e6) }
	fromMB := func(n int) int { return int(math.Ceil(float64(n) * 1e6 / bytesize.MiB)) }

	b := &s.Bitcoind
	b.MaxMempool = t.maxMempool
	b.MaxMempoolIBD = ibdMempool
	b.DBCacheSynced = t.dbCacheSynced
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
	why("maxmempool (IBD)", mib(b.MaxMempoolIBD), "Bitcoin Core's default under blocksonly: the coins cache would grow into an empty larger mempool")

	// What Fulcrum's caches want, before the RAM caps them.
	wantDBMem, wantDBMemWhy := 1024, "the guide's value for 4 GB and 8 GB"
	switch {
	case !t.small && fv >= 2:
		wantDBMem, wantDBMemWhy = roundDown(ram/2, 64), "half the RAM (the guide)"
	case !t.small:
		wantDBMem, wantDBMemWhy = roundDown(ram/4, 64), "a quarter of the RAM: utxo_cache takes half while Fulcrum 1.x syncs"
	}
	halfMB := int(hw.MemTotal / 2 / 1e6)
	wantUTXO := 0 // MiB
	if fv == 1 {
		wantUTXO = fromMB(roundDown(halfMB, 100))
	}

	// Room beside a synced bitcoind, and beside one in IBD.
	syncedLeft := ram - osReserve - bitcoindBase - b.DBCacheSynced - b.MaxMempool - fulcrumBase
	ibdLeft := ram - osReserve - bitcoindBase - b.MaxMempoolIBD
	room := syncedLeft // for Fulcrum's caches
	if waits {
		b.DBCacheIBD = roundDown(min(ram/2, ibdLeft), 64)
		s.Plan = Plan{FulcrumWaits: true, Why: fmt.Sprintf(
			"Fulcrum waits for bitcoind's initial sync: %s cannot hold both caches at once (%d MiB left beside the reserve and both programs' bases, where bitcoind wants %d for dbcache and Fulcrum %d)",
			gib(ram), ibdLeft-fulcrumBase, roundDown(ram/2, 64), wantDBMem+wantUTXO)}
	} else {
		ibdLeft -= fulcrumBase
		// bitcoind gets half the RAM, or what Fulcrum's caches leave, but
		// never less than half of what the two share.
		b.DBCacheIBD = roundDown(min(ram/2, max(ibdLeft-wantDBMem-wantUTXO, ibdLeft/2)), 64)
		room = min(room, ibdLeft-b.DBCacheIBD)
		s.Plan = Plan{Why: fmt.Sprintf(
			"both run at full size: %s holds bitcoind's dbcache %d and Fulcrum's caches during the initial sync",
			gib(ram), b.DBCacheIBD)}
	}
	switch {
	case b.DBCacheIBD < minDBCache:
		b.DBCacheIBD = minDBCache
		warn("%d MiB of RAM is too small for bitcoind's initial sync: dbcache=%d, expect heavy swapping", ram, minDBCache)
		why("dbcache (IBD)", mib(b.DBCacheIBD), "the floor: RAM is too small")
	case b.DBCacheIBD < roundDown(ram/2, 64) && waits:
		why("dbcache (IBD)", mib(b.DBCacheIBD), "what is left of %d MiB beside bitcoind's base and the reserve (the guide's half the RAM does not fit)", ram)
	case b.DBCacheIBD < roundDown(ram/2, 64):
		why("dbcache (IBD)", mib(b.DBCacheIBD), "what is left of %d MiB beside Fulcrum, which indexes at the same time (the guide's half the RAM does not fit)", ram)
	default:
		why("dbcache (IBD)", mib(b.DBCacheIBD), "half the RAM (the guide: 4 GB → 2048)")
	}

	f := &s.Fulcrum
	f.DBMem = min(wantDBMem, roundDown(room, 64))
	switch {
	case f.DBMem < minDBMem:
		f.DBMem = minDBMem
		warn("%d MiB of RAM is too small for Fulcrum beside bitcoind: db_mem=%d, expect heavy swapping", ram, minDBMem)
		why("db_mem", mib(f.DBMem), "the floor: RAM is too small")
	case f.DBMem < wantDBMem:
		why("db_mem", mib(f.DBMem), "what is left of %d MiB beside bitcoind (%s would be %d)", ram, wantDBMemWhy, wantDBMem)
	default:
		why("db_mem", mib(f.DBMem), "%s", wantDBMemWhy)
	}
	if fv == 1 {
		f.UTXOCacheMB = roundDown(min(halfMB, toMB(room-f.DBMem)), 100)
		switch {
		case f.UTXOCacheMB < minUTXOMB:
			f.UTXOCacheMB = 0
			why("utxo_cache", "off", "no room left beside db_mem and bitcoind")
		case f.UTXOCacheMB < roundDown(halfMB, 100):
			why("utxo_cache", fmt.Sprintf("%d MB", f.UTXOCacheMB), "what is left once db_mem is given (the guide's half the RAM, %d MB, does not fit beside bitcoind)", roundDown(halfMB, 100))
		default:
			why("utxo_cache", fmt.Sprintf("%d MB", f.UTXOCacheMB), "half the RAM (the guide: 4 GB → 2000)")
		}
	}

	if t.small {
		f.DBMaxOpenFiles = t.openFiles
		why("db_max_open_files", strconv.Itoa(t.openFiles), "RAM %s: %s", t.name, t.openFilesWhy)
	}
	switch {
	case s.Slow:
		f.BitcoindTimeout, f.BitcoindClients, f.WorkerThreads = 600, 1, 1
		why("bitcoind_timeout", "600 s", "slow device (RAM %s, %s): the guide's slow-device setting", t.name, plural(hw.CPUs, "CPU"))
		why("bitcoind_clients", "1", "slow device: the guide's slow-device setting")
		why("worker_threads", "1", "slow device: the guide's slow-device setting")
	case hw.CPUs < 3:
		// Fulcrum's default is 3; its docs advise no more than the cores.
		f.BitcoindClients = max(hw.CPUs, 1)
		why("bitcoind_clients", strconv.Itoa(f.BitcoindClients), "one per CPU (Fulcrum's default 3 is more than the %d CPUs)", hw.CPUs)
	}
	if !s.Slow && !waits {
		// bitcoind stalls its RPC while it flushes a large dbcache during
		// IBD; Fulcrum's default 30 s would drop and redo its requests.
		f.BitcoindTimeout = 600
		why("bitcoind_timeout", "600 s", "Fulcrum indexes during bitcoind's initial sync, whose dbcache flushes stall RPC for minutes")
	}

	fulcrumIndexing := fulcrumBase + f.DBMem + fromMB(f.UTXOCacheMB)
	ibdFulcrum := fulcrumIndexing
	if waits {
		ibdFulcrum = 0
	}
	phase := func(name string, bitcoind, fulcrum int) Phase {
		return Phase{Name: name, Bitcoind: bitcoind, Fulcrum: fulcrum, Peak: osReserve + bitcoind + fulcrum}
	}
	synced := bitcoindBase + b.DBCacheSynced + b.MaxMempool
	s.Budget = Budget{RAM: ram, OSReserve: osReserve, Phases: []Phase{
		phase(PhaseIBD, bitcoindBase+b.DBCacheIBD+b.MaxMempoolIBD, ibdFulcrum),
		phase(PhaseIndexing, synced, fulcrumIndexing),
		phase(PhaseSynced, synced, fulcrumBase+f.DBMem),
	}}
	return s
}

// gib is RAM in MiB as people say it: "4 GiB", "1.5 GiB".
func gib(mib int) string {
	return strconv.FormatFloat(math.Round(float64(mib)/1024*10)/10, 'f', -1, 64) + " GiB"
}

func roundDown(n, unit int) int {
	if n < 0 {
		return n
	}
	return n / unit * unit
}

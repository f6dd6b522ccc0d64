package firstboot

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/internal/bytesize"
)

// TestSizeTable pins the sizing table of the README for 2 to 32 GiB and 1
// to 8 CPUs, for both Fulcrum versions.
func TestSizeTable(t *testing.T) {
	type row struct {
		gib                      uint64
		waits                    bool
		ibd, synced, mempool     int
		dbMem, utxoMB, openFiles int
		peaks                    [3]int // IBD, Fulcrum indexing, synced
	}
	tables := map[FulcrumVersion][]row{
		2: {
			{gib: 2, waits: true, ibd: 1024, synced: 200, mempool: 100, dbMem: 384, openFiles: 200, peaks: [3]int{1841, 2008, 2008}},
			{gib: 4, waits: true, ibd: 2048, synced: 450, mempool: 300, dbMem: 1024, openFiles: 200, peaks: [3]int{2865, 3098, 3098}},
			{gib: 8, ibd: 4096, synced: 450, mempool: 300, dbMem: 1024, openFiles: 400, peaks: [3]int{6449, 3098, 3098}},
			{gib: 16, ibd: 7488, synced: 450, mempool: 300, dbMem: 7552, peaks: [3]int{16369, 9626, 9626}},
			{gib: 32, ibd: 15680, synced: 450, mempool: 300, dbMem: 15744, peaks: [3]int{32753, 17818, 17818}},
		},
		1: {
			{gib: 2, waits: true, ibd: 1024, synced: 200, mempool: 100, dbMem: 384, openFiles: 200, peaks: [3]int{1841, 2008, 2008}},
			{gib: 4, waits: true, ibd: 2048, synced: 450, mempool: 300, dbMem: 1024, utxoMB: 1000, openFiles: 200, peaks: [3]int{2865, 4052, 3098}},
			{gib: 8, waits: true, ibd: 4096, synced: 450, mempool: 300, dbMem: 1024, utxoMB: 4200, openFiles: 400, peaks: [3]int{4913, 7104, 3098}},
			{gib: 16, ibd: 7488, synced: 450, mempool: 300, dbMem: 4096, utxoMB: 3600, peaks: [3]int{16347, 9604, 6170}},
			{gib: 32, ibd: 15680, synced: 450, mempool: 300, dbMem: 8192, utxoMB: 7900, peaks: [3]int{32736, 17801, 10266}},
		},
	}
	for fv, rows := range tables {
		for _, r := range rows {
			for _, cpus := range []int{1, 2, 4, 8} {
				t.Run(fmt.Sprintf("fulcrum%d/%dGiB/%dcpu", fv, r.gib, cpus), func(t *testing.T) {
					s := Size(Hardware{MemTotal: r.gib * bytesize.GiB, CPUs: cpus}, fv)
					slow := r.gib <= 8 && cpus <= 2
					want := Settings{
						Slow:     slow,
						Plan:     Plan{FulcrumWaits: r.waits, Why: s.Plan.Why},
						Bitcoind: Bitcoind{DBCacheIBD: r.ibd, DBCacheSynced: r.synced, MaxMempoolIBD: 5, MaxMempool: r.mempool},
						Fulcrum:  Fulcrum{UTXOCacheMB: r.utxoMB, DBMem: r.dbMem, DBMaxOpenFiles: r.openFiles},
					}
					switch {
					case slow:
						want.Fulcrum.BitcoindTimeout, want.Fulcrum.BitcoindClients, want.Fulcrum.WorkerThreads = 600, 1, 1
					case cpus < 3:
						want.Fulcrum.BitcoindClients = cpus
					}
					if !slow && !r.waits {
						want.Fulcrum.BitcoindTimeout = 600
					}
					if s.Slow != want.Slow || s.Plan != want.Plan || s.Bitcoind != want.Bitcoind || s.Fulcrum != want.Fulcrum {
						t.Errorf("got slow=%v %+v %+v %+v\nwant slow=%v %+v %+v %+v", s.Slow, s.Plan, s.Bitcoind, s.Fulcrum, want.Slow, want.Plan, want.Bitcoind, want.Fulcrum)
					}
					for i, p := range s.Budget.Phases {
						if p.Peak != r.peaks[i] {
							t.Errorf("%s: peak %d MiB, want %d", p.Name, p.Peak, r.peaks[i])
						}
					}
					if !s.Budget.Fits() || len(s.Warnings) > 0 {
						t.Errorf("budget %+v does not fit, warnings %q", s.Budget, s.Warnings)
					}
				})
			}
		}
	}
}

// TestMemoryFitsEveryPhase checks the inequality the sizing promises, for
// every tier, both Fulcrum majors and every phase: reserve + bitcoind +
// Fulcrum, as configured, ≤ RAM. Where Fulcrum waits, it takes nothing
// during the initial block download; where it does not, it takes its full
// indexing size there too.
func TestMemoryFitsEveryPhase(t *testing.T) {
	for _, fv := range []FulcrumVersion{1, 2} {
		for _, gib := range []float64{1.5, 2, 3, 4, 6, 8, 12, 16, 32, 64} {
			for _, cpus := range []int{1, 2, 4, 8} {
				mem := uint64(gib * bytesize.GiB)
				s := Size(Hardware{MemTotal: mem, CPUs: cpus}, fv)
				name := fmt.Sprintf("fulcrum %d.x, %g GiB, %d CPUs", fv, gib, cpus)
				b := s.Budget
				if len(b.Phases) != 3 || b.Phases[0].Name != PhaseIBD || b.Phases[1].Name != PhaseIndexing || b.Phases[2].Name != PhaseSynced {
					t.Fatalf("%s: phases %+v", name, b.Phases)
				}
				if gib < 2 {
					// Below the smallest supported machine the floors do
					// not fit, and the agent says so.
					if b.Fits() || len(s.Warnings) == 0 || !strings.Contains(s.Warnings[0], "too small") {
						t.Errorf("%s: want a too-small warning and a budget that does not fit, got %q, %+v", name, s.Warnings, b)
					}
					continue
				}
				wantWaits := gib <= 4 || (fv == 1 && gib <= 8)
				if s.Plan.FulcrumWaits != wantWaits || s.Plan.Why == "" {
					t.Errorf("%s: plan %+v, want waits=%v", name, s.Plan, wantWaits)
				}
				fulcrumIndexing := fulcrumBase + s.Fulcrum.DBMem + int((uint64(s.Fulcrum.UTXOCacheMB)*1e6+bytesize.MiB-1)/bytesize.MiB)
				wantIBDFulcrum := fulcrumIndexing
				if wantWaits {
					wantIBDFulcrum = 0
				}
				synced := bitcoindBase + s.Bitcoind.DBCacheSynced + s.Bitcoind.MaxMempool
				for _, c := range []struct {
					p                 Phase
					bitcoind, fulcrum int
				}{
					{b.Phases[0], bitcoindBase + s.Bitcoind.DBCacheIBD + s.Bitcoind.MaxMempoolIBD, wantIBDFulcrum},
					{b.Phases[1], synced, fulcrumIndexing},
					{b.Phases[2], synced, fulcrumBase + s.Fulcrum.DBMem},
				} {
					if c.p.Bitcoind != c.bitcoind || c.p.Fulcrum != c.fulcrum || c.p.Peak != osReserve+c.bitcoind+c.fulcrum {
						t.Errorf("%s, %s: %+v, want bitcoind %d, Fulcrum %d", name, c.p.Name, c.p, c.bitcoind, c.fulcrum)
					}
					if c.p.Peak > b.RAM {
						t.Errorf("%s, %s: peak %d MiB > RAM %d", name, c.p.Name, c.p.Peak, b.RAM)
					}
				}
				if !b.Fits() || len(s.Warnings) > 0 {
					t.Errorf("%s: budget %+v, warnings %q", name, b, s.Warnings)
				}
			}
		}
	}
}

// TestSlowDeviceByCPUs: the guide's slow-device options go to a machine of
// 8 GiB or less with at most two CPUs; a 4-core machine with 8 GiB keeps
// Fulcrum's defaults for worker_threads and bitcoind_clients.
func TestSlowDeviceByCPUs(t *testing.T) {
	for _, c := range []struct {
		gib  uint64
		cpus int
		slow bool
	}{{2, 1, true}, {4, 2, true}, {8, 2, true}, {4, 4, false}, {8, 4, false}, {8, 8, false}, {16, 1, false}, {16, 2, false}} {
		s := Size(Hardware{MemTotal: c.gib * bytesize.GiB, CPUs: c.cpus}, 2)
		f := s.Fulcrum
		if s.Slow != c.slow || (f.WorkerThreads == 1) != c.slow || (c.slow && f.BitcoindClients != 1) {
			t.Errorf("%d GiB, %d CPUs: slow=%v worker_threads=%d bitcoind_clients=%d, want slow=%v", c.gib, c.cpus, s.Slow, f.WorkerThreads, f.BitcoindClients, c.slow)
		}
		if !c.slow && c.cpus >= 3 && f.BitcoindClients != 0 {
			t.Errorf("%d GiB, %d CPUs: bitcoind_clients=%d, want Fulcrum's default", c.gib, c.cpus, f.BitcoindClients)
		}
		if c.gib <= 8 && f.DBMaxOpenFiles == 0 {
			t.Errorf("%d GiB, %d CPUs: db_max_open_files goes by RAM, got none", c.gib, c.cpus)
		}
	}
}

// TestSizeStaysWithinRAM checks, for every RAM size from 1.75 GiB to 64 GiB
// in uneven steps (as MemTotal really is) and 1 to 16 CPUs, that every
// phase fits and that no value breaks a rule Fulcrum or the guide sets.
func TestSizeStaysWithinRAM(t *testing.T) {
	for _, fv := range []FulcrumVersion{1, 2} {
		for mem := uint64(1792 * bytesize.MiB); mem <= 64*bytesize.GiB; mem += 37*bytesize.MiB + 123*1024 {
			for cpus := 1; cpus <= 16; cpus++ {
				s := Size(Hardware{MemTotal: mem, CPUs: cpus}, fv)
				ram := int(mem / bytesize.MiB)
				name := fmt.Sprintf("fulcrum %d, %d MiB, %d CPUs", fv, ram, cpus)
				if !s.Budget.Fits() {
					t.Fatalf("%s: %+v", name, s.Budget)
				}
				f := s.Fulcrum
				switch {
				case len(s.Warnings) > 0:
					t.Fatalf("%s: warnings %q", name, s.Warnings)
				case f.DBMem*2 > ram:
					t.Fatalf("%s: db_mem %d is more than half the RAM", name, f.DBMem)
				case fv >= 2 && f.UTXOCacheMB != 0:
					t.Fatalf("%s: Fulcrum 2.x got utxo_cache %d", name, f.UTXOCacheMB)
				case f.UTXOCacheMB != 0 && (f.UTXOCacheMB < minUTXOMB || uint64(f.UTXOCacheMB)*1e6 > mem/2):
					t.Fatalf("%s: utxo_cache %d MB is not within [%d MB, half the RAM]", name, f.UTXOCacheMB, minUTXOMB)
				case f.WorkerThreads > cpus || f.BitcoindClients > cpus:
					t.Fatalf("%s: worker_threads %d / bitcoind_clients %d exceed the CPUs", name, f.WorkerThreads, f.BitcoindClients)
				case s.Bitcoind.DBCacheIBD < s.Bitcoind.DBCacheSynced:
					t.Fatalf("%s: dbcache during IBD %d is below the synced %d", name, s.Bitcoind.DBCacheIBD, s.Bitcoind.DBCacheSynced)
				case s.Slow != (mem <= 8*bytesize.GiB && cpus <= slowCPUs):
					t.Fatalf("%s: slow=%v", name, s.Slow)
				case mem <= 8*bytesize.GiB && f.DBMaxOpenFiles != map[bool]int{true: 200, false: 400}[mem <= 4*bytesize.GiB]:
					t.Fatalf("%s: db_max_open_files %d", name, f.DBMaxOpenFiles)
				}
			}
		}
	}
}

func TestParseFulcrumVersion(t *testing.T) {
	for in, want := range map[string]FulcrumVersion{"2.1.1\n": 2, "v1.11.1": 1, "1": 1, " 10.0 ": 10} {
		if got, err := ParseFulcrumVersion(in); err != nil || got != want {
			t.Errorf("ParseFulcrumVersion(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x.1", "0.9", "Fulcrum"} {
		if _, err := ParseFulcrumVersion(in); err == nil {
			t.Errorf("ParseFulcrumVersion(%q) accepted", in)
		}
	}
}

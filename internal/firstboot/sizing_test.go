package firstboot

import (
	"fmt"
	"testing"

	"github.com/nodebake/nodebake/internal/bytesize"
)

// TestSizeTable pins the sizing table of the README for 2 to 32 GiB and 1
// to 8 CPUs, for both Fulcrum versions.
func TestSizeTable(t *testing.T) {
	type row struct {
		gib                      uint64
		ibd, synced, mempool     int
		dbMem, utxoMB, openFiles int
		slow                     bool
	}
	tables := map[FulcrumVersion][]row{
		2: {
			{gib: 2, ibd: 576, synced: 200, mempool: 100, dbMem: 384, openFiles: 200, slow: true},
			{gib: 4, ibd: 2048, synced: 450, mempool: 300, dbMem: 1024, openFiles: 200, slow: true},
			{gib: 8, ibd: 4096, synced: 450, mempool: 300, dbMem: 1024, openFiles: 400, slow: true},
			{gib: 16, ibd: 8192, synced: 450, mempool: 300, dbMem: 8192},
			{gib: 32, ibd: 16384, synced: 450, mempool: 300, dbMem: 16384},
		},
		1: {
			{gib: 2, ibd: 576, synced: 200, mempool: 100, dbMem: 384, openFiles: 200, slow: true},
			{gib: 4, ibd: 2048, synced: 450, mempool: 300, dbMem: 1024, utxoMB: 1000, openFiles: 200, slow: true},
			{gib: 8, ibd: 4096, synced: 450, mempool: 300, dbMem: 1024, utxoMB: 4200, openFiles: 400, slow: true},
			{gib: 16, ibd: 8192, synced: 450, mempool: 300, dbMem: 4096, utxoMB: 8500},
			{gib: 32, ibd: 16384, synced: 450, mempool: 300, dbMem: 8192, utxoMB: 17100},
		},
	}
	for fv, rows := range tables {
		for _, r := range rows {
			for _, cpus := range []int{1, 2, 4, 8} {
				t.Run(fmt.Sprintf("fulcrum%d/%dGiB/%dcpu", fv, r.gib, cpus), func(t *testing.T) {
					s := Size(Hardware{MemTotal: r.gib * bytesize.GiB, CPUs: cpus}, fv)
					want := Settings{
						Slow:     r.slow,
						Bitcoind: Bitcoind{DBCacheIBD: r.ibd, DBCacheSynced: r.synced, MaxMempool: r.mempool},
						Fulcrum:  Fulcrum{UTXOCacheMB: r.utxoMB, DBMem: r.dbMem, DBMaxOpenFiles: r.openFiles},
					}
					if r.slow {
						want.Fulcrum.BitcoindTimeout, want.Fulcrum.BitcoindClients, want.Fulcrum.WorkerThreads = 600, 1, 1
					} else if cpus < 3 {
						want.Fulcrum.BitcoindClients = cpus
					}
					if s.Slow != want.Slow || s.Bitcoind != want.Bitcoind || s.Fulcrum != want.Fulcrum {
						t.Errorf("got slow=%v %+v %+v\nwant slow=%v %+v %+v", s.Slow, s.Bitcoind, s.Fulcrum, want.Slow, want.Bitcoind, want.Fulcrum)
					}
					if !s.Budget.Fits() || len(s.Warnings) > 0 {
						t.Errorf("budget %+v does not fit, warnings %q", s.Budget, s.Warnings)
					}
					if len(s.Reasons) == 0 {
						t.Error("no reasons given")
					}
				})
			}
		}
	}
}

// TestSizeStaysWithinRAM checks, for every RAM size from 1.75 GiB to 64 GiB
// in uneven steps (as MemTotal really is) and 1 to 16 CPUs, that bitcoind
// and Fulcrum together never get more than the RAM, in either phase, and
// that no value breaks a rule Fulcrum or the guide sets.
func TestSizeStaysWithinRAM(t *testing.T) {
	for _, fv := range []FulcrumVersion{1, 2} {
		for mem := uint64(1792 * bytesize.MiB); mem <= 64*bytesize.GiB; mem += 37*bytesize.MiB + 123*1024 {
			for cpus := 1; cpus <= 16; cpus++ {
				s := Size(Hardware{MemTotal: mem, CPUs: cpus}, fv)
				b := s.Budget
				ram := int(mem / bytesize.MiB)
				name := fmt.Sprintf("fulcrum %d, %d MiB, %d CPUs", fv, ram, cpus)
				if ibd, synced := b.IBDBitcoind+b.IBDFulcrum, b.SyncedBitcoind+b.SyncedFulcrum; ibd >= ram || synced >= ram || !b.Fits() {
					t.Fatalf("%s: bitcoind+Fulcrum take %d MiB during IBD and %d once synced (+%d reserve)", name, ibd, synced, b.OSReserve)
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
				case s.Slow != (mem <= 8*bytesize.GiB):
					t.Fatalf("%s: slow=%v", name, s.Slow)
				case s.Slow && f.DBMaxOpenFiles != map[bool]int{true: 200, false: 400}[mem <= 4*bytesize.GiB]:
					t.Fatalf("%s: db_max_open_files %d", name, f.DBMaxOpenFiles)
				}
			}
		}
	}
}

func TestSizeTooSmall(t *testing.T) {
	s := Size(Hardware{MemTotal: 1 * bytesize.GiB, CPUs: 1}, 2)
	if len(s.Warnings) != 2 || s.Budget.Fits() {
		t.Fatalf("1 GiB: want two warnings and a budget that does not fit, got %q, %+v", s.Warnings, s.Budget)
	}
	if s.Bitcoind.DBCacheIBD != minDBCache || s.Fulcrum.DBMem != minDBMem {
		t.Errorf("1 GiB: want the floors, got dbcache %d, db_mem %d", s.Bitcoind.DBCacheIBD, s.Fulcrum.DBMem)
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

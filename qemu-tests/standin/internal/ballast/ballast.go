// Package ballast makes a stand-in program use the memory its real
// counterpart's configuration grants it (bitcoind's dbcache and maxmempool,
// Fulcrum's db_mem and utxo_cache), so that a cgroup's memory.current and
// memory.peak in a QEMU test reflect the configuration the image rendered
// and a memory budget that does not fit shows up. Memory is mapped
// anonymously and one byte of every 4 KiB page is written, so the kernel
// has to back each page (it counts as resident); it is never given back
// while the program runs, as the real programs keep their caches.
package ballast

import (
	"fmt"
	"os"
	"sync"
	"syscall"
)

// SkipEnv, set to 1 in a stand-in's environment, makes it allocate
// nothing: for unit tests that start many stand-ins at once. Images never
// set it; a QEMU test must not either, or memory budgets go untested.
const SkipEnv = "STANDIN_SKIP_MEMORY"

// MiB is a mebibyte, the unit of dbcache, maxmempool and db_mem.
const MiB = 1 << 20

const (
	page  = 4096
	chunk = 16 * MiB // one mapping per chunk: growing in steps keeps RSS close to the target
)

// Ballast is memory held on purpose. The zero value is not usable: call New.
type Ballast struct {
	skip   bool
	mu     sync.Mutex
	held   int64
	chunks [][]byte // kept so the mappings stay referenced and visibly owned
}

// New returns an empty ballast that allocates unless SkipEnv is set.
func New() *Ballast {
	return &Ballast{skip: os.Getenv(SkipEnv) == "1"}
}

// Skipped tells whether the ballast allocates nothing (SkipEnv).
func (b *Ballast) Skipped() bool { return b.skip }

// Held is how many bytes the ballast holds.
func (b *Ballast) Held() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}

// GrowTo makes the ballast hold at least bytes (rounded up to a page),
// touching every page; it never shrinks. With SkipEnv it only records the
// target.
func (b *Ballast) GrowTo(bytes int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	bytes = (bytes + page - 1) / page * page
	for b.held < bytes {
		n := min(int64(chunk), bytes-b.held)
		if b.skip {
			b.held += n
			continue
		}
		m, err := syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
		if err != nil {
			return fmt.Errorf("mapping %d MiB more memory (holding %d MiB): %v", n/MiB, b.held/MiB, err)
		}
		for i := 0; i < len(m); i += page {
			m[i] = 1
		}
		b.chunks = append(b.chunks, m)
		b.held += n
	}
	return nil
}

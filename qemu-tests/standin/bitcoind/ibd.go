package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nodebake/nodebake/qemu-tests/standin/internal/ballast"
)

// PaceFile, in bitcoind's data directory, sets the stand-in's initial
// block download. Bitcoin Core never reads it and nodebake never writes
// it, so an image cannot change the pace by accident; a test writes it
// before bitcoind starts (or restarts bitcoind after writing it).
const PaceFile = "standin.conf"

// stateFile holds the chain's progress, so that a restart continues where
// the last run stopped, as bitcoind continues from its block index.
const stateFile = "standin-chain.json"

// pace is the initial block download the stand-in plays.
type pace struct {
	chainLength     int     // blocks the network's chain has, after genesis
	blocksPerSecond float64 // how fast blocks are "downloaded and validated"
	// headersPerSecond is how fast headers come in; bitcoind syncs headers
	// first, so they run ahead of the blocks.
	headersPerSecond float64
}

// defaultPace is the demo image's: a sync of about a minute and a half.
var defaultPace = pace{chainLength: 3000, blocksPerSecond: 35, headersPerSecond: 1000}

// readPace reads PaceFile in datadir (name = value lines, # comments);
// without it, defaultPace.
func readPace(datadir string) (pace, error) {
	p := defaultPace
	path := filepath.Join(datadir, PaceFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	} else if err != nil {
		return p, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		name, value, _ := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if name == "" {
			continue
		}
		num, err := strconv.ParseFloat(value, 64)
		if err != nil || num < 0 || math.IsInf(num, 0) {
			return p, fmt.Errorf("%s line %d: %s = %q: want a number ≥ 0", path, n, name, value)
		}
		switch name {
		case "chain_length":
			p.chainLength = int(num)
		case "blocks_per_second":
			p.blocksPerSecond = num
		case "headers_per_second":
			p.headersPerSecond = num
		default:
			return p, fmt.Errorf("%s line %d: unknown setting %q (the stand-in bitcoind knows chain_length, blocks_per_second and headers_per_second)", path, n, name)
		}
	}
	return p, sc.Err()
}

// syncState is what stateFile holds.
type syncState struct {
	// Epoch fixes the made-up blocks' times (chain.epoch): chosen at the
	// first start so that the chain then ends at the current time.
	Epoch   int64 `json:"epoch"`
	Length  int   `json:"length"`
	Blocks  int   `json:"blocks"`
	Headers int   `json:"headers"`
}

// memory is what bitcoind's configuration grants it.
type memory struct {
	dbcache    int64 // bytes; Bitcoin Core's -dbcache is in MiB
	maxmempool int64 // bytes; -maxmempool is in MB (10^6 bytes)
	blocksonly bool
}

// baseMemory stands for what bitcoind uses besides dbcache and the mempool
// (block index, peers, buffers, the program): about 200 MiB on mainnet.
// The image's memory budget counts 300 MiB for it, so a correct budget
// holds the stand-in with room to spare.
const baseMemory = 200 * ballast.MiB

// ibd plays the initial block download: headers and then blocks come in at
// the configured pace until the chain's end, where bitcoind leaves IBD.
type ibd struct {
	chain   *chain
	path    string // stateFile
	pace    pace
	mem     memory
	ballast *ballast.Ballast

	mu       sync.Mutex
	st       syncState
	blocks   float64 // st.Blocks and st.Headers with their fractions
	headers  float64
	latched  bool // out of IBD, for good
	lastLog  time.Time
	lastSave time.Time
}

// loadIBD continues the chain in datadir, or starts one.
func loadIBD(datadir string, p pace, mem memory) (*ibd, error) {
	d := &ibd{path: filepath.Join(datadir, stateFile), pace: p, mem: mem, ballast: ballast.New()}
	b, err := os.ReadFile(d.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		d.st = syncState{Epoch: time.Now().Unix() - int64(blockSpacing*p.chainLength), Length: p.chainLength}
	case err != nil:
		return nil, fmt.Errorf("reading the stand-in's chain state: %v", err)
	default:
		if err := json.Unmarshal(b, &d.st); err != nil || d.st.Blocks > d.st.Headers || d.st.Headers > d.st.Length {
			return nil, fmt.Errorf("the stand-in's chain state %s is damaged (%v): remove it to start the chain over", d.path, err)
		}
		// The network's chain may have grown since (a longer chain_length);
		// it never shrinks: that would be a reorg, which the stand-in has not.
		d.st.Length = max(d.st.Length, p.chainLength)
	}
	d.chain = newChain(d.st.Epoch)
	d.blocks, d.headers = float64(d.st.Blocks), float64(d.st.Headers)
	d.latched = d.st.Blocks >= d.st.Length
	return d, d.ballast.GrowTo(d.memoryWanted())
}

// tip is the active chain's height, the best header's, and whether
// bitcoind is in its initial block download.
func (d *ibd) tip() (blocks, headers int, inIBD bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st.Blocks, d.st.Headers, !d.latched
}

// progress is verificationprogress with the active chain at blocks: the
// share of the chain's transactions verified (one per block here); 1 at
// the end. The length is fixed once loadIBD has returned.
func (d *ibd) progress(blocks int) float64 {
	return float64(blocks+1) / float64(d.st.Length+1)
}

// memoryWanted is what the stand-in holds: the base; dbcache, filled as
// the UTXO set grows, full by half the chain; the mempool once out of IBD
// unless blocksonly (bitcoind takes no transactions before). Called with
// d.mu held or before the ibd is shared.
func (d *ibd) memoryWanted() int64 {
	want := int64(baseMemory)
	filled := 1.0
	if d.st.Length > 0 {
		filled = min(1, 2*float64(d.st.Blocks)/float64(d.st.Length))
	}
	want += int64(filled * float64(d.mem.dbcache))
	if d.latched && !d.mem.blocksonly {
		want += d.mem.maxmempool
	}
	return want
}

// advance moves the download on by dt, logs as bitcoind does now and then,
// grows the memory held and saves the state every few seconds.
func (d *ibd) advance(dt time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	length := float64(d.st.Length)
	d.headers = min(length, d.headers+d.pace.headersPerSecond*dt.Seconds())
	d.blocks = min(d.headers, d.blocks+d.pace.blocksPerSecond*dt.Seconds())
	before := d.st.Blocks
	d.st.Headers, d.st.Blocks = int(d.headers), int(d.blocks)
	if d.st.Blocks != before && (time.Since(d.lastLog) >= time.Second || d.st.Blocks == d.st.Length) {
		d.lastLog = time.Now()
		b := d.chain.at(d.st.Blocks)
		logf("UpdateTip: new best=%s height=%d version=0x%08x tx=%d date='%s' progress=%f headers=%d (stand-in)",
			b.hash, d.st.Blocks, b.version(), d.st.Blocks+1, time.Unix(int64(b.time()), 0).UTC().Format("2006-01-02T15:04:05Z"),
			d.progress(d.st.Blocks), d.st.Headers)
	}
	if !d.latched && d.st.Blocks >= d.st.Length {
		d.latched = true
		logf("Leaving InitialBlockDownload (latching to false)")
	}
	if err := d.ballast.GrowTo(d.memoryWanted()); err != nil {
		return err
	}
	if time.Since(d.lastSave) >= 2*time.Second {
		return d.saveLocked()
	}
	return nil
}

// save writes the state (at shutdown, and from advance).
func (d *ibd) save() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.saveLocked()
}

// saveLocked writes the state through a temporary file, so that a crash
// leaves the old state or the new one.
func (d *ibd) saveLocked() error {
	d.lastSave = time.Now()
	b, _ := json.Marshal(d.st)
	tmp := d.path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("saving the stand-in's chain state: %v", err)
	}
	if err := os.Rename(tmp, d.path); err != nil {
		return fmt.Errorf("saving the stand-in's chain state: %v", err)
	}
	return nil
}

// run advances the download every tick until stop is closed.
func (d *ibd) run(stop <-chan struct{}, fatal chan<- error) {
	const tick = 100 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			if err := d.advance(now.Sub(last)); err != nil {
				fatal <- err
				return
			}
			last = now
		}
	}
}

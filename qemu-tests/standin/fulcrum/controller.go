package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nodebake/nodebake/qemu-tests/standin/internal/ballast"
)

// PaceFile, in Fulcrum's datadir, sets how fast the stand-in indexes and
// how long 2.x counts down before a database upgrade. Fulcrum never reads
// it and nodebake never writes it; a test writes it before Fulcrum starts.
const PaceFile = "standin.conf"

type pace struct {
	blocksPerSecond  float64
	upgradeCountdown time.Duration // Fulcrum 2.x waits 10 seconds
}

// defaultPace indexes faster than the stand-in bitcoind's default
// download, so that Fulcrum catches up with it during its IBD, as the
// real one can on a fast disk.
var defaultPace = pace{blocksPerSecond: 100, upgradeCountdown: 10 * time.Second}

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
		case "blocks_per_second":
			p.blocksPerSecond = num
		case "upgrade_countdown":
			p.upgradeCountdown = time.Duration(num * float64(time.Second))
		default:
			return p, fmt.Errorf("%s line %d: unknown setting %q (the stand-in Fulcrum knows blocks_per_second and upgrade_countdown)", path, n, name)
		}
	}
	return p, sc.Err()
}

// baseMemory stands for what Fulcrum uses besides db_mem and 1.x's
// utxo_cache (the program, Qt, buffers, the header and merkle caches).
// The image's memory budget counts 512 MiB for it.
const baseMemory = 400 * ballast.MiB

// smState is Controller's StateMachine as /stats shows it; nil between
// rounds and once up-to-date.
type smState struct {
	State      string
	Height     int // bitcoind's blocks
	Downloaded int // this run
}

// controller follows bitcoind as Fulcrum's Controller::process does
// (src/Controller.cpp): while its tip is below bitcoind's blocks it
// downloads and indexes, IBD or not; at bitcoind's tip with bitcoind in
// IBD it waits and asks again (RetryInIBD); at the tip with bitcoind out
// of IBD it is up-to-date, and the first time it opens its servers.
func (f *fulcrum) controller(rpc *rpcClient) error {
	f.logf("BitcoinDMgr: connecting to bitcoind at %s ...", f.conf.bitcoind)
	var d *daemon
	downloaded := 0
	for {
		if d == nil || !rpc.connected {
			nd, err := rpc.networkInfo()
			if err != nil {
				if f.wait(f.conf.polltime, "<BitcoinD> %s: %v; retrying in %v", f.conf.bitcoind, err, f.conf.polltime) {
					return nil
				}
				continue
			}
			if d == nil || *d != *nd {
				f.logf("Bitcoin Core %s (%s) at %s", nd.daemonVersion(), nd.subversion, f.conf.bitcoind)
			}
			d = nd
			f.mu.Lock()
			f.bitcoind = d
			f.mu.Unlock()
		}
		info, err := rpc.chainInfo()
		if err != nil {
			if f.wait(f.conf.polltime, "<BitcoinD> %s: %v; retrying in %v", f.conf.bitcoind, err, f.conf.polltime) {
				return nil
			}
			continue
		}
		f.mu.Lock()
		f.target = max(f.target, info.Headers, info.Blocks)
		f.mu.Unlock()
		if f.db.state().Chain == "" {
			f.db.update(func(s *dbState) { s.Chain = info.Chain })
		}
		st := f.db.state()
		switch {
		case st.Chain != info.Chain:
			return fmt.Errorf("Bitcoind reports chain: \"%s\", which differs from our database: \"%s\". You may have connected to the wrong bitcoind. To fix this issue either connect to a different bitcoind or delete this program's datadir to resynch.", info.Chain, st.Chain)
		case st.Height < info.Blocks && f.pace.blocksPerSecond == 0: // stalled on purpose by a test
			f.setState(&smState{State: "DownloadingBlocks", Height: info.Blocks, Downloaded: downloaded})
			if f.wait(f.conf.polltime, "") {
				return nil
			}
		case st.Height < info.Blocks:
			f.logf("Block height %d, downloading new blocks ...", info.Blocks)
			f.setState(&smState{State: "DownloadingBlocks", Height: info.Blocks, Downloaded: downloaded})
			n, err := f.index(rpc, info, &downloaded)
			if err != nil {
				f.logf("<Controller> %v", err)
				f.setState(nil)
				if f.wait(f.conf.polltime, "Failed to synch blocks and/or mempool") {
					return nil
				}
				continue
			}
			if n < 0 {
				return nil // stopping
			}
			f.logf("Processed %d new block(s) with %d tx(s) (%d input(s), %d output(s), 0 addresses), verified ok.", n, n, n, n)
			f.setState(nil)
		case st.Height > info.Blocks || st.Tip != info.BestBlockHash:
			f.setState(nil)
			if f.wait(f.conf.polltime, "Warning: We have height %d (%s), but bitcoind reports height %d (%s). Possible reorg; the stand-in cannot rewind: delete its datadir to resynch.", st.Height, st.Tip, info.Blocks, info.BestBlockHash) {
				return nil
			}
		case info.InitialBlockDownload:
			f.setState(&smState{State: "RetryInIBD", Height: info.Blocks, Downloaded: downloaded})
			if f.wait(time.Second, "") { // Fulcrum's cool-off while bitcoind gets more blocks
				return nil
			}
		default:
			f.setState(nil)
			if !f.upToDate() {
				f.logf("Block height %d, up-to-date", st.Height)
				if err := f.grow(); err != nil {
					return err
				}
				ls, err := f.startServices()
				if err != nil {
					return err
				}
				f.mu.Lock()
				f.servers = true
				f.listeners = append(f.listeners, ls...)
				f.mu.Unlock()
			}
			if f.wait(f.conf.polltime, "") {
				return nil
			}
		}
	}
}

// index downloads and indexes blocks up to info.Blocks at the configured
// pace; n is how many, or -1 if a stop came first.
func (f *fulcrum) index(rpc *rpcClient, info chainInfo, downloaded *int) (n int, err error) {
	start := time.Now()
	lastSave := start
	for h := f.db.state().Height + 1; h <= info.Blocks; h++ {
		due := start.Add(time.Duration(float64(n) / f.pace.blocksPerSecond * float64(time.Second)))
		if d := time.Until(due); d > 0 && f.wait(d, "") {
			return -1, nil
		}
		hash, raw, err := rpc.block(h)
		if err != nil {
			return n, err
		}
		if err := f.addBlock(h, hash, raw); err != nil {
			return n, err
		}
		n++
		*downloaded++
		f.setState(&smState{State: "DownloadingBlocks", Height: info.Blocks, Downloaded: *downloaded})
		if err := f.grow(); err != nil {
			return n, err
		}
		if time.Since(lastSave) >= time.Second {
			lastSave = time.Now()
			if err := f.db.save(); err != nil {
				return n, err
			}
		}
	}
	return n, f.db.save()
}

// addBlock checks block h as Fulcrum's block processing does (it extends
// our tip, its merkle root matches its transactions) and indexes it. The
// stand-in bitcoind's blocks hold one transaction each.
func (f *fulcrum) addBlock(h int, hash string, raw []byte) error {
	if len(raw) < 82 {
		return fmt.Errorf("block %d (%s): %d bytes is too short for a block", h, hash, len(raw))
	}
	header := raw[:80]
	if got := reversedHex(doubleSHA256(header)); got != hash {
		return fmt.Errorf("block %d: header hashes to %s, bitcoind said %s", h, got, hash)
	}
	st := f.db.state()
	if prev := reversedHex(header[4:36]); h > 0 && prev != st.Tip {
		return fmt.Errorf("block %d (%s) does not extend our tip %s (its previous block is %s)", h, hash, st.Tip, prev)
	}
	if raw[80] != 1 {
		return fmt.Errorf("block %d (%s) has %d transactions: the stand-in indexes one-transaction blocks only", h, hash, raw[80])
	}
	if txid := doubleSHA256(raw[81:]); hex.EncodeToString(txid) != hex.EncodeToString(header[36:68]) {
		return fmt.Errorf("block %d (%s): merkle root mismatch", h, hash)
	}
	f.db.update(func(s *dbState) {
		if h == 0 {
			s.Genesis = hash
		}
		s.Height, s.Tip, s.TipHeader = h, hash, hex.EncodeToString(header)
		s.TxNum++
	})
	return nil
}

// grow makes the memory held what the configuration grants by now: the
// base; db_mem (and 1.x's utxo_cache) filling as blocks are indexed, full
// by half of the chain bitcoind knows of, and once up-to-date.
func (f *fulcrum) grow() error {
	st := f.db.state()
	f.mu.Lock()
	target, servers := f.target, f.servers
	f.mu.Unlock()
	filled := 1.0
	if !servers && target > 0 {
		filled = min(1, 2*float64(st.Height+1)/float64(target))
	}
	return f.ballast.GrowTo(baseMemory + int64(filled*float64(f.conf.dbMem+f.conf.utxoCache)))
}

func (f *fulcrum) setState(sm *smState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sm = sm
}

func (f *fulcrum) upToDate() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.servers
}

// wait logs msg (unless empty) and waits d; true if Fulcrum is stopping.
func (f *fulcrum) wait(d time.Duration, msg string, args ...any) bool {
	if msg != "" {
		f.logf(msg, args...)
	}
	select {
	case <-time.After(d):
		return false
	case <-f.quit:
		return true
	}
}

func doubleSHA256(b []byte) []byte {
	a := sha256.Sum256(b)
	d := sha256.Sum256(a[:])
	return d[:]
}

func reversedHex(b []byte) string {
	r := make([]byte, len(b))
	for i := range b {
		r[len(b)-1-i] = b[i]
	}
	return hex.EncodeToString(r)
}

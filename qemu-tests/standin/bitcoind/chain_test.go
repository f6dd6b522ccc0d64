package main

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Block 0 must be the real genesis block: Fulcrum checks the genesis hash
// of the chain it indexes.
func TestGenesis(t *testing.T) {
	c := newChain(1_700_000_000)
	g := c.at(0)
	if want := "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"; g.hash != want {
		t.Errorf("genesis hash %s, want %s", g.hash, want)
	}
	if g.txid != reversedHex(g.header[36:68]) {
		t.Errorf("coinbase txid %s is not the merkle root", g.txid)
	}
	if g.time() != 1231006505 || g.nonce() != 2083236893 || g.bits() != 0x1d00ffff {
		t.Errorf("genesis fields: time %d nonce %d bits %x", g.time(), g.nonce(), g.bits())
	}
	if g.size() != 285 {
		t.Errorf("genesis block is %d bytes, want 285", g.size())
	}
}

// The made-up blocks link up as a real chain does, so that a client that
// checks previous hashes and merkle roots (Fulcrum does) accepts them.
func TestChainLinks(t *testing.T) {
	c := newChain(1_700_000_000)
	for h := 1; h <= 300; h++ {
		b, prev := c.at(h), c.at(h-1)
		if got := reversedHex(b.header[4:36]); got != prev.hash {
			t.Fatalf("block %d links to %s, want %s", h, got, prev.hash)
		}
		if got := reversedHex(b.header[36:68]); got != b.txid || b.txid != reversedHex(doubleSHA256(b.coinbase)) {
			t.Fatalf("block %d merkle root %s, txid %s", h, got, b.txid)
		}
		if b.time() != uint32(1_700_000_000+600*h) || b.version() != blockVersion {
			t.Fatalf("block %d: time %d version %x", h, b.time(), b.version())
		}
		if found, ok := c.find(b.hash); !ok || found != h {
			t.Fatalf("find(block %d) = %d %v", h, found, ok)
		}
	}
	// BIP34: the height is the first push of the coinbase's input script.
	cb := c.at(300).coinbase
	if script := cb[42:]; script[0] != 2 || hex.EncodeToString(script[1:3]) != "2c01" {
		t.Errorf("block 300's coinbase script starts %x, want a push of 300", script[:3])
	}
	if subsidy(209999) != 50_0000_0000 || subsidy(210000) != 25_0000_0000 || subsidy(64*210000) != 0 {
		t.Error("subsidy does not halve every 210000 blocks")
	}
	for n, want := range map[int64]string{1: "01", 127: "7f", 128: "8000", 255: "ff00", 256: "0001", 70000: "701101"} {
		if got := hex.EncodeToString(scriptNum(n)); got != want {
			t.Errorf("scriptNum(%d) = %s, want %s", n, got, want)
		}
	}
	if got := chainwork(0); got != "0000000000000000000000000000000000000000000000000000000100010001" {
		t.Errorf("chainwork(0) = %s", got)
	}
	if c.medianTime(0) != c.at(0).time() || c.medianTime(300) != c.at(295).time() {
		t.Errorf("median times %d %d", c.medianTime(0), c.medianTime(300))
	}
}

func TestPaceAndMemoryOptions(t *testing.T) {
	dir := t.TempDir()
	if p, err := readPace(dir); err != nil || p != defaultPace {
		t.Errorf("no pace file: %+v %v", p, err)
	}
	os.WriteFile(filepath.Join(dir, PaceFile), []byte("chain_length = 10 # short\nblocks_per_second=0.5\n"), 0o644)
	if p, err := readPace(dir); err != nil || p.chainLength != 10 || p.blocksPerSecond != 0.5 || p.headersPerSecond != defaultPace.headersPerSecond {
		t.Errorf("pace file: %+v %v", p, err)
	}
	os.WriteFile(filepath.Join(dir, PaceFile), []byte("chainlength = 10\n"), 0o644)
	if _, err := readPace(dir); err == nil || !strings.Contains(err.Error(), `unknown setting "chainlength"`) {
		t.Errorf("a misspelt setting: %v", err)
	}
	for v, want := range map[string]int64{"450": 450, "64MiB": 64, "abc": 0, "-5": -5, "": 0} {
		if got := intArg(v); got != want {
			t.Errorf("intArg(%q) = %d, want %d", v, got, want)
		}
	}

	// dbcache fills with the chain, full by its middle; the mempool comes
	// once out of IBD, unless blocksonly.
	d := &ibd{st: syncState{Length: 100}, mem: memory{dbcache: 100 << 20, maxmempool: 300_000_000}}
	for blocks, want := range map[int]int64{0: baseMemory, 25: baseMemory + 50<<20, 50: baseMemory + 100<<20, 99: baseMemory + 100<<20} {
		d.st.Blocks = blocks
		if got := d.memoryWanted(); got != want {
			t.Errorf("at block %d of 100: %d MiB, want %d", blocks, got>>20, want>>20)
		}
	}
	d.st.Blocks, d.latched = 100, true
	if got := d.memoryWanted(); got != baseMemory+100<<20+300_000_000 {
		t.Errorf("out of IBD: %d bytes", got)
	}
	d.mem.blocksonly = true
	if got := d.memoryWanted(); got != baseMemory+100<<20 {
		t.Errorf("out of IBD, blocksonly: %d bytes", got)
	}
	if d.progress(0) != 1.0/101 || d.progress(100) != 1 {
		t.Errorf("progress %v at 0, %v at the end", d.progress(0), d.progress(100))
	}
}

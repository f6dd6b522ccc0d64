package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sync"
)

// The stand-in's chain starts with Bitcoin's real mainnet genesis block
// (Fulcrum checks the genesis hash) and goes on with made-up blocks: one
// coinbase transaction each, linked by their previous-block hashes, with
// the coinbase's txid as merkle root, ten minutes apart. There is no proof
// of work: bits is the genesis difficulty and the nonce is the height.
const (
	genesisHeaderHex = "01000000" + // version 1
		"0000000000000000000000000000000000000000000000000000000000000000" + // no previous block
		"3ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a" + // merkle root
		"29ab5f49" + "ffff001d" + "1dac2b7c" // time, bits, nonce
	genesisCoinbaseHex = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000"
	genesisTarget      = "00000000ffff0000000000000000000000000000000000000000000000000000"
	genesisBits        = 0x1d00ffff
	// blockWork is the work of one block at the genesis difficulty.
	blockWork = 0x100010001
	// blockVersion is what miners signal today (BIP9 version bits, none set).
	blockVersion = 0x20000000
	blockSpacing = 600 // seconds
	// coinbaseTag marks the made-up blocks' coinbases.
	coinbaseTag = "nodebake stand-in"
)

// block is one block of the stand-in chain.
type block struct {
	height   int
	header   []byte // 80 bytes
	hash     string // display order (byte-reversed double SHA-256)
	coinbase []byte // the block's only transaction
	txid     string
}

func (b *block) version() uint32 { return binary.LittleEndian.Uint32(b.header[0:]) }
func (b *block) time() uint32    { return binary.LittleEndian.Uint32(b.header[68:]) }
func (b *block) bits() uint32    { return binary.LittleEndian.Uint32(b.header[72:]) }
func (b *block) nonce() uint32   { return binary.LittleEndian.Uint32(b.header[76:]) }

// raw is the serialized block: header, transaction count, the coinbase.
func (b *block) raw() []byte {
	return append(append(append([]byte{}, b.header...), 1), b.coinbase...)
}

func (b *block) size() int { return len(b.header) + 1 + len(b.coinbase) }

// chain makes the blocks on demand, so that a long chain costs only what
// has been asked for.
type chain struct {
	// epoch is block 0's time in the made-up part of the chain: block h > 0
	// has time epoch + 600*h.
	epoch  int64
	mu     sync.Mutex
	blocks []*block
	byHash map[string]int
}

func newChain(epoch int64) *chain {
	h, _ := hex.DecodeString(genesisHeaderHex)
	cb, _ := hex.DecodeString(genesisCoinbaseHex)
	g := &block{height: 0, header: h, hash: reversedHex(doubleSHA256(h)), coinbase: cb, txid: reversedHex(doubleSHA256(cb))}
	return &chain{epoch: epoch, blocks: []*block{g}, byHash: map[string]int{g.hash: 0}}
}

// at returns block h (h ≥ 0), making it and those before it if needed.
func (c *chain) at(h int) *block {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.blocks) <= h {
		prev := c.blocks[len(c.blocks)-1]
		b := c.make(len(c.blocks), prev)
		c.blocks = append(c.blocks, b)
		c.byHash[b.hash] = b.height
	}
	return c.blocks[h]
}

// find is the height of a block already made, by its hash.
func (c *chain) find(hash string) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.byHash[hash]
	return h, ok
}

func (c *chain) make(height int, prev *block) *block {
	cb := coinbase(height)
	txid := doubleSHA256(cb)
	hdr := make([]byte, 0, 80)
	hdr = binary.LittleEndian.AppendUint32(hdr, blockVersion)
	hdr = append(hdr, doubleSHA256(prev.header)...)
	hdr = append(hdr, txid...) // one transaction: the merkle root is its txid
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(c.epoch+int64(blockSpacing*height)))
	hdr = binary.LittleEndian.AppendUint32(hdr, genesisBits)
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(height))
	return &block{height: height, header: hdr, hash: reversedHex(doubleSHA256(hdr)), coinbase: cb, txid: reversedHex(txid)}
}

// coinbase is block height's transaction: the height first in its input
// script (BIP34), the block subsidy paid to an anyone-can-spend output.
func coinbase(height int) []byte {
	var script bytes.Buffer
	num := scriptNum(int64(height))
	script.WriteByte(byte(len(num)))
	script.Write(num)
	script.WriteByte(byte(len(coinbaseTag)))
	script.WriteString(coinbaseTag)
	var tx bytes.Buffer
	tx.Write([]byte{1, 0, 0, 0})         // version
	tx.WriteByte(1)                      // one input
	tx.Write(make([]byte, 32))           // no previous transaction
	tx.Write([]byte{255, 255, 255, 255}) // no previous output
	tx.WriteByte(byte(script.Len()))
	tx.Write(script.Bytes())
	tx.Write([]byte{255, 255, 255, 255}) // sequence
	tx.WriteByte(1)                      // one output
	tx.Write(binary.LittleEndian.AppendUint64(nil, subsidy(height)))
	tx.Write([]byte{1, 0x51})    // OP_TRUE
	tx.Write([]byte{0, 0, 0, 0}) // lock time
	return tx.Bytes()
}

// subsidy is the block reward in satoshis: 50 BTC, halved every 210000 blocks.
func subsidy(height int) uint64 {
	halvings := height / 210000
	if halvings >= 64 {
		return 0
	}
	return 50_0000_0000 >> halvings
}

// scriptNum encodes n as Bitcoin script pushes numbers: little endian,
// minimal, with a spare byte when the top bit would read as a sign.
func scriptNum(n int64) []byte {
	var b []byte
	for ; n > 0; n >>= 8 {
		b = append(b, byte(n))
	}
	if len(b) > 0 && b[len(b)-1]&0x80 != 0 {
		b = append(b, 0)
	}
	return b
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

// chainwork is the total work up to and including block h, as bitcoind
// prints it.
func chainwork(h int) string {
	return fmt.Sprintf("%064x", uint64(h+1)*blockWork)
}

// medianTime is the median time of block h and the 10 before it (BIP113).
func (c *chain) medianTime(h int) uint32 {
	n := min(11, h+1)
	return c.at(h - n + 1 + n/2).time() // block times only increase here
}

// headerJSON is getblockheader's verbose answer for block h, given the
// height of the active chain's tip; getblock adds to it.
func (c *chain) headerJSON(h, tip int) map[string]any {
	b := c.at(h)
	confirmations := -1 // a header not (yet) in the active chain
	if h <= tip {
		confirmations = tip - h + 1
	}
	m := map[string]any{
		"hash":          b.hash,
		"confirmations": confirmations,
		"height":        h,
		"version":       b.version(),
		"versionHex":    fmt.Sprintf("%08x", b.version()),
		"merkleroot":    b.txid,
		"time":          b.time(),
		"mediantime":    c.medianTime(h),
		"nonce":         b.nonce(),
		"bits":          fmt.Sprintf("%08x", b.bits()),
		"target":        genesisTarget,
		"difficulty":    1,
		"chainwork":     chainwork(h),
		"nTx":           1,
	}
	if h > 0 {
		m["previousblockhash"] = c.at(h - 1).hash
	}
	if h < tip {
		m["nextblockhash"] = c.at(h + 1).hash
	}
	return m
}

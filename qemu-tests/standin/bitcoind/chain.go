package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// The stand-in's chain is Bitcoin's real mainnet genesis block and nothing
// after it: height 0, so everything Fulcrum asks about has one answer.
const (
	genesisHeaderHex = "01000000" + // version 1
		"0000000000000000000000000000000000000000000000000000000000000000" + // no previous block
		"3ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a" + // merkle root
		"29ab5f49" + "ffff001d" + "1dac2b7c" // time, bits, nonce
	genesisCoinbaseHex = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000"
	// genesisBlockHex is the header, a one-transaction count and the coinbase.
	genesisBlockHex = genesisHeaderHex + "01" + genesisCoinbaseHex
	// Chain-wide values of a chain that is only the genesis block.
	genesisChainwork = "0000000000000000000000000000000000000000000000000000000100010001"
	genesisTarget    = "00000000ffff0000000000000000000000000000000000000000000000000000"
)

// header is a block header's fields as bitcoind shows them.
type header struct {
	raw        []byte
	hash       string // display order (byte-reversed double SHA-256)
	version    uint32
	merkleRoot string
	time       uint32
	bits       uint32
	nonce      uint32
}

func parseHeader(h string) header {
	raw, err := hex.DecodeString(h)
	if err != nil || len(raw) != 80 {
		panic(fmt.Sprintf("bad built-in header %q", h))
	}
	return header{
		raw:        raw,
		hash:       reversedHex(doubleSHA256(raw)),
		version:    binary.LittleEndian.Uint32(raw[0:]),
		merkleRoot: reversedHex(raw[36:68]),
		time:       binary.LittleEndian.Uint32(raw[68:]),
		bits:       binary.LittleEndian.Uint32(raw[72:]),
		nonce:      binary.LittleEndian.Uint32(raw[76:]),
	}
}

var (
	genesis     = parseHeader(genesisHeaderHex)
	genesisTxID = txid(genesisCoinbaseHex)
	genesisSize = len(genesisBlockHex) / 2
)

func txid(txHex string) string {
	raw, err := hex.DecodeString(txHex)
	if err != nil {
		panic(err)
	}
	return reversedHex(doubleSHA256(raw))
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

// headerJSON is getblockheader's verbose answer; getblock adds to it.
func headerJSON() map[string]any {
	return map[string]any{
		"hash":          genesis.hash,
		"confirmations": 1,
		"height":        0,
		"version":       genesis.version,
		"versionHex":    fmt.Sprintf("%08x", genesis.version),
		"merkleroot":    genesis.merkleRoot,
		"time":          genesis.time,
		"mediantime":    genesis.time,
		"nonce":         genesis.nonce,
		"bits":          fmt.Sprintf("%08x", genesis.bits),
		"target":        genesisTarget,
		"difficulty":    1,
		"chainwork":     genesisChainwork,
		"nTx":           1,
	}
}

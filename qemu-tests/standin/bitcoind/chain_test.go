package main

import "testing"

// The built-in block must be the real genesis block: Fulcrum checks the
// genesis hash of the chain it indexes.
func TestGenesis(t *testing.T) {
	if want := "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"; genesis.hash != want {
		t.Errorf("genesis hash %s, want %s", genesis.hash, want)
	}
	if genesisTxID != genesis.merkleRoot {
		t.Errorf("coinbase txid %s is not the merkle root %s", genesisTxID, genesis.merkleRoot)
	}
	if genesis.time != 1231006505 || genesis.nonce != 2083236893 || genesis.bits != 0x1d00ffff {
		t.Errorf("genesis fields: time %d nonce %d bits %x", genesis.time, genesis.nonce, genesis.bits)
	}
	if genesisSize != 285 {
		t.Errorf("genesis block is %d bytes, want 285", genesisSize)
	}
}

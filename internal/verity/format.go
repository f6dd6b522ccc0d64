// Package verity protects a root partition with dm-verity: on the host it
// builds the hash data that `veritysetup format` would build, and in the
// initramfs it asks device-mapper to check every read against it.
//
// A root partition written by FormatFile is laid out in 4096-byte blocks:
//
//	[data: the squashfs, zero-padded to a whole block]  DataBlocks blocks
//	[verity superblock: 512 bytes, zero-padded]         1 block, at HashOffset
//	[hash tree: top level first, leaf level last]       0 or more blocks
//
// Each leaf-level entry is sha256(salt ‖ data block); each higher level hashes
// the blocks of the level below the same way, 128 digests to a block, until
// one block remains. The root hash is sha256(salt ‖ that block) — or of the
// only data block when there is just one — and travels on the kernel command
// line, so the tree itself needs no protection. This is format 1 of
// veritysetup, so `veritysetup verify` and `veritysetup dump` read it too.
package verity

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/nodebake/nodebake/contract"
)

const (
	blockSize      = 4096 // data and hash blocks alike
	digestSize     = sha256.Size
	hashesPerBlock = blockSize / digestSize
	maxSalt        = 256 // the superblock's salt field
)

// FormatFile pads the file at path with zeros to a multiple of 4096 bytes,
// then appends a verity superblock and hash tree at that offset, and returns
// the parameters /init needs. The whole file counts as data, so call it
// once, on a file holding only the filesystem.
// The output depends only on the file's bytes, salt and uuid.
func FormatFile(path string, salt []byte, uuid [16]byte) (contract.Verity, error) {
	if len(salt) == 0 || len(salt) > maxSalt {
		return contract.Verity{}, fmt.Errorf("verity: salt is %d bytes: want 1 to %d (32 is usual)", len(salt), maxSalt)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return contract.Verity{}, fmt.Errorf("verity: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return contract.Verity{}, fmt.Errorf("verity: %w", err)
	}
	if st.Size() == 0 {
		return contract.Verity{}, fmt.Errorf("verity: %s is empty: there is nothing to protect", path)
	}
	dataBlocks := (st.Size() + blockSize - 1) / blockSize
	hashOffset := dataBlocks * blockSize
	if err := f.Truncate(hashOffset); err != nil {
		return contract.Verity{}, fmt.Errorf("verity: pad %s to %d bytes: %w", path, hashOffset, err)
	}

	root, levels, err := hashTree(f, dataBlocks, salt)
	if err != nil {
		return contract.Verity{}, fmt.Errorf("verity: read %s: %w", path, err)
	}
	// The tree is stored top level first: the kernel walks it from the root
	// block at hash_start downwards.
	blocks := [][]byte{superblock(dataBlocks, salt, uuid)}
	for i := len(levels) - 1; i >= 0; i-- {
		blocks = append(blocks, levels[i])
	}
	off := hashOffset
	for _, b := range blocks {
		if _, err := f.WriteAt(b, off); err != nil {
			return contract.Verity{}, fmt.Errorf("verity: write hash tree to %s: %w", path, err)
		}
		off += int64(len(b))
	}
	if err := f.Close(); err != nil {
		return contract.Verity{}, fmt.Errorf("verity: write hash tree to %s: %w", path, err)
	}
	return contract.Verity{
		RootHash:   hex.EncodeToString(root),
		Salt:       hex.EncodeToString(salt),
		DataBlocks: uint64(dataBlocks),
		HashOffset: uint64(hashOffset),
	}, nil
}

// hashTree hashes the n data blocks of r and returns the root hash and the
// tree's levels, leaf level first, each a whole number of zero-padded blocks.
// Only the tree is held in memory: 1/128 of the data.
func hashTree(r io.ReaderAt, n int64, salt []byte) (root []byte, levels [][]byte, err error) {
	for ; n > 1; n = int64(len(levels[len(levels)-1]) / blockSize) {
		level, err := hashLevel(r, n, salt)
		if err != nil {
			return nil, nil, err
		}
		levels = append(levels, level)
		r = bytes.NewReader(level)
	}
	top := make([]byte, blockSize)
	if _, err := r.ReadAt(top, 0); err != nil {
		return nil, nil, err
	}
	h := sha256.New()
	h.Write(salt)
	h.Write(top)
	return h.Sum(nil), levels, nil
}

// hashLevel hashes the n blocks of r into one tree level. The blocks are
// split into one contiguous range per CPU, each read and hashed on its own:
// on a 200 MB image this is what decides the build time.
func hashLevel(r io.ReaderAt, n int64, salt []byte) ([]byte, error) {
	out := make([]byte, (n+hashesPerBlock-1)/hashesPerBlock*blockSize)
	workers := int64(runtime.GOMAXPROCS(0))
	per := (n + workers - 1) / workers
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := int64(0); w < workers; w++ {
		first, last := w*per, min((w+1)*per, n)
		if first >= last {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = hashRange(r, first, last, salt, out)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// hashRange writes the digests of blocks [first, last) of r into out.
func hashRange(r io.ReaderAt, first, last int64, salt, out []byte) error {
	const chunk = 256 // blocks per read: 1 MiB
	buf := make([]byte, chunk*blockSize)
	h := sha256.New()
	for i := first; i < last; i += chunk {
		b := buf[:min(chunk, last-i)*blockSize]
		if _, err := r.ReadAt(b, i*blockSize); err != nil {
			return err
		}
		for j := int64(0); j < int64(len(b))/blockSize; j++ {
			d := (i + j) * digestSize
			h.Reset()
			h.Write(salt)
			h.Write(b[j*blockSize : (j+1)*blockSize])
			h.Sum(out[d : d : d+digestSize])
		}
	}
	return nil
}

// superblock is veritysetup's on-disk header (struct verity_sb in
// cryptsetup's lib/verity/verity.c), little-endian, in a block of its own.
func superblock(dataBlocks int64, salt []byte, uuid [16]byte) []byte {
	sb := make([]byte, blockSize)
	copy(sb[0:8], "verity")
	binary.LittleEndian.PutUint32(sb[8:], 1)  // superblock version
	binary.LittleEndian.PutUint32(sb[12:], 1) // hash type 1: salt first, not Chrome OS
	copy(sb[16:32], uuid[:])
	copy(sb[32:64], "sha256")
	binary.LittleEndian.PutUint32(sb[64:], blockSize) // data block size
	binary.LittleEndian.PutUint32(sb[68:], blockSize) // hash block size
	binary.LittleEndian.PutUint64(sb[72:], uint64(dataBlocks))
	binary.LittleEndian.PutUint16(sb[80:], uint16(len(salt)))
	copy(sb[88:88+maxSalt], salt)
	return sb
}

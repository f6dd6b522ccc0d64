// Package flash writes a nodebake disk image onto a disk (or a regular
// file) the way `nodebake flash` does: it refuses disks it must not touch,
// writes only the ranges of the image that matter, and reads them back.
//
// What is written (the plan, decided per 4 KiB block from the image's own
// GPT, see policy):
//   - the first MiB (protective MBR, primary GPT) and the last MiB (backup
//     GPT) in full. The first MiB is zeroed before anything else and written
//     last, so a flash that stops half-way leaves a disk with no partition
//     table rather than an old table over new contents;
//   - the ESP up to its first data cluster in full (boot sector, FSInfo, both
//     FATs, zero entries included: a zero FAT entry means "free"), then every
//     cluster the FAT marks as used, zero or not. Free clusters are never
//     read, whatever they hold;
//   - root-a from its start up to its last non-zero block, zero blocks
//     included: squashfs and the dm-verity superblock and hash tree are one
//     run from the partition's start, and verity hashes every data block,
//     zeros too. Past the hash tree nothing reads the slot;
//   - root-b and data: their first MiB in full, zeros included, and nothing
//     else (both are empty in a fresh image). The first boot formats data
//     only when its first 128 KiB are zero (cmd/nodebake-init data.go) and
//     mounts an ext4 it finds there: a stale filesystem from the disk's past
//     would be mounted as /data, anything else would stop the boot. root-b is
//     written whole by the first update; zeroing its start keeps blkid and
//     udev from reporting an old filesystem there meanwhile;
//   - anything else (a partition nodebake does not make, or a disk without
//     a nodebake GPT): every block, zeros included.
package flash

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/klauspost/compress/zstd"
	"github.com/nodebake/nodebake/contract"
)

const (
	sectorSize = 512
	mib        = 1 << 20
	blockSize  = 4096
)

// Image is a disk image opened for reading once, front to back.
type Image struct {
	Path       string
	Size       int64 // bytes of the uncompressed disk
	Compressed bool
	Parts      []Part // from the GPT; nil for a disk without one

	head []byte    // the first MiB, already read from r
	r    io.Reader // the rest
	f    *os.File
	dec  *zstd.Decoder
}

// Part is one partition of the image.
type Part struct {
	Name       string
	Start, End int64 // bytes; End is exclusive
}

// OpenImage opens a raw image or a zstd-compressed one (.zst), reads its
// first MiB and from its GPT the disk's size and partitions.
func OpenImage(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	img := &Image{Path: path, f: f, r: f}
	ok := false
	defer func() {
		if !ok {
			img.Close()
		}
	}()
	if strings.HasSuffix(path, ".zst") {
		// One goroutine: the stream is read once, and flashing is bound
		// by the disk, not by decompression.
		if img.dec, err = zstd.NewReader(f, zstd.WithDecoderConcurrency(1)); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		img.r, img.Compressed = img.dec, true
	}
	img.head = make([]byte, mib)
	n, err := io.ReadFull(img.r, img.head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	img.head = img.head[:n]
	size, parts, gptErr := readGPT(img.head)
	if gptErr == nil {
		img.Size, img.Parts = size, parts
	}
	if !img.Compressed {
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if gptErr == nil && st.Size() != size {
			return nil, fmt.Errorf("%s: the file is %d bytes but its GPT describes a %d-byte disk: the image is truncated or damaged; build or download it again", path, st.Size(), size)
		}
		img.Size = st.Size()
	} else if gptErr != nil {
		return nil, fmt.Errorf("%s: no valid GPT in the first MiB (%v): not a nodebake disk image", path, gptErr)
	}
	if img.Size == 0 {
		return nil, fmt.Errorf("%s: the image is empty", path)
	}
	ok = true
	return img, nil
}

// Close releases the image.
func (img *Image) Close() error {
	if img.dec != nil {
		img.dec.Close()
	}
	return img.f.Close()
}

// readGPT reads the disk's size (from the primary header's backup LBA: the
// backup header is the disk's last sector) and its partitions. go-diskfs
// checks the header and entry CRCs.
func readGPT(head []byte) (int64, []Part, error) {
	if len(head) < 34*sectorSize {
		return 0, nil, errors.New("too short for a GPT")
	}
	t, err := gpt.Read(memFile{bytes.NewReader(head)}, sectorSize, sectorSize)
	if err != nil {
		return 0, nil, err
	}
	if t.RecoveredFromBackup {
		return 0, nil, errors.New("the primary GPT is damaged")
	}
	alt := binary.LittleEndian.Uint64(head[sectorSize+32:])
	size := int64(alt+1) * sectorSize
	var parts []Part
	for _, p := range t.Partitions {
		if p.Start == 0 && p.End == 0 {
			continue
		}
		part := Part{Name: p.Name, Start: int64(p.Start) * sectorSize, End: int64(p.End+1) * sectorSize}
		if part.Start < mib || part.End > size-mib+sectorSize || part.Start >= part.End {
			return 0, nil, fmt.Errorf("partition %s at %d–%d lies outside the disk's %d bytes", p.Name, part.Start, part.End, size)
		}
		parts = append(parts, part)
	}
	return size, parts, nil
}

// memFile lets gpt.Read read the first MiB held in memory.
type memFile struct{ *bytes.Reader }

func (memFile) Close() error                   { return nil }
func (m memFile) Stat() (iofs.FileInfo, error) { return memInfo(m.Size()), nil }

type memInfo int64

func (memInfo) Name() string        { return "image" }
func (i memInfo) Size() int64       { return int64(i) }
func (memInfo) Mode() iofs.FileMode { return 0o444 }
func (memInfo) ModTime() time.Time  { return time.Time{} }
func (memInfo) IsDir() bool         { return false }
func (memInfo) Sys() any            { return nil }

// role says how the blocks of a partition are chosen (see the package comment).
func role(name string) policy {
	switch name {
	case contract.ESP:
		return fatPolicy
	case contract.RootA:
		return trimPolicy
	case contract.RootB, contract.Data:
		return headPolicy
	}
	return allPolicy
}

// The kernel command line: the builder writes a slot's parameters into its
// boot entry, and the initramfs /init reads them back from /proc/cmdline.

package contract

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Slot describes everything /init needs to find, verify and mount one root
// slot and the shared data partition.
type Slot struct {
	Name         string // "a" or "b"
	RootPartUUID string // PARTUUID of the slot's root partition (lower case)
	DataPartUUID string // PARTUUID of the data partition (lower case)
	Verity       Verity
}

// Verity holds the dm-verity parameters of a root partition laid out as
// [squashfs, zero-padded to DataBlockSize][verity superblock][hash tree].
type Verity struct {
	RootHash   string // hex sha256 root of the hash tree
	Salt       string // hex salt
	DataBlocks uint64 // number of 4 KiB data blocks covered
	HashOffset uint64 // byte offset of the verity superblock in the partition
}

const (
	keySlot       = "nodebake.slot"
	keyRoot       = "nodebake.root"
	keyData       = "nodebake.data"
	keyRootHash   = "nodebake.verity.roothash"
	keySalt       = "nodebake.verity.salt"
	keyDataBlocks = "nodebake.verity.blocks"
	keyHashOffset = "nodebake.verity.hashoffset"
)

// Format renders the slot as kernel command-line parameters (without the
// console or other options, which the boot entry adds).
func (s Slot) Format() string {
	return strings.Join([]string{
		keySlot + "=" + s.Name,
		keyRoot + "=PARTUUID=" + s.RootPartUUID,
		keyData + "=PARTUUID=" + s.DataPartUUID,
		keyRootHash + "=" + s.Verity.RootHash,
		keySalt + "=" + s.Verity.Salt,
		keyDataBlocks + "=" + strconv.FormatUint(s.Verity.DataBlocks, 10),
		keyHashOffset + "=" + strconv.FormatUint(s.Verity.HashOffset, 10),
	}, " ")
}

// Parse reads a slot from a kernel command line. Every nodebake parameter
// must be present: /init refuses to guess, because a guessed root would
// defeat verity.
func Parse(cmdline string) (Slot, error) {
	kv := map[string]string{}
	for _, f := range strings.Fields(cmdline) {
		k, v, ok := strings.Cut(f, "=")
		if ok && strings.HasPrefix(k, "nodebake.") {
			kv[k] = v
		}
	}
	var s Slot
	var missing []string
	get := func(k string) string {
		v, ok := kv[k]
		if !ok || v == "" {
			missing = append(missing, k)
		}
		return v
	}
	s.Name = get(keySlot)
	root := get(keyRoot)
	data := get(keyData)
	s.Verity.RootHash = get(keyRootHash)
	s.Verity.Salt = get(keySalt)
	blocks := get(keyDataBlocks)
	offset := get(keyHashOffset)
	if len(missing) > 0 {
		return Slot{}, fmt.Errorf("kernel command line lacks %s (is this a nodebake boot entry?)", strings.Join(missing, ", "))
	}
	var err error
	if s.RootPartUUID, err = partUUID(keyRoot, root); err != nil {
		return Slot{}, err
	}
	if s.DataPartUUID, err = partUUID(keyData, data); err != nil {
		return Slot{}, err
	}
	if b, err := hex.DecodeString(s.Verity.RootHash); err != nil || len(b) != 32 {
		return Slot{}, fmt.Errorf("%s=%q: want 64 hex digits", keyRootHash, s.Verity.RootHash)
	}
	if _, err := hex.DecodeString(s.Verity.Salt); err != nil {
		return Slot{}, fmt.Errorf("%s=%q: want hex digits", keySalt, s.Verity.Salt)
	}
	if s.Verity.DataBlocks, err = strconv.ParseUint(blocks, 10, 64); err != nil || s.Verity.DataBlocks == 0 {
		return Slot{}, fmt.Errorf("%s=%q: want a positive block count", keyDataBlocks, blocks)
	}
	if s.Verity.HashOffset, err = strconv.ParseUint(offset, 10, 64); err != nil {
		return Slot{}, fmt.Errorf("%s=%q: want a byte offset", keyHashOffset, offset)
	}
	return s, nil
}

// partUUID reads PARTUUID=<uuid> in the 8-4-4-4-12 hex form the kernel
// shows; any other 36 bytes (non-ASCII ones change length when lower-cased)
// would name no partition, or not the same one after a round trip.
func partUUID(key, v string) (string, error) {
	u, ok := strings.CutPrefix(v, "PARTUUID=")
	ok = ok && len(u) == 36
	for i := 0; ok && i < len(u); i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			ok = u[i] == '-'
		} else {
			ok = strings.IndexByte("0123456789abcdefABCDEF", u[i]) >= 0
		}
	}
	if !ok {
		return "", fmt.Errorf("%s=%q: want PARTUUID=<uuid>", key, v)
	}
	return strings.ToLower(u), nil
}

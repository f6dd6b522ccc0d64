package verity

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nodebake/nodebake/contract"
)

const (
	controlPath = "/dev/mapper/control"
	sectorSize  = 512
	// nodeTimeout bounds the wait for devtmpfs to create /dev/dm-N, which it
	// normally does before the table load returns.
	nodeTimeout = 5 * time.Second
)

// Activate creates the read-only device-mapper target `name` that verifies
// device (the root partition holding data, superblock and hash tree as
// FormatFile wrote them) and returns the path of the verified block device,
// /dev/dm-N. It needs root, the dm_mod and dm_verity modules and devtmpfs on
// /dev; it uses the device-mapper ioctls directly, so the initramfs needs
// neither libdevmapper nor veritysetup.
//
// A block that fails verification reads as an I/O error (the kernel's
// default) rather than restarting the machine (restart_on_corruption): the
// node keeps running and logging, and the error shows up in the journal of
// whatever read the block. A restart would turn one bad block on a blessed
// slot, which boot counting no longer guards, into an endless reboot loop.
func Activate(name, device string, v contract.Verity) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	var st unix.Stat_t
	if err := unix.Stat(device, &st); err != nil {
		return "", fmt.Errorf("verity: root device %s: %w", device, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return "", fmt.Errorf("verity: root device %s is not a block device", device)
	}
	// A device number rather than the path: the kernel then needs no path
	// lookup, and the table reads like `dmsetup table` prints it.
	dev := fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	t, err := verityTarget(dev, v)
	if err != nil {
		return "", err
	}

	ctl, err := os.OpenFile(controlPath, os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("verity: %w (is dm_mod loaded and devtmpfs mounted on /dev?)", err)
	}
	defer ctl.Close()

	created, err := dmIoctl(ctl, unix.DM_DEV_CREATE, request(name, 0, 0, nil))
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return "", fmt.Errorf("verity: DM_DEV_CREATE %s: %w (a device-mapper device of that name exists already)", name, err)
		}
		return "", fmt.Errorf("verity: DM_DEV_CREATE %s: %w", name, err)
	}
	// Leave no half-made device behind: a retry would find the name taken.
	remove := func() { dmIoctl(ctl, unix.DM_DEV_REMOVE, request(name, 0, 0, nil)) }

	if _, err := dmIoctl(ctl, unix.DM_TABLE_LOAD, request(name, unix.DM_READONLY_FLAG, 1, t.spec())); err != nil {
		remove()
		return "", fmt.Errorf("verity: DM_TABLE_LOAD %s with table %q: %w (is dm_verity loaded? the kernel log says more)", name, t, err)
	}
	// DM_DEV_SUSPEND without DM_SUSPEND_FLAG resumes the device, which makes
	// the table just loaded the live one.
	if _, err := dmIoctl(ctl, unix.DM_DEV_SUSPEND, request(name, 0, 0, nil)); err != nil {
		remove()
		return "", fmt.Errorf("verity: DM_DEV_SUSPEND (resume) %s: %w", name, err)
	}

	path := fmt.Sprintf("/dev/dm-%d", unix.Minor(created.Dev))
	for deadline := time.Now().Add(nodeTimeout); ; time.Sleep(10 * time.Millisecond) {
		var st unix.Stat_t
		if unix.Stat(path, &st) == nil && st.Rdev == created.Dev {
			return path, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("verity: %s is active but %s did not appear within %v (is devtmpfs mounted on /dev?)", name, path, nodeTimeout)
		}
	}
}

func checkName(name string) error {
	if name == "" || len(name) >= unix.DM_NAME_LEN || strings.ContainsRune(name, '/') {
		return fmt.Errorf("verity: device-mapper name %q: want 1 to %d characters without '/'", name, unix.DM_NAME_LEN-1)
	}
	return nil
}

// target is one line of a device-mapper table.
type target struct {
	start, length uint64 // in 512-byte sectors
	kind          string
	params        string
}

// String renders the target as `dmsetup table` does.
func (t target) String() string {
	return fmt.Sprintf("%d %d %s %s", t.start, t.length, t.kind, t.params)
}

// verityTarget is the table line for a partition laid out by FormatFile on
// dev: data and hash tree share the device, and hash_start counts hash
// blocks up to the tree's root block, which follows the superblock.
func verityTarget(dev string, v contract.Verity) (target, error) {
	if b, err := hex.DecodeString(v.RootHash); err != nil || len(b) != digestSize {
		return target{}, fmt.Errorf("verity: root hash %q: want %d hex digits", v.RootHash, 2*digestSize)
	}
	if b, err := hex.DecodeString(v.Salt); err != nil || len(b) == 0 || len(b) > maxSalt {
		return target{}, fmt.Errorf("verity: salt %q: want 1 to %d bytes in hex", v.Salt, maxSalt)
	}
	if v.DataBlocks == 0 || v.HashOffset%blockSize != 0 || v.HashOffset < v.DataBlocks*blockSize {
		return target{}, fmt.Errorf("verity: %d data blocks with the superblock at byte %d: want the superblock block-aligned after the data", v.DataBlocks, v.HashOffset)
	}
	return target{
		start:  0,
		length: v.DataBlocks * blockSize / sectorSize,
		kind:   "verity",
		params: fmt.Sprintf("1 %s %s %d %d %d %d sha256 %s %s",
			dev, dev, blockSize, blockSize, v.DataBlocks, v.HashOffset/blockSize+1, v.RootHash, v.Salt),
	}, nil
}

// spec marshals the target as DM_TABLE_LOAD expects it after the ioctl
// header: struct dm_target_spec, the NUL-terminated parameters, padded so a
// following spec would be 8-byte aligned; next is that padded length.
func (t target) spec() []byte {
	n := (unix.SizeofDmTargetSpec + len(t.params) + 1 + 7) &^ 7
	s := unix.DmTargetSpec{Sector_start: t.start, Length: t.length, Next: uint32(n)}
	copy(s.Target_type[:], t.kind)
	var b bytes.Buffer
	binary.Write(&b, binary.NativeEndian, s)
	b.WriteString(t.params)
	b.Write(make([]byte, n-b.Len()))
	return b.Bytes()
}

// request marshals struct dm_ioctl for device name followed by payload, the
// whole buffer the ioctl reads from and writes its answer into.
func request(name string, flags, targets uint32, payload []byte) []byte {
	h := unix.DmIoctl{
		// Major must match the kernel's; minor 0 asks for no feature newer
		// than the first version 4 interface.
		Version:      [3]uint32{unix.DM_VERSION_MAJOR, 0, 0},
		Data_size:    uint32(unix.SizeofDmIoctl + len(payload)),
		Data_start:   unix.SizeofDmIoctl,
		Target_count: targets,
		Flags:        flags,
	}
	copy(h.Name[:], name)
	var b bytes.Buffer
	binary.Write(&b, binary.NativeEndian, h)
	b.Write(payload)
	return b.Bytes()
}

// dmIoctl runs one device-mapper ioctl and returns the header the kernel
// wrote back.
func dmIoctl(ctl *os.File, cmd uintptr, buf []byte) (unix.DmIoctl, error) {
	var h unix.DmIoctl
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, ctl.Fd(), cmd, uintptr(unsafe.Pointer(&buf[0]))); errno != 0 {
		return h, errno
	}
	err := binary.Read(bytes.NewReader(buf), binary.NativeEndian, &h)
	return h, err
}

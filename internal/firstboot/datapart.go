package firstboot

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nodebake/nodebake/internal/bytesize"
)

// fsSlack is how much smaller than its partition a filesystem may be
// before it is grown: resize2fs may leave a tail too small for a block
// group, and a filesystem that cannot use it must not be resized on every
// boot for nothing.
const fsSlack = 16 * bytesize.MiB

// blockDev is the partition holding a mounted filesystem.
type blockDev struct {
	disk, part string // "/dev/vda", "/dev/vda4"
	index      int    // partition number
	sysfs      string // /sys/class/block/vda4
}

// mountDevice finds the device number of what is mounted at mountpoint,
// from the text of /proc/self/mountinfo.
func mountDevice(mountinfo []byte, mountpoint string) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	dev := ""
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		f := strings.Fields(sc.Text())
		if len(f) >= 5 && f[4] == mountpoint {
			dev = f[2] // the last mount on a point is the one in use
		}
	}
	if dev == "" {
		return "", fmt.Errorf("nothing is mounted on %s: did /init mount the data partition? (see `journalctl -b -t nodebake-init`)", mountpoint)
	}
	return dev, nil
}

// findBlockDev resolves a "major:minor" device number to its partition
// and disk through sysfs.
func findBlockDev(devno string) (blockDev, error) {
	link, err := filepath.EvalSymlinks("/sys/dev/block/" + devno)
	if err != nil {
		return blockDev{}, err
	}
	b, err := os.ReadFile(filepath.Join(link, "partition"))
	if err != nil {
		return blockDev{}, fmt.Errorf("device %s (%s) is not a partition: %w", devno, filepath.Base(link), err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return blockDev{}, fmt.Errorf("%s/partition: %w", link, err)
	}
	return blockDev{
		disk:  "/dev/" + filepath.Base(filepath.Dir(link)),
		part:  "/dev/" + filepath.Base(link),
		index: n,
		sysfs: link,
	}, nil
}

// sysfsBytes reads a partition's start or size from sysfs, where both are
// counted in 512-byte sectors whatever the disk's sector size.
func sysfsBytes(dir, name string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s/%s: %w", dir, name, err)
	}
	return n * 512, nil
}

// ext4Size reads a filesystem's size in bytes from its superblock (the
// 1 KiB at offset 1024).
func ext4Size(sb []byte) (uint64, error) {
	if len(sb) < 0x154 || binary.LittleEndian.Uint16(sb[0x38:]) != 0xEF53 {
		return 0, errors.New("no ext2/3/4 superblock")
	}
	blocks := uint64(binary.LittleEndian.Uint32(sb[0x4:]))
	const incompat64bit = 0x80
	if binary.LittleEndian.Uint32(sb[0x60:])&incompat64bit != 0 {
		blocks |= uint64(binary.LittleEndian.Uint32(sb[0x150:])) << 32
	}
	logSize := binary.LittleEndian.Uint32(sb[0x18:])
	if logSize > 6 {
		return 0, fmt.Errorf("implausible block size 2^%d KiB", logSize)
	}
	return blocks * (1024 << logSize), nil
}

func readExt4Size(dev string) (uint64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil && err != io.EOF {
		return 0, fmt.Errorf("%s: %w", dev, err)
	}
	n, err := ext4Size(sb)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", dev, err)
	}
	return n, nil
}

// blkpgResize tells the kernel a partition's new extent, which it accepts
// while the partition is mounted (unlike a full re-read of the table).
func blkpgResize(disk *os.File, index int, start, length int64) error {
	p := unix.BlkpgPartition{Start: start, Length: length, Pno: int32(index)}
	arg := unix.BlkpgIoctlArg{
		Op:      unix.BLKPG_RESIZE_PARTITION,
		Datalen: int32(unsafe.Sizeof(p)),
		Data:    (*byte)(unsafe.Pointer(&p)),
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, disk.Fd(), unix.BLKPG, uintptr(unsafe.Pointer(&arg)))
	runtime.KeepAlive(&p)
	if errno != 0 {
		return fmt.Errorf("BLKPG resize of partition %d on %s: %w", index, disk.Name(), errno)
	}
	return nil
}

// growData grows the partition mounted at mountpoint to fill its disk, tells
// the kernel, and grows the ext4 filesystem on it online. Each part checks
// the state it fixes, so a run cut short is finished by the next one. It
// never formats anything.
func growData(mountpoint string) ([]Item, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	devno, err := mountDevice(mi, mountpoint)
	if err != nil {
		return nil, err
	}
	dev, err := findBlockDev(devno)
	if err != nil {
		return nil, err
	}
	disk, err := os.OpenFile(dev.disk, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer disk.Close()
	ss, err := unix.IoctlGetInt(int(disk.Fd()), unix.BLKSSZGET)
	if err != nil {
		return nil, fmt.Errorf("%s: sector size: %w", dev.disk, err)
	}

	var items []Item
	plan, err := GrowGPT(disk, ss, dev.index)
	if err != nil {
		return items, fmt.Errorf("%w; the data partition keeps its size", err)
	}
	start := int64(plan.Start) * int64(ss)
	length := int64(plan.NewEnd-plan.Start+1) * int64(ss)
	it := Item{What: "partition table of " + dev.disk, Status: Unchanged}
	if plan.Changes() {
		it.Status = Changed
		it.Detail = fmt.Sprintf("partition %d ends at sector %d (%s), was %d", dev.index, plan.NewEnd, bytesize.Format(length), plan.OldEnd)
	}
	items = append(items, it)

	kernel, err := sysfsBytes(dev.sysfs, "size")
	if err != nil {
		return items, err
	}
	it = Item{What: "kernel's view of " + dev.part, Status: Unchanged}
	if kernel != length {
		if err := blkpgResize(disk, dev.index, start, length); err != nil {
			return items, fmt.Errorf("%w: reboot to let the kernel read the new partition table", err)
		}
		it.Status, it.Detail = Changed, fmt.Sprintf("%s → %s", bytesize.Format(kernel), bytesize.Format(length))
	}
	items = append(items, it)

	size, err := readExt4Size(dev.part)
	if err != nil {
		return items, err
	}
	it = Item{What: "ext4 filesystem on " + dev.part, Status: Unchanged}
	if int64(size)+fsSlack <= length {
		out, err := exec.Command("resize2fs", dev.part).CombinedOutput()
		if err != nil {
			return items, fmt.Errorf("resize2fs %s: %w: %s; /data keeps its size: run `resize2fs %s` by hand to retry", dev.part, err, bytes.TrimSpace(out), dev.part)
		}
		grown, err := readExt4Size(dev.part)
		if err != nil {
			return items, err
		}
		it.Status, it.Detail = Changed, fmt.Sprintf("%s → %s", bytesize.Format(int64(size)), bytesize.Format(int64(grown)))
	}
	return append(items, it), nil
}

package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"
)

// probeBytes is how much of the data partition is read to decide what it
// holds. It covers the signatures of the common filesystems and volume
// formats (FAT and XFS at 0, ext at 1 KiB, ISO 9660 at 32 KiB, btrfs at
// 64 KiB, LUKS and LVM in the first sectors).
const probeBytes = 128 << 10

// contents is what a data partition holds, as far as /init cares.
type contents int

const (
	blank contents = iota // all zero: never used, safe to format
	ext4                  // an ext2/3/4 filesystem: mount it
	other                 // anything else: someone's data, never format
)

// classify decides what a partition holds from its first probeBytes. It
// returns the offset of the first non-zero byte for other.
func classify(head []byte) (contents, int) {
	// The ext superblock starts at 1024; its magic 0xEF53 sits at offset 56.
	if len(head) >= 1082 && binary.LittleEndian.Uint16(head[1080:]) == 0xEF53 {
		return ext4, 0
	}
	for i, b := range head {
		if b != 0 {
			return other, i
		}
	}
	return blank, 0
}

// readHead reads the first probeBytes of a device.
func readHead(dev string) ([]byte, error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, probeBytes)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF {
		return nil, fmt.Errorf("reading %s: %w", dev, err)
	}
	return head[:n], nil
}

// mountData mounts the data partition at root/data, first formatting it if
// it is blank (the first boot). A partition holding anything but ext4 is
// left untouched and the boot fails: formatting is for empty space only.
func mountData(dev, root string) error {
	head, err := readHead(dev)
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	switch kind, at := classify(head); kind {
	case other:
		return fmt.Errorf("data: %s holds something that is not an ext4 filesystem (non-zero byte at offset %d); refusing to format it. If its contents may go, zero its first 128 KiB (from another system: dd if=/dev/zero of=<partition> bs=128K count=1) and boot again", dev, at)
	case blank:
		if err := formatData(dev, root); err != nil {
			return err
		}
		if head, err = readHead(dev); err != nil {
			return fmt.Errorf("data: %w", err)
		}
		if kind, _ := classify(head); kind != ext4 {
			return fmt.Errorf("data: mkfs.ext4 succeeded but %s holds no ext4 superblock", dev)
		}
		say("data: formatted %s as ext4 (first boot)", dev)
	}
	target := filepath.Join(root, "data")
	if fi, err := os.Stat(target); err != nil || !fi.IsDir() {
		return fmt.Errorf("data: the root image has no /data directory to mount %s on", dev)
	}
	if _, err := mount.Mount(dev, target, "ext4", "", unix.MS_NOATIME|unix.MS_NOSUID|unix.MS_NODEV); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	say("data: mounted %s on /data", dev)
	return nil
}

// formatData runs the root image's own mkfs.ext4, chrooted into root: the
// initramfs carries no e2fsprogs, and the image's version is the one that
// later checks and grows the filesystem.
func formatData(dev, root string) error {
	unbind, err := bindKernelFilesystems(root)
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	defer unbind()
	say("data: %s is blank, creating an ext4 filesystem", dev)
	// -T default: 4 KiB blocks even on the small partition of a fresh image,
	// so the reserved GDT covers growth to ~256 GiB online.
	cmd := exec.Command("/sbin/mkfs.ext4", "-T", "default", "-L", "data", "-E", "lazy_itable_init=1", dev)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	// mkfs does not ask before overwriting a filesystem when its input is no
	// terminal (measured with e2fsprogs 1.47): classify is the only guard.
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("data: mkfs.ext4 %s: %w\n%s", dev, err, out)
	}
	return nil
}

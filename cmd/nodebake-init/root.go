package main

import (
	"errors"
	"fmt"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"
)

// mountRoot mounts the verified root image read-only at target.
func mountRoot(dev, target string) error {
	if _, err := mount.Mount(dev, target, "squashfs", "", unix.MS_RDONLY); err != nil {
		if errors.Is(err, unix.EIO) {
			// dm-verity fails reads of blocks that do not match the hash tree.
			return fmt.Errorf("root: %w: the partition does not match the root hash on the kernel command line (corrupt, or written incompletely); the kernel log above names the block", err)
		}
		return fmt.Errorf("root: %w (is this a nodebake root image?)", err)
	}
	say("root: mounted %s read-only on %s", dev, target)
	return nil
}

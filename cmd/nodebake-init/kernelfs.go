package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"
)

// mountKernelFilesystems mounts /proc, /sys, /dev and /run. switch_root
// moves them into the root image, where systemd expects to find them.
func mountKernelFilesystems() error {
	for _, m := range []struct {
		fstype, target, data string
		flags                uintptr
	}{
		{"proc", "/proc", "", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"sysfs", "/sys", "", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"devtmpfs", "/dev", "mode=0755", unix.MS_NOSUID},
		{"tmpfs", "/run", "mode=0755", unix.MS_NOSUID | unix.MS_NODEV},
	} {
		if _, err := mount.Mount(m.fstype, m.target, m.fstype, m.data, m.flags); err != nil {
			return err
		}
	}
	say("mounted /proc /sys /dev /run")
	return nil
}

// bindKernelFilesystems bind-mounts /dev and /proc into root, for a tool run
// chrooted there, and returns the function that unmounts them again.
func bindKernelFilesystems(root string) (unbind func(), err error) {
	var done []string
	unbind = func() {
		for i := len(done) - 1; i >= 0; i-- {
			if err := unix.Unmount(done[i], 0); err != nil {
				say("unmounting %s: %v", done[i], err)
			}
		}
	}
	for _, dir := range []string{"/dev", "/proc"} {
		target := filepath.Join(root, dir)
		if _, err := os.Stat(target); err != nil {
			unbind()
			return nil, fmt.Errorf("the root image lacks %s: %w", dir, err)
		}
		if err := unix.Mount(dir, target, "", unix.MS_BIND, ""); err != nil {
			unbind()
			return nil, fmt.Errorf("bind-mounting %s on %s: %w", dir, target, err)
		}
		done = append(done, target)
	}
	return unbind, nil
}

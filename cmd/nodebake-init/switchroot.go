package main

import (
	"fmt"
	"io"
	"log"
	"os"

	"github.com/u-root/u-root/pkg/mount"
)

// switchRoot makes root the root directory, frees the initramfs and executes
// systemd as process 1. It returns only on failure.
func switchRoot(root string) error {
	say("switching root to the image, starting /sbin/init")
	// u-root narrates each sub-step on the standard logger: one line is enough.
	log.SetOutput(io.Discard)
	err := mount.SwitchRoot(root, "/sbin/init")
	log.SetOutput(os.Stderr)
	return fmt.Errorf("switch_root: %w", err)
}

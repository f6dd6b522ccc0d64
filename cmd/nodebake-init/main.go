// Command nodebake-init is the initramfs /init. It loads the kernel modules
// it needs, finds the slot's root partition named on the kernel command line,
// verifies it with dm-verity, mounts it read-only, mounts the data partition
// (formatting it on first boot) with the per-device state kept there, and
// hands over to systemd. On any failure it says what it looked for and what
// it found, waits, and reboots, so that boot counting can fall back to the
// other slot.
//
// Build it static: CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath.
package main

import (
	"fmt"
	"os"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/verity"
)

// sysroot is where the root image is assembled before switch_root.
const sysroot = "/sysroot"

func main() {
	if os.Getpid() != 1 {
		// It mounts, formats and reboots: never let it loose on a running system.
		fmt.Fprintln(os.Stderr, "nodebake-init: this is the initramfs /init; it runs only as process 1")
		os.Exit(2)
	}
	if err := boot(); err != nil {
		fail(err)
	}
}

func boot() error {
	if err := mountKernelFilesystems(); err != nil {
		return err
	}
	if err := loadModules(moduleList); err != nil {
		return err
	}
	slot, err := readSlot()
	if err != nil {
		return err
	}
	root, err := waitForPartition("root", slot.RootPartUUID)
	if err != nil {
		return err
	}
	verified, err := verity.Activate("root", root, slot.Verity)
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}
	say("verity: %s reads through %s, checked against root hash %s", root, verified, slot.Verity.RootHash)
	if err := mountRoot(verified, sysroot); err != nil {
		return err
	}
	data, err := waitForPartition("data", slot.DataPartUUID)
	if err != nil {
		return err
	}
	if err := mountData(data, sysroot); err != nil {
		return err
	}
	if err := setUpState(sysroot); err != nil {
		return err
	}
	return switchRoot(sysroot)
}

// readSlot reads the slot this boot entry is for from the kernel command line.
func readSlot() (contract.Slot, error) {
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return contract.Slot{}, err
	}
	slot, err := contract.Parse(string(cmdline))
	if err != nil {
		return contract.Slot{}, err
	}
	say("slot %s: root PARTUUID %s, data PARTUUID %s", slot.Name, slot.RootPartUUID, slot.DataPartUUID)
	return slot, nil
}

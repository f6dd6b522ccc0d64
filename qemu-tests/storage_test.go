//go:build qemu

package qemutests

import (
	"strings"
	"testing"

	"github.com/nodebake/nodebake/internal/qemu"
)

// TestStorageBuses boots the image from the disks PCs have — NVMe, SATA
// (AHCI) and a USB stick — and asks the guest which driver the verity
// root's partition hangs on: the trimmed module set must keep each bus in
// the initramfs and the root.
func TestStorageBuses(t *testing.T) {
	for _, tc := range []struct {
		bus    qemu.Bus
		driver string // in the sysfs chain of the root's partition
	}{
		{qemu.BusNVMe, `DRIVERS=="nvme"`},
		{qemu.BusAHCI, `DRIVERS=="ahci"`},
		{qemu.BusUSB, `DRIVERS=="usb-storage"`},
	} {
		t.Run(string(tc.bus), func(t *testing.T) {
			g := boot(t, image, qemu.Options{Snapshot: true, Bus: tc.bus})
			state, _ := g.ssh.Run("systemctl is-system-running --wait")
			if s := strings.TrimSpace(state); s != "running" {
				t.Errorf("system state %q, failed units:\n%s", s, g.run(t, "systemctl --failed --no-legend"))
			}
			// dm-verity's one lower device is the root slot's partition.
			part := g.run(t, "basename $(ls -d /sys/block/dm-*/slaves/* | head -n1)")
			chain := g.run(t, "udevadm info -a -n /dev/"+part+" | grep DRIVERS==")
			if !strings.Contains(chain, tc.driver) {
				t.Errorf("root on /dev/%s: driver chain\n%s\nwant %s", part, chain, tc.driver)
			}
			t.Logf("root on /dev/%s over %s", part, tc.driver)
		})
	}
}

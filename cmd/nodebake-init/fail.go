package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodebake/nodebake/internal/bytesize"
)

// defaultFailWait is how long a failed boot stays on screen before the
// reboot, unless nodebake.failwait=<seconds> says otherwise.
const defaultFailWait = 30 * time.Second

// fail reports err with what /init can see, waits and reboots. The reboot
// counts as a failed try, so systemd-boot eventually falls back to the other
// slot; exiting instead would panic the kernel and stop there.
func fail(err error) {
	say("FAILED: %v", err)
	cmdline, cerr := os.ReadFile("/proc/cmdline")
	if cerr != nil {
		say("kernel command line: %v", cerr)
	} else {
		say("kernel command line: %s", strings.TrimSpace(string(cmdline)))
	}
	say("running kernel %s; loaded modules: %s", kernelRelease(), loadedModules())
	if devs, err := scanBlockDevices(); err != nil {
		say("block devices: %v", err)
	} else {
		say("block devices:")
		for _, line := range describe(devs) {
			say("  %s", line)
		}
	}
	wait := failWait(string(cmdline))
	say("rebooting in %s (nodebake.failwait=<seconds> on the kernel command line changes this)", wait)
	time.Sleep(wait)
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		say("reboot: %v", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// describe renders block devices one per line, for the failure report.
func describe(devs []blockDevice) []string {
	if len(devs) == 0 {
		return []string{"(none: is the disk controller's driver in the initramfs?)"}
	}
	var lines []string
	for _, d := range devs {
		line := fmt.Sprintf("%-10s %10s", d.name, bytesize.Format(int64(d.size)))
		if d.partUUID != "" {
			line += " PARTUUID=" + d.partUUID
		}
		if d.label != "" {
			line += " PARTLABEL=" + d.label
		}
		lines = append(lines, line)
	}
	return lines
}

// failWait reads nodebake.failwait=<seconds> from the kernel command line.
func failWait(cmdline string) time.Duration {
	wait := defaultFailWait
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "nodebake.failwait="); ok {
			if s, err := strconv.ParseUint(v, 10, 32); err == nil {
				wait = time.Duration(s) * time.Second
			}
		}
	}
	return wait
}

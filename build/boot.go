package build

import (
	"bytes"
	"fmt"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/disk"
	"github.com/nodebake/nodebake/internal/initramfs"
	"github.com/nodebake/nodebake/internal/tree"
	"github.com/nodebake/nodebake/spec"
)

// KernelArgs come before the slot's parameters on every kernel command line.
// The last console is /dev/console (systemd's status output): the screen;
// the serial port still gets the kernel's and /init's messages, which /init
// writes through /dev/kmsg — unthrottled with printk.devkmsg=on, so a
// failure report is never cut short.
const KernelArgs = "console=ttyS0,115200 console=tty0 ro printk.devkmsg=on"

// LoaderConf makes systemd-boot start the default entry at once; holding a
// key at power-on still shows the menu.
const LoaderConf = "timeout 0\neditor no\n"

// espFiles lays out the ESP: systemd-boot as the removable-media loader (no
// NVRAM entry is needed, so a flashed disk boots on any PC), and each slot's
// kernel, initramfs and entry.
func espFiles(t *tree.Tree, s *spec.Spec, kver string, slot contract.Slot, initrd []byte) (map[string][]byte, error) {
	boot, err := t.ReadFile("usr/lib/systemd/boot/efi/systemd-bootx64.efi")
	if err != nil {
		return nil, fmt.Errorf("ESP: systemd-boot: %w (is systemd-boot-efi installed?)", err)
	}
	kernel, err := t.ReadFile("boot/vmlinuz-" + kver)
	if err != nil {
		return nil, fmt.Errorf("ESP: kernel: %w", err)
	}
	dir := contract.SlotDir(slot.Name) + "/"
	// The entry an update writes for a slot has the same form (with a boot
	// counter in its name), so systemd-boot orders all of them by version.
	entry := contract.EntryConf(s.Name, s.Version, KernelArgs, slot)
	return map[string][]byte{
		contract.BootLoader: boot,
		contract.LoaderConf: []byte(LoaderConf),
		contract.EntriesDir + "/" + contract.EntryName("a"): entry,
		dir + contract.KernelFile:                           kernel,
		dir + contract.InitrdFile:                           initrd,
	}, nil
}

func buildInitramfs(t *tree.Tree, kver string, initBin []byte, epoch time.Time) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := initramfs.Build(&buf, t.FS(), kver, initBin, epoch); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// partitions is the disk layout: ESP, two root slots of one size (slot b
// stays empty until the first update), data (grown on the device).
func partitions(s *spec.Spec, ids PartIDs, esp, root string) []disk.Partition {
	return []disk.Partition{
		{Name: contract.ESP, Type: gpt.EFISystemPartition, UUID: ids.ESP, Size: int64(s.Disk.ESPSize), Content: esp},
		{Name: contract.RootA, Type: gpt.LinuxRootX86_64, UUID: ids.RootA, Size: int64(s.Disk.SlotSize), Content: root},
		{Name: contract.RootB, Type: gpt.LinuxRootX86_64, UUID: ids.RootB, Size: int64(s.Disk.SlotSize)},
		{Name: contract.Data, Type: gpt.LinuxFilesystem, UUID: ids.Data, Size: int64(s.Disk.DataSize)},
	}
}

package contract

import "fmt"

// The ESP's layout, relative to its root (slash-separated, as the ESP
// interface of package ota/device and the FAT writer take them).
const (
	// BootLoader is systemd-boot, at the removable-media path: no NVRAM
	// entry is needed, so a flashed disk boots on any PC.
	BootLoader = "EFI/BOOT/BOOTX64.EFI"
	LoaderConf = "loader/loader.conf"
	// EntriesDir holds one Boot Loader Spec entry per slot.
	EntriesDir = "loader/entries"
	// EntryPrefix starts the file name of every slot's entry:
	// nodebake-<slot>[+LEFT[-DONE]].conf, the counter being systemd-boot's.
	EntryPrefix = "nodebake-"
	// SortKey is the sort-key of every slot's entry, so that systemd-boot
	// orders them by version among themselves.
	SortKey = "nodebake"
	// KernelFile and InitrdFile are the names of a slot's files in SlotDir.
	KernelFile = "vmlinuz"
	InitrdFile = "initrd.img"
)

// SlotDir is where slot "a" or "b" keeps its kernel and initramfs.
func SlotDir(slot string) string { return "nodebake/" + slot }

// EntryName is the file name, in EntriesDir, of a slot's blessed entry
// (no boot counter).
func EntryName(slot string) string { return EntryPrefix + slot + ".conf" }

// EntryConf renders the boot entry of a slot. The builder writes it for
// slot a, an update for the slot it fills; both must be the same form so
// that systemd-boot orders all of them by sort-key and version.
func EntryConf(name, version, kernelArgs string, slot Slot) []byte {
	dir := "/" + SlotDir(slot.Name) + "/"
	return fmt.Appendf(nil, "title %s %s (slot %s)\nversion %s\nsort-key %s\nlinux %s%s\ninitrd %s%s\noptions %s %s\n",
		name, version, slot.Name, version, SortKey, dir, KernelFile, dir, InitrdFile, kernelArgs, slot.Format())
}

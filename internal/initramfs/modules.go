package initramfs

import (
	"bytes"
	"fmt"
	"io/fs"
	"slices"

	"github.com/nodebake/nodebake/internal/kmodules"
)

// Modules lists the kernel modules /init loads. Their dependencies come from
// modules.dep; modules built into the kernel are skipped. Only what
// /init itself needs is here: everything else (vfat for the ESP, network
// drivers, …) is loaded after switch_root by udev from the root image.
var Modules = []string{
	"virtio_rng", // without it, early getrandom blocks ~1 s under QEMU
	"virtio_pci", // the virtio bus: not a symbol dependency of virtio_blk
	"virtio_blk",
	"virtio_scsi",
	"ahci",
	"nvme",
	"sdhci_pci", // eMMC in small boxes
	"sdhci_acpi",
	"mmc_block",
	"xhci_pci", // USB disks
	"ehci_pci",
	"usb_storage",
	"uas",
	"sd_mod", // disks behind SATA, SCSI and USB
	"dm_verity",
	"squashfs",
	"crc32c_generic", // ext4's soft dependency (crypto-crc32c): not in modules.dep
	"ext4",
	"overlay",
}

// ModuleList is the file in the archive that names the modules /init loads,
// one per line, in the order of Modules.
const ModuleList = "etc/nodebake-init/modules"

// moduleDir is where a merged-/usr Debian userland keeps kver's modules.
func moduleDir(kver string) string { return kmodules.Dir(kver) }

// plan is what the archive needs from the userland's module tree.
type plan struct {
	load    []string // names /init loads, in order
	builtin []string // requested names built into the kernel
	files   []string // module files (closure), relative to the module dir, sorted
	dep     []byte   // modules.dep restricted to files
}

// resolve finds the module files that loading names needs, following
// modules.dep transitively. modules.alias is ignored on purpose: /init loads
// modules by name, never by device alias.
func resolve(root fs.FS, kver string, names []string) (plan, error) {
	x, err := kmodules.ReadIndex(root, kver)
	if err != nil {
		return plan{}, err
	}
	var p plan
	need := map[string]bool{}
	for _, n := range names {
		if d, ok := x.Lookup(n); ok {
			p.load = append(p.load, n)
			if err := x.Close(need, d.File); err != nil {
				return plan{}, err
			}
			continue
		}
		if x.Builtin(n) {
			p.builtin = append(p.builtin, n)
			continue
		}
		return plan{}, fmt.Errorf("kernel %s has no module %q: it is neither in modules.dep nor in modules.builtin (drop it from initramfs.Modules or install the package that ships it)", kver, n)
	}

	var dep bytes.Buffer
	for _, e := range x.Deps {
		if need[e.File] {
			p.files = append(p.files, e.File)
			dep.WriteString(e.Line + "\n")
		}
	}
	slices.Sort(p.files)
	p.dep = dep.Bytes()
	return p, nil
}

package initramfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/nodebake/nodebake/internal/bytesize"
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
func moduleDir(kver string) string { return path.Join("usr/lib/modules", kver) }

// plan is what the archive needs from the userland's module tree.
type plan struct {
	load    []string // names /init loads, in order
	builtin []string // requested names built into the kernel
	files   []string // module files (closure), relative to the module dir, sorted
	dep     []byte   // modules.dep restricted to files
}

// depEntry is one line of modules.dep: a module file and the files it needs.
type depEntry struct {
	file string
	deps []string
	line string
}

// resolve finds the module files that loading names needs, following
// modules.dep transitively. modules.alias is ignored on purpose: /init loads
// modules by name, never by device alias.
func resolve(root fs.FS, kver string, names []string) (plan, error) {
	dir := moduleDir(kver)
	depText, err := fs.ReadFile(root, path.Join(dir, "modules.dep"))
	if err != nil {
		return plan{}, fmt.Errorf("kernel %s: %w (is linux-image-%s installed in the userland?)", kver, err, kver)
	}
	builtinText, err := fs.ReadFile(root, path.Join(dir, "modules.builtin"))
	if err != nil {
		return plan{}, fmt.Errorf("kernel %s: %w", kver, err)
	}
	entries, err := parseDep(depText)
	if err != nil {
		return plan{}, fmt.Errorf("%s: %w", path.Join(dir, "modules.dep"), err)
	}
	byName := map[string]depEntry{}
	byFile := map[string]depEntry{}
	for _, e := range entries {
		byName[moduleName(e.file)] = e
		byFile[e.file] = e
	}
	builtin := map[string]bool{}
	for _, f := range strings.Fields(string(builtinText)) {
		builtin[moduleName(f)] = true
	}

	var p plan
	need := map[string]bool{}
	var visit func(file, from string) error
	visit = func(file, from string) error {
		if need[file] {
			return nil
		}
		e, ok := byFile[file]
		if !ok {
			return fmt.Errorf("modules.dep: %s needs %s, which has no line of its own", from, file)
		}
		need[file] = true
		for _, d := range e.deps {
			if err := visit(d, file); err != nil {
				return err
			}
		}
		return nil
	}
	for _, n := range names {
		name := strings.ReplaceAll(n, "-", "_")
		if e, ok := byName[name]; ok {
			p.load = append(p.load, n)
			if err := visit(e.file, n); err != nil {
				return plan{}, err
			}
			continue
		}
		if builtin[name] {
			p.builtin = append(p.builtin, n)
			continue
		}
		return plan{}, fmt.Errorf("kernel %s has no module %q: it is neither in modules.dep nor in modules.builtin (drop it from initramfs.Modules or install the package that ships it)", kver, n)
	}

	var dep bytes.Buffer
	for _, e := range entries {
		if need[e.file] {
			p.files = append(p.files, e.file)
			dep.WriteString(e.line + "\n")
		}
	}
	slices.Sort(p.files)
	p.dep = dep.Bytes()
	return p, nil
}

// parseDep reads modules.dep ("kernel/a.ko: kernel/b.ko kernel/c.ko").
func parseDep(b []byte) ([]depEntry, error) {
	var out []depEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, bytesize.MiB)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		file, deps, ok := strings.Cut(line, ":")
		if !ok || file == "" {
			return nil, fmt.Errorf("line %d: %q is not \"module: dependencies\"", n, line)
		}
		if !fs.ValidPath(file) {
			return nil, fmt.Errorf("line %d: %q is not a relative path", n, file)
		}
		out = append(out, depEntry{file: file, deps: strings.Fields(deps), line: line})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no modules listed")
	}
	return out, nil
}

// moduleName turns "kernel/drivers/md/dm-verity.ko[.xz]" into "dm_verity":
// the kernel treats - and _ in module names alike, file names use either.
func moduleName(file string) string {
	base := path.Base(file)
	if i := strings.LastIndex(base, ".ko"); i > 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

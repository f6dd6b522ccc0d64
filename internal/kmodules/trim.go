package kmodules

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/nodebake/nodebake/internal/tree"
)

// Profiles are the module sets image.yaml's kernel.modules.profile names.
// An entry ending in "/" keeps every module under that folder of the
// kernel's module tree ("kernel/" left out); any other entry is a module
// name. Entries this kernel lacks are skipped: a profile serves several
// kernel versions. "all" keeps every module and firmware file.
var Profiles = map[string][]string{
	"all":      nil,
	"headless": Headless,
}

// Headless is what a headless x86-64 node (mini PC, NUC, server or VM)
// boots and runs on: its disks, wired network, USB, file systems, device
// mapper and crypto, the firewall, zram and sensors. Left out: graphics,
// sound, wireless, Bluetooth, cameras and TV cards, InfiniBand, Fibre
// Channel and the many RAID and SCSI controllers of big servers.
var Headless = []string{
	// Storage: NVMe (also behind Intel VMD), AHCI and old PATA, SCSI disks
	// and CD drives, virtio, eMMC and SD cards, USB mass storage and UAS.
	"drivers/nvme/", "vmd", "drivers/ata/", "sd_mod", "sr_mod", "sg", "virtio_scsi",
	"virtio_blk", "drivers/mmc/", "drivers/usb/storage/", "loop", "zram", "nbd",
	// USB host controllers, hubs and keyboards (a console for rescue).
	"drivers/usb/host/", "drivers/usb/core/", "drivers/usb/common/", "usbhid", "hid_generic", "evdev",
	// Wired NICs: Intel, Realtek, Broadcom, Marvell, Atheros/Qualcomm,
	// Aquantia, USB Ethernet adapters, virtio; the PHY drivers they probe by
	// id (not modules.dep dependencies) and what VPNs and containers use.
	"e1000", "e1000e", "igb", "igbvf", "igc", "ixgbe", "ixgbevf", "i40e", "r8169", "tg3", "bnx2",
	"sky2", "skge", "alx", "atl1c", "atl1e", "atlantic", "virtio_net", "drivers/net/usb/",
	"drivers/net/phy/", "drivers/net/mdio/", "tun", "veth", "macvlan", "bonding", "wireguard",
	// Networking: IPv4/IPv6 extras, netfilter and nftables, bridges, VLANs,
	// traffic control, packet sockets.
	"net/ipv4/", "net/ipv6/", "net/netfilter/", "net/bridge/", "net/802/", "net/8021q/",
	"net/llc/", "net/sched/", "net/packet/", "net/unix/", "net/core/", "net/key/", "net/xfrm/",
	// File systems: the image's own (ext4, vfat, squashfs, overlay), USB
	// sticks (exFAT, ISO 9660), FUSE, autofs (efi.automount).
	"fs/ext4/", "fs/jbd2/", "mbcache", "fs/fat/", "fs/exfat/", "fs/nls/", "fs/squashfs/",
	"fs/overlayfs/", "fs/isofs/", "fs/fuse/", "fs/autofs/", "fs/efivarfs/", "fs/configfs/",
	"binfmt_misc", // systemd mounts it at boot
	// Device mapper (dm-verity, dm-crypt), crypto, the libraries they use.
	"drivers/md/", "crypto/", "arch/x86/crypto/", "lib/",
	// Platform: ACPI, hardware RNGs, TPM, watchdogs, sensors, EFI.
	"drivers/acpi/", "drivers/char/hw_random/", "drivers/char/tpm/", "iTCO_wdt", "sp5100_tco",
	"i6300esb", "coretemp", "k10temp", "efi_pstore", "virtio_balloon", "virtio_console",
	"drivers/virtio/", "intel_rapl_msr", "i2c_i801", "i2c_piix4",
}

// Stats says what Trim kept.
type Stats struct {
	Modules, ModulesRemoved   int
	ModuleBytes               int64 // kept
	Firmware, FirmwareRemoved int
	FirmwareBytes             int64 // kept
}

// Depmod regenerates the index files (modules.dep, .alias, their .bin
// forms) of the module tree under base/usr/lib/modules/kver.
type Depmod func(base, kver string) error

// firmwareDir is where Debian's firmware packages install.
const firmwareDir = "usr/lib/firmware"

// Trim keeps only the modules keep and extra name, with what they need by
// modules.dep, and the firmware files those modules name; it then
// regenerates the module index with depmod. Entries of keep that this
// kernel lacks are skipped; an entry of extra that matches nothing is an
// error, as it is a typo or a module of another kernel.
func Trim(t *tree.Tree, kver string, keep, extra []string, depmod Depmod) (Stats, error) {
	x, err := ReadIndex(t.FS(), kver)
	if err != nil {
		return Stats{}, err
	}
	need := map[string]bool{}
	if err := x.selectInto(need, keep, false); err != nil {
		return Stats{}, err
	}
	if err := x.selectInto(need, extra, true); err != nil {
		return Stats{}, err
	}

	var st Stats
	dir := Dir(kver)
	drop := map[string]bool{}
	var firmware []string
	for _, d := range x.Deps {
		p := path.Join(dir, d.File)
		if !need[d.File] {
			drop[p] = true
			st.ModulesRemoved++
			continue
		}
		data, err := t.ReadFile(p)
		if err != nil {
			return Stats{}, fmt.Errorf("kernel modules: %w", err)
		}
		names, err := firmwareNames(d.File, data)
		if err != nil {
			return Stats{}, fmt.Errorf("kernel modules: %s: %w", d.File, err)
		}
		firmware = append(firmware, names...)
		st.Modules++
		if e, ok := t.Get(p); ok {
			st.ModuleBytes += e.Size()
		}
	}
	t.RemoveMatch(func(p string, _ *tree.Entry) bool { return drop[p] })
	removeEmptyDirs(t, path.Join(dir, "kernel"))
	filterOrder(t, dir, need)

	fw, err := trimFirmware(t, firmware)
	if err != nil {
		return Stats{}, err
	}
	st.Firmware, st.FirmwareRemoved, st.FirmwareBytes = fw.kept, fw.removed, fw.bytes
	if err := regenerate(t, kver, depmod); err != nil {
		return Stats{}, err
	}
	return st, nil
}

// UnknownError is an entry of extra that matches no module.
type UnknownError struct {
	Index int // in extra
	Msg   string
}

func (e *UnknownError) Error() string { return e.Msg }

// selectInto adds the modules names match, and their dependencies, to need.
func (x *Index) selectInto(need map[string]bool, names []string, strict bool) error {
	for i, n := range names {
		if folder, ok := strings.CutSuffix(n, "/"); ok {
			prefix := "kernel/" + strings.TrimPrefix(folder, "kernel/") + "/"
			found := false
			for _, d := range x.Deps {
				if strings.HasPrefix(d.File, prefix) {
					found = true
					if err := x.Close(need, d.File); err != nil {
						return err
					}
				}
			}
			if !found && strict {
				return &UnknownError{i, fmt.Sprintf("kernel %s has no modules under %s: check the folder under /usr/lib/modules/%s/", x.Kver, prefix, x.Kver)}
			}
			continue
		}
		if d, ok := x.Lookup(n); ok {
			if err := x.Close(need, d.File); err != nil {
				return err
			}
			continue
		}
		if strict && !x.Builtin(n) {
			return &UnknownError{i, fmt.Sprintf("kernel %s has no module %q: it is neither in modules.dep nor built in (check the name with modinfo on a machine running this kernel)", x.Kver, n)}
		}
	}
	return nil
}

// firmwareNames reads the firmware= entries of a module's .modinfo
// section (MODULE_FIRMWARE), which are NUL-separated key=value strings.
func firmwareNames(file string, data []byte) ([]string, error) {
	var r io.Reader
	switch {
	case strings.HasSuffix(file, ".ko"):
	case strings.HasSuffix(file, ".ko.zst"):
		d, err := zstd.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		r = d
	case strings.HasSuffix(file, ".ko.xz"):
		d, err := xz.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		r = d
	default:
		return nil, fmt.Errorf("unknown module compression: want .ko, .ko.xz or .ko.zst")
	}
	if r != nil {
		var err error
		if data, err = io.ReadAll(r); err != nil {
			return nil, fmt.Errorf("decompressing: %w", err)
		}
	}
	const key = "\x00firmware="
	var out []string
	for {
		i := bytes.Index(data, []byte(key))
		if i < 0 {
			return out, nil
		}
		data = data[i+len(key):]
		end := bytes.IndexByte(data, 0)
		if end < 0 {
			end = len(data)
		}
		if name := string(data[:end]); name != "" {
			out = append(out, name)
		}
		data = data[end:]
	}
}

type firmwareStats struct {
	kept, removed int
	bytes         int64
}

// trimFirmware keeps the files under firmwareDir that names match (a
// name may be a glob, and Debian may ship it compressed), with the targets
// of kept symlinks, and removes every other file there.
func trimFirmware(t *tree.Tree, names []string) (firmwareStats, error) {
	keep := map[string]bool{}
	var files []string
	for _, p := range t.Paths() {
		if rel, ok := strings.CutPrefix(p, firmwareDir+"/"); ok {
			if e, _ := t.Get(p); e.Type != tar.TypeDir {
				files = append(files, rel)
			}
		}
	}
	for _, rel := range files {
		bare := strings.TrimSuffix(strings.TrimSuffix(rel, ".xz"), ".zst")
		for _, n := range names {
			if ok, _ := path.Match(n, bare); ok || n == bare {
				keep[rel] = true
				break
			}
		}
	}
	// Follow kept links to what they point at, inside the firmware folder.
	for changed := true; changed; {
		changed = false
		for rel := range keep {
			e, _ := t.Get(path.Join(firmwareDir, rel))
			if e == nil || e.Type != tar.TypeSymlink {
				continue
			}
			target := path.Clean(path.Join(path.Dir(rel), e.Link))
			if path.IsAbs(e.Link) {
				target = strings.TrimPrefix(path.Clean(e.Link), "/lib/firmware/")
				target = strings.TrimPrefix(target, "/usr/lib/firmware/")
			}
			if _, ok := t.Get(path.Join(firmwareDir, target)); ok && !keep[target] {
				keep[target] = true
				changed = true
			}
		}
	}
	var st firmwareStats
	drop := map[string]bool{}
	for _, rel := range files {
		p := path.Join(firmwareDir, rel)
		if keep[rel] {
			st.kept++
			if e, _ := t.Get(p); e != nil {
				st.bytes += e.Size()
			}
			continue
		}
		drop[p] = true
		st.removed++
	}
	t.RemoveMatch(func(p string, _ *tree.Entry) bool { return drop[p] })
	removeEmptyDirs(t, firmwareDir)
	return st, nil
}

// removeEmptyDirs removes the folders below root that hold nothing once
// files were removed.
func removeEmptyDirs(t *tree.Tree, root string) {
	paths := t.Paths()
	full := map[string]bool{}
	var empty []string
	for i := len(paths) - 1; i >= 0; i-- {
		p := paths[i]
		if !strings.HasPrefix(p, root+"/") {
			continue
		}
		if e, _ := t.Get(p); e.Type == tar.TypeDir && !full[p] {
			empty = append(empty, p)
			continue
		}
		for d := path.Dir(p); d != "." && !full[d]; d = path.Dir(d) {
			full[d] = true
		}
	}
	drop := map[string]bool{}
	for _, p := range empty {
		drop[p] = true
	}
	t.RemoveMatch(func(p string, _ *tree.Entry) bool { return drop[p] })
}

// filterOrder drops removed modules from modules.order, which depmod reads
// to order modules.dep.
func filterOrder(t *tree.Tree, dir string, need map[string]bool) {
	p := path.Join(dir, "modules.order")
	b, err := t.ReadFile(p)
	if err != nil {
		return
	}
	var out []string
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		// modules.order names the uncompressed file.
		if need[line] || need[line+".xz"] || need[line+".zst"] {
			out = append(out, line)
		}
	}
	t.WriteFile(p, []byte(strings.Join(out, "\n")+"\n"), 0o644, tree.Root)
}

// depmodInputs are the files of the module folder depmod reads besides the
// modules; every other modules.* file is its output.
var depmodInputs = []string{"modules.order", "modules.builtin", "modules.builtin.modinfo"}

// regenerate copies the module folder to a scratch folder, runs depmod on
// it and puts the index files it writes back into t.
func regenerate(t *tree.Tree, kver string, depmod Depmod) error {
	base, err := os.MkdirTemp("", "nodebake-depmod-")
	if err != nil {
		return fmt.Errorf("depmod: %w", err)
	}
	defer os.RemoveAll(base)
	dir := Dir(kver)
	for _, p := range t.Paths() {
		rel, ok := strings.CutPrefix(p, dir+"/")
		if !ok {
			continue
		}
		e, _ := t.Get(p)
		if e.Type != tar.TypeReg || (strings.HasPrefix(rel, "modules.") && !slices.Contains(depmodInputs, rel)) {
			continue
		}
		data, err := t.ReadFile(p)
		if err != nil {
			return fmt.Errorf("depmod: %w", err)
		}
		dst := filepath.Join(base, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("depmod: %w", err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return fmt.Errorf("depmod: %w", err)
		}
	}
	// Older kmod looks under /lib/modules, newer under /usr/lib/modules.
	if err := os.Symlink("usr/lib", filepath.Join(base, "lib")); err != nil {
		return fmt.Errorf("depmod: %w", err)
	}
	if err := depmod(base, kver); err != nil {
		return err
	}
	out, err := os.ReadDir(filepath.Join(base, filepath.FromSlash(dir)))
	if err != nil {
		return fmt.Errorf("depmod: %w", err)
	}
	wrote := 0
	for _, f := range out {
		if f.IsDir() || !strings.HasPrefix(f.Name(), "modules.") || slices.Contains(depmodInputs, f.Name()) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(base, filepath.FromSlash(dir), f.Name()))
		if err != nil {
			return fmt.Errorf("depmod: %w", err)
		}
		t.WriteFile(path.Join(dir, f.Name()), data, 0o644, tree.Root)
		wrote++
	}
	if wrote == 0 {
		return fmt.Errorf("depmod wrote no index files for kernel %s", kver)
	}
	return nil
}

// depmodPath is kmod's depmod on a merged-/usr Debian host.
const depmodPath = "/usr/sbin/depmod"

// HostDepmod runs the build host's depmod (Debian package kmod) on base.
func HostDepmod(base, kver string) error {
	out, err := exec.Command(depmodPath, "-b", base, kver).CombinedOutput()
	if err != nil {
		return fmt.Errorf("depmod -b %s %s: %v: %s (is the Debian package kmod installed?)", base, kver, err, bytes.TrimSpace(out))
	}
	return nil
}

// CachedDepmod runs depmod through a cache in dir: the index files depmod
// wrote for a module folder with the same files (names and contents) are
// reused, which spares a warm rebuild the run.
func CachedDepmod(dir string, depmod Depmod) Depmod {
	return func(base, kver string) error {
		mods := filepath.Join(base, filepath.FromSlash(Dir(kver)))
		key, err := folderKey(mods, kver)
		if err != nil {
			return fmt.Errorf("depmod cache: %w", err)
		}
		entry := filepath.Join(dir, key)
		if names, err := os.ReadDir(entry); err == nil && len(names) > 0 {
			for _, n := range names {
				b, err := os.ReadFile(filepath.Join(entry, n.Name()))
				if err != nil {
					return fmt.Errorf("depmod cache: %w", err)
				}
				if err := os.WriteFile(filepath.Join(mods, n.Name()), b, 0o644); err != nil {
					return fmt.Errorf("depmod cache: %w", err)
				}
			}
			return nil
		}
		if err := depmod(base, kver); err != nil {
			return err
		}
		// Stored in a temporary folder renamed into place: a cut-short
		// store is never taken for a complete one.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("depmod cache: %w", err)
		}
		tmp, err := os.MkdirTemp(dir, ".partial-")
		if err != nil {
			return fmt.Errorf("depmod cache: %w", err)
		}
		defer os.RemoveAll(tmp)
		out, err := os.ReadDir(mods)
		if err != nil {
			return fmt.Errorf("depmod cache: %w", err)
		}
		for _, f := range out {
			if f.IsDir() || !strings.HasPrefix(f.Name(), "modules.") || slices.Contains(depmodInputs, f.Name()) {
				continue
			}
			b, err := os.ReadFile(filepath.Join(mods, f.Name()))
			if err != nil {
				return fmt.Errorf("depmod cache: %w", err)
			}
			if err := os.WriteFile(filepath.Join(tmp, f.Name()), b, 0o644); err != nil {
				return fmt.Errorf("depmod cache: %w", err)
			}
		}
		if err := os.Rename(tmp, entry); err != nil && !os.IsExist(err) && !errors.Is(err, syscall.ENOTEMPTY) {
			return fmt.Errorf("depmod cache: %w", err)
		}
		return nil
	}
}

// folderKey hashes the names and contents of the files under dir.
func folderKey(dir, kver string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "nodebake depmod 1\x00%s\x00", kver)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)[:16]), nil
}

// Package hosttools checks, before any work starts, that the programs a
// command runs are installed, and names the Debian package of each one
// that is missing.
//
// Programs is also the one place that says where every host program the
// repository runs comes from, tests included: internal/hostcheck (run by
// `make check`) fails when code runs a program missing here, or when a
// package named here is not one the Makefile installs. A fresh Debian
// machine then has everything `make test` runs.
package hosttools

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Tool is a program (or file) and the Debian package that provides it.
type Tool struct {
	Name    string // looked up on PATH, or a path if it starts with "/"
	Package string
}

// GoToolchain is the Package of the go command. The README asks for Go
// itself: Debian 12's golang package is older than go.mod allows, so no
// Debian package is named and the Makefile installs none.
const GoToolchain = "Go ≥ 1.22 from go.dev (not a Debian package)"

// Programs lists every program, and every file, that nodebake or its tests
// (unit and QEMU) run or read on the build host, with its Debian package.
// Programs that only the device runs are not here: internal/hostcheck
// lists them apart.
var Programs = []Tool{
	// nodebake build
	{"mmdebstrap", "mmdebstrap"},
	{"tar2sqfs", "squashfs-tools-ng"},
	{"/usr/sbin/depmod", "kmod"}, // the module index of a trimmed module tree
	{"git", "git"},               // the QEMU tests publish the checkout as a module version (git ls-files)
	{"go", GoToolchain},          // cross-compiles /init and nodectl; builds the stand-ins

	// QEMU runner (nodebake qemu and the boot tests)
	{"qemu-system-x86_64", "qemu-system-x86"},
	{"socat", "socat"}, // relays guest connections to the host
	{"/usr/share/OVMF/OVMF_CODE_4M.fd", "ovmf"},
	{"/usr/share/OVMF/OVMF_VARS_4M.fd", "ovmf"},

	// Tests: squashfs images in the layout the device expects, read back
	{"mksquashfs", "squashfs-tools"},
	{"unsquashfs", "squashfs-tools"},
	// Bench: the root back as a tar, for a bare tar2sqfs run, and
	// unpacked, changed and packed again for the delta sizes
	{"sqfs2tar", "squashfs-tools-ng"},
	// Tests: verity, partitions and file systems checked by Debian's own tools
	{"veritysetup", "cryptsetup-bin"},
	{"sgdisk", "gdisk"},
	{"sfdisk", "fdisk"},
	{"mkfs.vfat", "dosfstools"},
	{"fsck.vfat", "dosfstools"},
	{"mmd", "mtools"},
	{"mcopy", "mtools"},
	{"mtype", "mtools"},
	{"mkfs.ext4", "e2fsprogs"},
	{"e2fsck", "e2fsprogs"},
	{"resize2fs", "e2fsprogs"}, // also run by the device's first-boot agent
	{"zstd", "zstd"},
	{"ssh-keygen", "openssh-client"},
	{"gpg", "gpg"}, // checks the stand-in releases' signatures as a person would
	{"/usr/lib/systemd/boot/efi/systemd-bootx64.efi", "systemd-boot-efi"}, // the QEMU runner's boot test
	{"cp", "coreutils"},
	{"cmp", "diffutils"},
	{"tar", "tar"},
	{"/bin/sh", "dash"},    // the SSH client test's server runs commands with it
	{"dpkg-query", "dpkg"}, // make check asks it which package installed a program
	// Tests: systemd's own version order, which the boot loader sorts by
	{"systemd-analyze", "systemd"},
}

// Build is what `nodebake build` runs.
var Build = programs("mmdebstrap", "tar2sqfs", "/usr/sbin/depmod", "go")

// Qemu is what `nodebake qemu` needs (it forwards host ports only, so no
// socat); `make qemu` installs their packages (QEMU_PACKAGES).
var Qemu = programs("qemu-system-x86_64", "/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd")

// programs picks names from Programs, so that a package is named once.
func programs(names ...string) []Tool {
	var tools []Tool
	for _, n := range names {
		i := 0
		for i < len(Programs) && Programs[i].Name != n {
			i++
		}
		if i == len(Programs) {
			panic("hosttools: " + n + " is not in Programs")
		}
		tools = append(tools, Programs[i])
	}
	return tools
}

// Check returns an error naming every missing tool and the apt-get line
// that installs them.
func Check(tools []Tool) error {
	var missing, pkgs []string
	for _, t := range tools {
		var err error
		if strings.HasPrefix(t.Name, "/") {
			_, err = os.Stat(t.Name)
		} else {
			_, err = exec.LookPath(t.Name)
		}
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s (package %s)", t.Name, t.Package))
			if t.Package != GoToolchain {
				pkgs = append(pkgs, t.Package)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	msg := "missing host tools: " + strings.Join(missing, ", ")
	if len(pkgs) > 0 {
		msg += "\n  install them with: sudo apt-get install " + strings.Join(pkgs, " ")
	}
	return fmt.Errorf("%s", msg)
}

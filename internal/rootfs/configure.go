package rootfs

import (
	"archive/tar"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/overlays"
	"github.com/nodebake/nodebake/internal/tree"
	"github.com/nodebake/nodebake/spec"
)

// Units enabled in every image (in addition to what Debian's packages enable
// themselves). Debian leaves networkd and nftables off; an appliance needs
// them on, and its root is read-only, so it happens here.
var Units = []string{
	"systemd-networkd.service",
	"systemd-resolved.service",
	"systemd-timesyncd.service",
	"nftables.service",
	"ssh.service",
	"tor.service",
	"nodebake-firstboot.service",
	"nodebake-connect.service",
	"tmp.mount",
}

// DemoNotice is what a demo image (stand-in release binaries) says wherever
// a person or a program looks: os-release, manifest, console, Fulcrum banner.
const DemoNotice = "DEMO — stand-in binaries, not for real use"

// Configure turns a plain Debian userland into a nodebake root, in this
// order: drop what must not be shared or is not needed, set the identity,
// add users, apply overlays (nodebake's, the services', then the spec's)
// and enable units. It returns the manifest, which WriteManifest records
// once the artifacts are in.
func Configure(t *tree.Tree, s *spec.Spec) (*contract.Manifest, error) {
	trim(t)
	if err := identity(t, s); err != nil {
		return nil, err
	}
	if err := AddUsers(t, s.Users); err != nil {
		return nil, err
	}
	AuthorizedKeys(t, s.Users)
	units := Units
	builtin := []struct {
		name  string
		fsys  fs.FS
		on    bool
		units []string
	}{
		{"nodebake base", overlays.Base(), true, nil},
		{"bitcoind", overlays.Bitcoind(), s.Artifacts.BitcoinCore != nil, []string{"bitcoind.service", "nodebake-sync-watch.service", "nodebake-disk-guard.timer"}},
		{"fulcrum", overlays.Fulcrum(), s.Artifacts.Fulcrum != nil, []string{"fulcrum.service"}},
	}
	for _, o := range builtin {
		if !o.on {
			continue
		}
		if err := overlays.Apply(t, o.fsys, o.name, s); err != nil {
			return nil, err
		}
		units = append(units[:len(units):len(units)], o.units...)
	}
	for _, o := range s.Overlays {
		dir := o
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(s.Dir, o)
		}
		if err := overlays.Apply(t, overlays.Dir(dir), o, s); err != nil {
			return nil, err
		}
	}
	// Debian ships tmp.mount as an example only; /tmp must be a tmpfs on a
	// read-only root.
	tmp, err := t.ReadFile("usr/share/systemd/tmp.mount")
	if err != nil {
		return nil, fmt.Errorf("tmp.mount: %w", err)
	}
	t.WriteFile("etc/systemd/system/tmp.mount", tmp, 0o644, tree.Root)
	if err := updates(t, s); err != nil {
		return nil, err
	}
	units = append(units[:len(units):len(units)], updateUnits...)
	for _, u := range units {
		if err := Enable(t, u); err != nil {
			return nil, err
		}
	}
	// The machine-id is already this device's own, kept on /data and bound
	// over /etc/machine-id by /init; with /etc writable (an overlay, for
	// passwords) systemd would otherwise try to "commit" it into /etc and fail.
	Mask(t, "systemd-machine-id-commit.service")
	// Units that cost boot time and do nothing here: e2scrub checks ext4
	// on LVM snapshots (the data partition is plain ext4);
	// the hwdb is compiled into the read-only image already.
	for _, u := range []string{"e2scrub_reap.service", "e2scrub_all.timer", "systemd-hwdb-update.service"} {
		Mask(t, u)
	}
	return manifest(t, s)
}

// trim removes what must not be shared between devices (host keys, machine
// id) and what an appliance never reads (docs, man pages, Debian's initrd).
func trim(t *tree.Tree) {
	for _, p := range t.Glob("etc/ssh/ssh_host_*") {
		t.Remove(p)
	}
	for _, p := range append(t.Glob("boot/initrd.img*"), "initrd.img", "initrd.img.old") {
		t.Remove(p)
	}
	for _, p := range append(t.Glob("dev/*"), t.Glob("var/log/*.log")...) {
		t.Remove(p) // /dev is a devtmpfs on the device; logs are per device
	}
	t.RemoveMatch(func(p string, e *tree.Entry) bool {
		doc, ok := strings.CutPrefix(p, "usr/share/doc/")
		// Keep copyright files: the image redistributes the packages.
		return ok && strings.Count(doc, "/") == 1 && !strings.HasSuffix(doc, "/copyright")
	})
	for _, d := range []string{"usr/share/man", "usr/share/info", "usr/share/lintian", "usr/share/linda"} {
		t.Remove(d)
	}
	for _, p := range t.Glob("usr/share/locale/*") {
		if !strings.HasSuffix(p, "/locale.alias") {
			t.Remove(p)
		}
	}
	// Full perl is in the userland only for usrmerge, which did its work
	// when mmdebstrap made it; perl-base (/usr/bin/perl, what debconf
	// needs) stays.
	for _, g := range []string{"usr/share/perl/*", "usr/lib/x86_64-linux-gnu/perl/*", "usr/lib/x86_64-linux-gnu/libperl.so*"} {
		for _, p := range t.Glob(g) {
			t.Remove(p)
		}
	}
	// udev reads only the compiled hwdb.bin; its sources are for
	// systemd-hwdb update, which a read-only root never runs (masked in
	// Configure).
	for _, p := range t.Glob("usr/lib/udev/hwdb.d/*.hwdb") {
		t.Remove(p)
	}
	for _, p := range t.Glob("var/lib/apt/lists/*") {
		t.Remove(p)
	}
	for _, p := range t.Glob("var/cache/apt/*.bin") {
		t.Remove(p)
	}
}

func identity(t *tree.Tree, s *spec.Spec) error {
	// An empty machine-id in the image: /init binds this device's own id from
	// /data over it.
	t.WriteFile("etc/machine-id", nil, 0o444, tree.Root)
	t.Symlink("/etc/machine-id", "var/lib/dbus/machine-id")
	t.Symlink("../run/systemd/resolve/stub-resolv.conf", "etc/resolv.conf")
	for _, d := range []string{"data", "dev", "proc", "sys", "run", "tmp", "home", "var/log/journal"} {
		t.MkdirAll(d, 0o755, tree.Root)
	}
	osr, err := t.ReadFile("usr/lib/os-release")
	if err != nil {
		return fmt.Errorf("os-release: %w", err)
	}
	t.WriteFile("usr/lib/os-release", OSRelease(osr, s), 0o644, tree.Root)
	return nil
}

var osKey = regexp.MustCompile(`^(IMAGE_ID|IMAGE_VERSION|VARIANT|VARIANT_ID)=`)

// OSRelease adds the image's identity to Debian's os-release, as
// os-release(5) intends for image-based systems.
func OSRelease(debian []byte, s *spec.Spec) []byte {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(string(debian), "\n"), "\n") {
		if !osKey.MatchString(line) {
			b.WriteString(line + "\n")
		}
	}
	variant := "nodebake appliance"
	if s.Demo {
		variant += ", " + DemoNotice
	}
	fmt.Fprintf(&b, "VARIANT=\"%s\"\nVARIANT_ID=nodebake\nIMAGE_ID=%s\nIMAGE_VERSION=%s\n", variant, s.Name, s.Version)
	return []byte(b.String())
}

// Kernel returns the version of the one kernel in the userland.
func Kernel(t *tree.Tree) (string, error) {
	var found []string
	for _, p := range t.Glob("boot/vmlinuz-*") {
		if e, _ := t.Get(p); e.Type == tar.TypeReg {
			found = append(found, strings.TrimPrefix(p, "boot/vmlinuz-"))
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("kernel: want exactly one /boot/vmlinuz-*, found %d (%s): is linux-image-amd64 installed?", len(found), strings.Join(found, ", "))
	}
	return found[0], nil
}

func manifest(t *tree.Tree, s *spec.Spec) (*contract.Manifest, error) {
	status, err := t.ReadFile("var/lib/dpkg/status")
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	pkgs, err := ParseStatus(status)
	if err != nil {
		return nil, err
	}
	kver, err := Kernel(t)
	if err != nil {
		return nil, err
	}
	epoch, err := spec.Epoch()
	if err != nil {
		return nil, err
	}
	m := &contract.Manifest{Name: s.Name, Version: s.Version, Epoch: epoch.Unix(), Suite: s.Debian.Suite, Kernel: kver, Packages: pkgs}
	if s.Demo {
		m.Demo = DemoNotice
	}
	if u := s.Update; u != nil {
		m.Update = &contract.Update{PublicKey: strings.TrimSpace(u.PublicKey), Source: strings.TrimSpace(u.Source)}
	}
	return m, nil
}

// WriteManifest records m in the image.
func WriteManifest(t *tree.Tree, m *contract.Manifest) {
	t.WriteFile(strings.TrimPrefix(contract.ManifestPath, "/"), m.JSON(), 0o644, tree.Root)
}

// updateUnits are enabled in every image: the ESP mounted on demand at
// /efi (systemd-bless-boot and nodectl update need it) and the boot
// assessment that stands before boot-complete.target.
var updateUnits = []string{"efi.automount", "nodebake-health.service"}

// updates prepares the root for over-the-air updates: the ESP's mount unit,
// which names this image's ESP by its PARTUUID (efi.automount, from the
// base overlay, mounts it), the update key and source the spec names, and
// with a schedule, the timer of automatic updates. Without a key nothing
// is baked in, and nodectl update refuses every bundle.
func updates(t *tree.Tree, s *spec.Spec) error {
	mnt := strings.TrimPrefix(contract.ESPMount, "/")
	t.MkdirAll(mnt, 0o700, tree.Root)
	t.WriteFile("etc/systemd/system/efi.mount", espMount(contract.UUID(s.Name, contract.ESP)), 0o644, tree.Root)
	if s.Update == nil {
		return nil
	}
	// The spec has validated both; the files hold one line each.
	t.WriteFile(strings.TrimPrefix(contract.UpdateKeyPath, "/"), []byte(strings.TrimSpace(s.Update.PublicKey)+"\n"), 0o644, tree.Root)
	if s.Update.Source != "" {
		t.WriteFile(strings.TrimPrefix(contract.UpdateSourcePath, "/"), []byte(strings.TrimSpace(s.Update.Source)+"\n"), 0o644, tree.Root)
	}
	if s.Update.Insecure {
		t.WriteFile(strings.TrimPrefix(contract.UpdateInsecurePath, "/"), []byte("true\n"), 0o644, tree.Root)
	}
	if s.Update.Schedule != "" {
		sc, err := contract.ParseSchedule(s.Update.Schedule)
		if err != nil {
			return err
		}
		t.WriteFile(strings.TrimPrefix(contract.UpdateSchedulePath, "/"), []byte(sc.String()+"\n"), 0o644, tree.Root)
		t.WriteFile("etc/systemd/system/nodebake-update.timer", updateTimer(sc), 0o644, tree.Root)
		return Enable(t, "nodebake-update.timer")
	}
	return nil
}

// updateTimer starts nodebake-update.service when sc's window opens, at a
// random moment in its first quarter (an hour at most), so that a fleet
// does not ask its source all at once, and leaves the rest of the window
// to download and reboot.
func updateTimer(sc contract.Schedule) []byte {
	spread := min(sc.Length/4, time.Hour)
	return fmt.Appendf(nil, `# nodebake: the automatic update window from image.yaml's update.schedule.
[Unit]
Description=nodebake automatic update window: %s

[Timer]
OnCalendar=%s
RandomizedDelaySec=%d
AccuracySec=1min

[Install]
WantedBy=timers.target
`, sc, sc.OnCalendar(), int(spread.Seconds()))
}

// espMount is the mount unit of the ESP at contract.ESPMount. It is written
// here rather than kept in the base overlay because the PARTUUID depends on
// the image name.
func espMount(partUUID string) []byte {
	return fmt.Appendf(nil, `# nodebake: this disk's EFI system partition, by its PARTUUID (fixed for the
# image name). systemd-bless-boot marks a booted entry good here and nodectl
# update writes kernels and boot entries. efi.automount mounts it when first
# used and unmounts it when idle, so the FAT is clean at almost any moment
# the power may go. Only root may read it.
[Unit]
Description=EFI System Partition
Documentation=man:systemd-bless-boot.service(8)

[Mount]
What=/dev/disk/by-partuuid/%s
Where=%s
Type=vfat
Options=umask=0077,nodev,nosuid,noexec
DirectoryMode=0700
`, partUUID, contract.ESPMount)
}

package spec

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/artifact"
	"github.com/nodebake/nodebake/internal/bytesize"
	"github.com/nodebake/nodebake/internal/kmodules"
	"github.com/nodebake/nodebake/ota"
)

// Defaults: the MiniBolt node, so a spec only says what differs from it.
var (
	defaultPorts      = []int{22, 50001, 50002}
	defaultComponents = []string{"main", "non-free-firmware"}
	// The guide's kernel settings for zram ("Slow devices mode").
	defaultSysctl = map[string]string{
		"vm.vfs_cache_pressure":     "500",
		"vm.swappiness":             "100",
		"vm.dirty_background_ratio": "1",
		"vm.dirty_ratio":            "50",
	}
)

// DefaultModuleProfile keeps the modules a headless x86-64 node needs.
const DefaultModuleProfile = "headless"

// MinSlotSize is the smallest root slot that can hold Debian's kernel,
// systemd and the services; a smaller slot_size is refused before building.
const MinSlotSize = 512 * bytesize.MiB

func (s *Spec) applyDefaults() {
	d := &s.Debian
	if d.Suite == "" {
		d.Suite = "bookworm"
	}
	if d.Mirror == "" {
		d.Mirror = "http://deb.debian.org/debian"
	}
	if d.Components == nil {
		d.Components = defaultComponents
	}
	if s.Hostname == "" {
		s.Hostname = s.Name
	}
	if s.Firewall.AllowTCP == nil {
		s.Firewall.AllowTCP = defaultPorts
	}
	if s.Zram.Size == "" {
		s.Zram.Size = "ram / 2"
	}
	if s.Zram.Compression == "" {
		s.Zram.Compression = "zstd"
	}
	if s.Sysctl == nil {
		s.Sysctl = defaultSysctl
	}
	for i := range s.Users {
		if s.Users[i].Shell == "" {
			s.Users[i].Shell = "/bin/bash"
		}
	}
	s.Artifacts.Each(artifact.Defaults)
	if s.Kernel.Modules.Profile == "" {
		s.Kernel.Modules.Profile = DefaultModuleProfile
	}
	if s.Disk.ESPSize == 0 {
		s.Disk.ESPSize = 256 * bytesize.MiB
	}
	if s.Disk.SlotSize == 0 {
		s.Disk.SlotSize = 1 * bytesize.GiB
	}
	if s.Disk.DataSize == 0 {
		s.Disk.DataSize = 256 * bytesize.MiB
	}
}

// What image.yaml's strings may hold. Each lands in a line-based file or
// an argument list (sources.list and mmdebstrap's arguments, /etc/passwd,
// group, shadow, sudoers, authorized_keys, os-release, the boot entry), where
// a line break, ':' or ',' would add an entry of the spec writer's choosing:
// a [trusted=yes] repository whose package scripts run on the build host, a
// uid-0 account without a password. So every such field has a character set
// without them. Go's "$" matches only at the very end: no (?m) here.
var (
	reHostname = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// A Debian suite or codename (bookworm, stable, bookworm-backports) and
	// an archive area (main, non-free-firmware).
	reSuite     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)
	reComponent = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)
	// A Debian package name (Policy 5.6.1), optionally pinned to a version
	// (Policy 5.6.12: [epoch:]upstream[-revision]) or taken from a suite, as
	// apt and mmdebstrap's --include read them.
	rePackage = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(=([0-9]+:)?[0-9][A-Za-z0-9.+~-]*|/[a-z][a-z0-9-]*)?$`)
	// Debian's NAME_REGEX for accounts (adduser.conf), also used for groups.
	reUser = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	// A login shell: an absolute path of plain characters (no ':' or line
	// break for /etc/passwd, no space for the shells list).
	reShell  = regexp.MustCompile(`^(/[A-Za-z0-9._+-]+)+$`)
	reSysctl = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_-]+)+$`)
	reValue  = regexp.MustCompile(`^[^\n\r]+$`)
	// A kernel module name, or a folder of the module tree ending in "/".
	reModule = regexp.MustCompile(`^([A-Za-z0-9_-]{1,64}|[a-z0-9_-]+(/[A-Za-z0-9_.-]+)*/)$`)
)

// validate returns every problem; paths follow the YAML keys.
func (s *Spec) validate() Errors {
	var errs Errors
	bad := func(path, format string, args ...any) {
		errs = append(errs, Error{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if s.APIVersion != APIVersion {
		bad("apiVersion", "got %q, want %q", s.APIVersion, APIVersion)
	}
	// The name and version go into os-release, the boot entry, file names
	// and every update's manifest, which holds them to the same rules.
	if err := contract.CheckName(s.Name); err != nil {
		bad("name", "%v", err)
	}
	if err := contract.CheckVersion(s.Version); err != nil {
		bad("version", "%v", err)
	}
	if !reHostname.MatchString(s.Hostname) {
		bad("hostname", "%q: want a host name of lower-case letters, digits and '-'", s.Hostname)
	}

	if !reSuite.MatchString(s.Debian.Suite) {
		bad("debian.suite", "%q: want a Debian suite or codename such as bookworm (lower-case letters, digits and '-')", s.Debian.Suite)
	}
	if err := checkMirror(s.Debian.Mirror); err != nil {
		bad("debian.mirror", "%v", err)
	}
	if len(s.Debian.Components) == 0 {
		bad("debian.components", "empty: want at least main")
	}
	for i, c := range s.Debian.Components {
		if !reComponent.MatchString(c) {
			bad(fmt.Sprintf("debian.components[%d]", i), "%q: want an archive area such as main or non-free-firmware (lower-case letters, digits and '-')", c)
		}
	}
	for i, p := range s.Debian.Packages {
		if !rePackage.MatchString(p) {
			bad(fmt.Sprintf("debian.packages[%d]", i), "%q is not a Debian package name (optionally with =VERSION or /SUITE)", p)
		}
	}

	uids, names := map[int]bool{}, map[string]bool{}
	for i, u := range s.Users {
		p := fmt.Sprintf("users[%d]", i)
		switch {
		case !reUser.MatchString(u.Name):
			bad(p+".name", "%q: want a user name of lower-case letters, digits, '_' and '-'", u.Name)
		case names[u.Name]:
			bad(p+".name", "user %q declared twice", u.Name)
		}
		names[u.Name] = true
		switch {
		case u.UID < 1000 || u.UID > 59999:
			bad(p+".uid", "%d: want 1000–59999 (Debian's range for accounts; system ids belong to packages)", u.UID)
		case uids[u.UID]:
			bad(p+".uid", "%d is used by another user", u.UID)
		}
		uids[u.UID] = true
		if !reShell.MatchString(u.Shell) {
			bad(p+".shell", "%q: want an absolute path of letters, digits and ._+- such as /bin/bash", u.Shell)
		}
		for j, g := range u.Groups {
			if !reUser.MatchString(g) {
				bad(fmt.Sprintf("%s.groups[%d]", p, j), "%q: want a group name of lower-case letters, digits, '_' and '-'", g)
			}
		}
		for j, k := range u.SSHAuthorizedKeys {
			if err := checkAuthorizedKey(k); err != nil {
				bad(fmt.Sprintf("%s.ssh_authorized_keys[%d]", p, j), "%v", err)
			}
		}
	}

	if _, ok := kmodules.Profiles[s.Kernel.Modules.Profile]; !ok {
		bad("kernel.modules.profile", "%q: want one of %s", s.Kernel.Modules.Profile, strings.Join(slices.Sorted(maps.Keys(kmodules.Profiles)), ", "))
	}
	for i, m := range s.Kernel.Modules.Extra {
		if !reModule.MatchString(m) || strings.Contains(m, "..") {
			bad(fmt.Sprintf("kernel.modules.extra[%d]", i), "%q: want a module name such as i915 or a folder of the module tree such as drivers/net/wireless/", m)
		}
	}

	seen := map[int]bool{}
	for i, port := range s.Firewall.AllowTCP {
		p := fmt.Sprintf("firewall.allow_tcp[%d]", i)
		switch {
		case port < 1 || port > 65535:
			bad(p, "port %d: want 1–65535", port)
		case seen[port]:
			bad(p, "port %d listed twice", port)
		}
		seen[port] = true
	}

	onions := map[string]bool{}
	for i, o := range s.Tor.OnionServices {
		p := fmt.Sprintf("tor.onion_services[%d]", i)
		if !reUser.MatchString(o.Name) || onions[o.Name] {
			bad(p+".name", "%q: want a unique name of lower-case letters, digits and '_'", o.Name)
		}
		onions[o.Name] = true
		if len(o.Ports) == 0 {
			bad(p+".ports", "an onion service needs at least one port")
		}
		for j, port := range o.Ports {
			if port < 1 || port > 65535 {
				bad(fmt.Sprintf("%s.ports[%d]", p, j), "port %d: want 1–65535", port)
			}
		}
	}

	switch s.Zram.Compression {
	case "zstd", "lz4", "lzo-rle", "lzo":
	default:
		bad("zram.compression", "%q: want zstd, lz4, lzo-rle or lzo", s.Zram.Compression)
	}
	if !reValue.MatchString(s.Zram.Size) {
		bad("zram.size", "%q: want a zram-generator size expression such as \"ram / 2\"", s.Zram.Size)
	}

	for k, v := range s.Sysctl {
		if !reSysctl.MatchString(k) {
			bad("sysctl."+k, "not a sysctl key (want e.g. vm.swappiness)")
		}
		if !reValue.MatchString(v) {
			bad("sysctl."+k, "value must be one non-empty line")
		}
	}

	for i, o := range s.Overlays {
		if err := s.checkOverlay(o); err != nil {
			bad(fmt.Sprintf("overlays[%d]", i), "%v", err)
		}
	}

	s.Artifacts.Each(func(kind string, c *artifact.Config) {
		for _, e := range c.Validate() {
			bad("artifacts."+kind+"."+e.Path, "%s", e.Msg)
		}
	})
	if s.Artifacts.BitcoinCore == nil && s.Artifacts.Fulcrum != nil {
		bad("artifacts.fulcrum", "Fulcrum needs bitcoind: add artifacts.bitcoin-core")
	}

	if u := s.Update; u != nil {
		if u.PublicKey == "" {
			bad("update.public_key", "missing: updates need the public key `nodebake keygen` wrote to KEY.pub (or leave out update: to disable updates)")
		} else if _, err := ota.ParsePublicKey(u.PublicKey); err != nil {
			bad("update.public_key", "%v", err)
		}
		if u.Source != "" {
			if _, err := ota.ParseSource(u.Source, u.Insecure); err != nil {
				bad("update.source", "%v", err)
			}
		}
		if u.Schedule != "" {
			if _, err := contract.ParseSchedule(u.Schedule); err != nil {
				bad("update.schedule", "%v", err)
			} else if u.Source == "" {
				bad("update.schedule", "automatic updates need update.source to look in")
			}
		}
	}

	d := s.Disk
	sized := true
	for _, f := range []struct {
		path     string
		v        Size
		min, max Size
		why      string
		whyMax   string
	}{
		{"disk.esp_size", d.ESPSize, 64 * bytesize.MiB, 4 * bytesize.GiB, "FAT32 and two slots' kernels and initramfs",
			"an ESP holds only systemd-boot and two kernels and initramfs (some 30 MB)"},
		{"disk.slot_size", d.SlotSize, MinSlotSize, 64 * bytesize.GiB, "the root filesystem of a Debian node",
			"the image holds two slots, and every update writes and checks a whole slot"},
		{"disk.data_size", d.DataSize, 64 * bytesize.MiB, MaxDisk, "the first-boot state; it grows to fill the disk on the device",
			"the data partition grows on the device; the image only needs its first-boot state"},
	} {
		switch {
		case f.v%bytesize.MiB != 0:
			bad(f.path, "%s: want a whole number of MiB (partitions are MiB-aligned)", f.v)
		case f.v < f.min:
			bad(f.path, "%s is too small for %s: want at least %s", f.v, f.why, f.min)
		case f.v > f.max:
			bad(f.path, "%s is too large: want at most %s (%s)", f.v, f.max, f.whyMax)
			sized = false
		}
	}
	// Only with each size bounded can the sum not wrap.
	if t := d.Total(); sized && t > int64(MaxDisk) {
		bad("disk", "the image would be %s: want at most %s, the largest file ext4 holds", Size(t), MaxDisk)
	}
	return errs
}

// MaxDisk is the largest image file: 16 TiB, the largest file ext4 holds
// with 4 KiB blocks, on the build host where the image is written.
const MaxDisk Size = 16 * 1024 * bytesize.GiB

// checkMirror accepts an http(s) URL with a host and nothing mmdebstrap
// could read as more than a URL: it takes an argument with a space as a
// whole sources.list line, options and all.
func checkMirror(m string) error {
	if strings.ContainsFunc(m, func(r rune) bool { return r <= ' ' || r == 0x7f || strings.ContainsRune(`"'\<>`, r) }) {
		return fmt.Errorf("%q: a mirror URL may not hold spaces, line breaks, control characters, quotes or '\\'", clip(m))
	}
	u, err := url.Parse(m)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an http:// or https:// URL", clip(m))
	}
	return nil
}

// checkAuthorizedKey accepts one authorized_keys line: a key, with options
// if any. ParseAuthorizedKey reads only the first line and would let a
// second key through.
func checkAuthorizedKey(k string) error {
	if strings.ContainsAny(k, "\n\r") {
		return fmt.Errorf("one key per entry: a line break would add keys")
	}
	if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
		return fmt.Errorf("not an SSH public key: %v", err)
	}
	return nil
}

// clip shortens a value quoted in a message: a hostile one may be long.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

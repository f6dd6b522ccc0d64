package spec

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"

	"golang.org/x/crypto/ssh"

	"github.com/nodebake/nodebake/internal/artifact"
	"github.com/nodebake/nodebake/internal/bytesize"
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

var (
	reName     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	reVersion  = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+~-]{0,63}$`)
	reHostname = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	rePackage  = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	reUser     = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	reSysctl   = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_-]+)+$`)
	reValue    = regexp.MustCompile(`^[^\n\r]+$`)
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
	if !reName.MatchString(s.Name) {
		bad("name", "%q: want lower-case letters, digits and '-', starting with a letter", s.Name)
	}
	if !reVersion.MatchString(s.Version) {
		bad("version", "%q: want a version such as 1.0.0", s.Version)
	}
	if !reHostname.MatchString(s.Hostname) {
		bad("hostname", "%q: want a host name of lower-case letters, digits and '-'", s.Hostname)
	}

	if u, err := url.Parse(s.Debian.Mirror); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("debian.mirror", "%q: want an http:// or https:// URL", s.Debian.Mirror)
	}
	for i, p := range s.Debian.Packages {
		if !rePackage.MatchString(p) {
			bad(fmt.Sprintf("debian.packages[%d]", i), "%q is not a Debian package name", p)
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
		if !filepath.IsAbs(u.Shell) {
			bad(p+".shell", "%q: want an absolute path", u.Shell)
		}
		for j, k := range u.SSHAuthorizedKeys {
			if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
				bad(fmt.Sprintf("%s.ssh_authorized_keys[%d]", p, j), "not an SSH public key: %v", err)
			}
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
		dir := o
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(s.Dir, dir)
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			bad(fmt.Sprintf("overlays[%d]", i), "%s is not a directory", dir)
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
	}

	d := s.Disk
	for _, f := range []struct {
		path string
		v    Size
		min  Size
		why  string
	}{
		{"disk.esp_size", d.ESPSize, 64 * bytesize.MiB, "FAT32 and two slots' kernels and initramfs"},
		{"disk.slot_size", d.SlotSize, MinSlotSize, "the root filesystem of a Debian node"},
		{"disk.data_size", d.DataSize, 64 * bytesize.MiB, "the first-boot state; it grows to fill the disk on the device"},
	} {
		switch {
		case f.v%bytesize.MiB != 0:
			bad(f.path, "%s: want a whole number of MiB (partitions are MiB-aligned)", f.v)
		case f.v < f.min:
			bad(f.path, "%s is too small for %s: want at least %s", f.v, f.why, f.min)
		}
	}
	return errs
}

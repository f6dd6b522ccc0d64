// Package spec reads image.yaml: the one file that describes an image.
//
// Load does three things in order — decode strictly (unknown fields and wrong
// types are errors), fill in defaults, validate — and reports every problem
// as "image.yaml:LINE: field.path: what is wrong" before any build work starts.
package spec

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/artifact"
	"github.com/nodebake/nodebake/internal/bytesize"
	"gopkg.in/yaml.v3"
)

// APIVersion is the only spec version this build understands.
const APIVersion = "nodebake/v1"

// Spec is the whole of image.yaml.
type Spec struct {
	APIVersion string            `yaml:"apiVersion"`
	Name       string            `yaml:"name"`
	Version    string            `yaml:"version"`
	Hostname   string            `yaml:"hostname"`
	Debian     Debian            `yaml:"debian"`
	Users      []User            `yaml:"users"`
	Firewall   Firewall          `yaml:"firewall"`
	Tor        Tor               `yaml:"tor"`
	Zram       Zram              `yaml:"zram"`
	Sysctl     map[string]string `yaml:"sysctl"`
	Overlays   []string          `yaml:"overlays"`
	Disk       Disk              `yaml:"disk"`
	Kernel     Kernel            `yaml:"kernel"`
	Artifacts  Artifacts         `yaml:"artifacts"`
	// Demo marks an image built from stand-in releases (make demo-image):
	// it says so in os-release, the manifest, the console and Fulcrum's banner.
	Demo bool `yaml:"demo"`
	// Update enables over-the-air updates (nodectl update). Without it the
	// image accepts no update bundle: devices are updated by reflashing.
	Update *Update `yaml:"update"`

	// Dir is the folder image.yaml was read from; relative paths in the
	// spec (overlays) are resolved against it.
	Dir string `yaml:"-"`
	// File is the path image.yaml was read from, for messages.
	File string `yaml:"-"`
	// doc is the parsed YAML, for the lines of problems found later.
	doc *yaml.Node
}

// Problem reports something wrong with the field at path that only the
// build can see (a kernel module the kernel lacks), in Load's form:
// "image.yaml:LINE: path: msg".
func (s *Spec) Problem(path, msg string) error {
	return Errors{{Path: path, Msg: msg}}.withLines(s.File, s.doc)
}

// Debian selects the userland mmdebstrap builds.
type Debian struct {
	Suite      string   `yaml:"suite"`
	Mirror     string   `yaml:"mirror"`
	Components []string `yaml:"components"`
	// Packages are installed on top of BasePackages.
	Packages []string `yaml:"packages"`
}

// User is an account baked into /etc/passwd with a fixed id, so files on
// /data keep their owners across image updates.
type User struct {
	Name              string   `yaml:"name"`
	UID               int      `yaml:"uid"`
	Groups            []string `yaml:"groups"`
	Shell             string   `yaml:"shell"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys"`
	// Sudo grants passwordless sudo: the account has no password at all, so
	// a password prompt could never be answered.
	Sudo bool `yaml:"sudo"`
}

// Firewall is nftables with inbound default-deny; only these ports open.
type Firewall struct {
	AllowTCP []int `yaml:"allow_tcp"`
}

// Tor declares onion services; their keys are made on each device.
type Tor struct {
	OnionServices []OnionService `yaml:"onion_services"`
}

// OnionService maps onion ports to local ports of the same number.
type OnionService struct {
	Name  string `yaml:"name"`
	Ports []int  `yaml:"ports"`
}

// Zram configures compressed swap in RAM (systemd-zram-generator).
type Zram struct {
	Enabled     *bool  `yaml:"enabled"`
	Size        string `yaml:"size"`
	Compression string `yaml:"compression"`
}

// On reports whether zram swap is enabled (the default).
func (z Zram) On() bool { return z.Enabled == nil || *z.Enabled }

// Artifacts are the verified release binaries baked into the image; an
// artifact left out is not installed.
type Artifacts struct {
	BitcoinCore *artifact.Config `yaml:"bitcoin-core"`
	Fulcrum     *artifact.Config `yaml:"fulcrum"`
}

// Each calls f for every configured artifact with its kind.
func (a Artifacts) Each(f func(kind string, c *artifact.Config)) {
	if a.BitcoinCore != nil {
		f(contract.BitcoinCore, a.BitcoinCore)
	}
	if a.Fulcrum != nil {
		f(contract.Fulcrum, a.Fulcrum)
	}
}

// Update names the key that signs update bundles and where devices look
// for them.
type Update struct {
	// PublicKey is the one line `nodebake keygen` writes to KEY.pub:
	// "ed25519:<base64>". Devices accept only bundles signed by its
	// private key.
	PublicKey string `yaml:"public_key"`
	// Source is where `nodectl update check|apply` looks:
	// "oci://REGISTRY/REPOSITORY:TAG" or the https:// URL of a folder
	// written by `nodebake publish`. Optional: without it, bundles are
	// copied onto the device and applied from the file.
	Source string `yaml:"source"`
	// Insecure lets devices reach their source over plain HTTP (an
	// http:// URL, a registry without TLS): for a lab network only.
	Insecure bool `yaml:"insecure"`
	// Schedule turns on automatic updates: "daily 03:00-05:00" or
	// "sat,sun 22:00-02:00" (contract.ParseSchedule), in the device's
	// time (UTC). A timer checks the source when the window opens;
	// the device downloads, installs and reboots inside the window.
	// Off when empty.
	Schedule string `yaml:"schedule"`
}

// Kernel says which of the kernel's modules the image keeps.
type Kernel struct {
	Modules Modules `yaml:"modules"`
}

// Modules is a profile (internal/kmodules.Profiles: headless, the
// default, or all) and the modules to keep on top of it: module names
// ("i915", "iwlwifi") or folders of the kernel's module tree ending in "/"
// ("drivers/net/wireless/"). What they need by modules.dep, and the
// firmware they name, stay too.
type Modules struct {
	Profile string   `yaml:"profile"`
	Extra   []string `yaml:"extra"`
}

// Disk sizes the partitions of the image file. The data partition is grown
// on the device to fill the disk; its size here is only its initial size.
type Disk struct {
	ESPSize  Size `yaml:"esp_size"`
	SlotSize Size `yaml:"slot_size"`
	DataSize Size `yaml:"data_size"`
}

// Total is the size of the image file: 1 MiB before the first partition for
// the GPT, the partitions, and 1 MiB at the end for the backup GPT.
func (d Disk) Total() int64 {
	return int64(2*bytesize.MiB + d.ESPSize + 2*d.SlotSize + d.DataSize)
}

// Load reads, defaults and validates the spec at path.
func Load(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return Parse(b, path, filepath.Dir(abs))
}

// CheckSyntax reports a YAML syntax error in b as "name:LINE: message",
// like every other spec error, for tools that read the YAML themselves
// before nodebake build does (make demo-image rewrites the spec).
func CheckSyntax(b []byte, name string) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return syntaxError(name, err)
	}
	return nil
}

// Parse is Load for bytes already read; name is used in messages, dir
// resolves relative paths.
func Parse(b []byte, name, dir string) (*Spec, error) {
	s, doc, err := decode(b, name)
	if err != nil {
		return nil, err
	}
	s.File, s.Dir, s.doc = name, dir, doc
	s.applyDefaults()
	if errs := s.validate(); len(errs) > 0 {
		return nil, errs.withLines(name, doc)
	}
	return s, nil
}

// Epoch is the time every file in the image is stamped with: the
// SOURCE_DATE_EPOCH of the build environment when set, else a fixed date, so
// that two builds of one spec are identical by default.
func Epoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Unix(defaultEpoch, 0).UTC(), nil
	}
	var n int64
	if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", v)
	}
	return time.Unix(n, 0).UTC(), nil
}

// defaultEpoch is 2026-01-01T00:00:00Z.
const defaultEpoch = 1767225600

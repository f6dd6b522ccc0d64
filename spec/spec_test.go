package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/internal/bytesize"
)

func TestRepositorySpecLoads(t *testing.T) {
	s, err := Load("../image.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "minibolt" || s.Hostname != "minibolt" {
		t.Errorf("name/hostname = %q/%q", s.Name, s.Hostname)
	}
	if got := s.Firewall.AllowTCP; len(got) != 3 || got[0] != 22 || got[1] != 50001 || got[2] != 50002 {
		t.Errorf("allow_tcp = %v", got)
	}
	if s.Disk.SlotSize != bytesize.GiB || s.Disk.Total() != int64(2*bytesize.MiB+256*bytesize.MiB+2*bytesize.GiB+256*bytesize.MiB) {
		t.Errorf("disk = %+v total %d", s.Disk, s.Disk.Total())
	}
	if s.Sysctl["vm.swappiness"] != "100" {
		t.Errorf("sysctl = %v", s.Sysctl)
	}
}

const minimal = `apiVersion: nodebake/v1
name: node
version: 1.0.0
`

func TestDefaults(t *testing.T) {
	s, err := Parse([]byte(minimal), "image.yaml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if s.Debian.Suite != "bookworm" || s.Debian.Mirror != "http://deb.debian.org/debian" {
		t.Errorf("debian defaults: %+v", s.Debian)
	}
	if len(s.Firewall.AllowTCP) != 3 || s.Hostname != "node" || !s.Zram.On() || s.Zram.Compression != "zstd" {
		t.Errorf("defaults: %+v", s)
	}
	if s.Disk.ESPSize != 256*bytesize.MiB || s.Disk.SlotSize != bytesize.GiB {
		t.Errorf("disk defaults: %+v", s.Disk)
	}
	if s.Kernel.Modules.Profile != "headless" || len(s.Kernel.Modules.Extra) != 0 {
		t.Errorf("kernel module defaults: %+v", s.Kernel.Modules)
	}
}

// Each bad input is refused with the file, the line of the offending field,
// its path and what is wrong.
func TestRejects(t *testing.T) {
	cases := map[string]struct{ yaml, want string }{
		"unknown field": {minimal + "debian:\n  suite: bookworm\n  colour: blue\n",
			`image.yaml:6: debian.colour: unknown field "colour"`},
		"wrong type": {minimal + "firewall:\n  allow_tcp: [ssh]\n",
			"image.yaml:5: firewall.allow_tcp: wrong type: got !!str `ssh` into int"},
		"port range": {minimal + "firewall:\n  allow_tcp: [22, 70000]\n",
			"image.yaml:5: firewall.allow_tcp[1]: port 70000: want 1–65535"},
		"slot too small": {minimal + "disk:\n  slot_size: 100MiB\n",
			"image.yaml:5: disk.slot_size: 100MiB is too small for the root filesystem of a Debian node: want at least 512MiB"},
		"size syntax": {minimal + "disk:\n  esp_size: lots\n",
			`image.yaml:5: disk.esp_size: size "lots": want a whole number`},
		"unaligned": {minimal + "disk:\n  data_size: 100000\n",
			"disk.data_size: 100000: want a whole number of MiB"},
		"module profile": {minimal + "kernel:\n  modules:\n    profile: desktop\n",
			`image.yaml:6: kernel.modules.profile: "desktop": want one of all, headless`},
		"module name": {minimal + "kernel:\n  modules:\n    extra: [i915, \"../../etc\"]\n",
			`image.yaml:6: kernel.modules.extra[1]: "../../etc": want a module name such as i915 or a folder of the module tree such as drivers/net/wireless/`},
		"api version": {strings.Replace(minimal, "nodebake/v1", "nodebake/v9", 1),
			`image.yaml:1: apiVersion: got "nodebake/v9", want "nodebake/v1"`},
		"missing version": {"apiVersion: nodebake/v1\nname: node\n",
			`image.yaml:1: version: "": want a version`},
		"bad uid": {minimal + "users:\n  - name: admin\n    uid: 5\n",
			"image.yaml:6: users[0].uid: 5: want 1000–59999"},
		"duplicate uid": {minimal + "users:\n  - name: a\n    uid: 1000\n  - name: b\n    uid: 1000\n",
			"image.yaml:8: users[1].uid: 1000 is used by another user"},
		"bad key": {minimal + "users:\n  - name: admin\n    uid: 1000\n    ssh_authorized_keys: [\"ssh-ed25519 nope\"]\n",
			"image.yaml:7: users[0].ssh_authorized_keys[0]: not an SSH public key"},
		"bad package": {minimal + "debian:\n  packages: [\"Bad Name\"]\n",
			`image.yaml:5: debian.packages[0]: "Bad Name" is not a Debian package name`},
		"bad mirror": {minimal + "debian:\n  mirror: ftp://example\n",
			"image.yaml:5: debian.mirror"},
		"onion without ports": {minimal + "tor:\n  onion_services:\n    - name: x\n",
			"tor.onion_services[0].ports: an onion service needs at least one port"},
		"zram algorithm": {minimal + "zram:\n  compression: gzip\n",
			`image.yaml:5: zram.compression: "gzip": want zstd`},
		"missing overlay": {minimal + "overlays: [nothere]\n",
			"image.yaml:4: overlays[0]: "},
		"hostname": {minimal + "hostname: Not_Valid\n",
			`image.yaml:4: hostname: "Not_Valid"`},
		"syntax":                {"apiVersion: [\n", "image.yaml:1: did not find expected node content"},
		"syntax without a line": {"\t", "image.yaml:1: found character that cannot start any token"},
		"empty":                 {"# nothing\n", "image.yaml:1: empty spec"},
		"artifact signer": {minimal + "artifacts:\n  bitcoin-core:\n    signers:\n      - name: x\n        fingerprint: nothex\n        key: https://example.org/x.asc\n",
			"image.yaml:8: artifacts.bitcoin-core.signers[0].fingerprint: "},
		"artifact url": {minimal + "artifacts:\n  bitcoin-core:\n    base_url: ftp://x/\n",
			"image.yaml:6: artifacts.bitcoin-core.base_url: "},
		"fulcrum alone": {minimal + "artifacts:\n  fulcrum:\n    version: 1.11.1\n",
			"artifacts.fulcrum: Fulcrum needs bitcoind"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml), "image.yaml", t.TempDir())
			if err == nil {
				t.Fatalf("accepted:\n%s", c.yaml)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, c.want)
			}
		})
	}
}

// All problems are reported in one go, in line order.
func TestArtifactDefaults(t *testing.T) {
	s, err := Parse([]byte(minimal+"artifacts:\n  bitcoin-core: {}\n  fulcrum:\n    version: 1.11.1\n"), "image.yaml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bc, f := s.Artifacts.BitcoinCore, s.Artifacts.Fulcrum
	if bc.Version != "30.2" || bc.MinSignatures != 3 || len(bc.Signers) != 5 || bc.Tarball != "bitcoin-30.2-x86_64-linux-gnu.tar.gz" {
		t.Errorf("bitcoin-core defaults: %+v", bc)
	}
	if f.Tarball != "Fulcrum-1.11.1-x86_64-linux.tar.gz" || f.Signers[0].Fingerprint != "D465135F97D0047E18E99DC321810A542031C02C" {
		t.Errorf("fulcrum defaults: %+v", f)
	}
	if s2, _ := Parse([]byte(minimal), "image.yaml", t.TempDir()); s2.Artifacts.BitcoinCore != nil {
		t.Error("an image without artifacts got one")
	}
}

func TestAllErrorsAtOnce(t *testing.T) {
	y := minimal + "firewall:\n  allow_tcp: [0]\ndisk:\n  slot_size: 1MiB\n"
	_, err := Parse([]byte(y), "image.yaml", t.TempDir())
	se, ok := err.(*SpecError)
	if !ok || len(se.List) != 2 {
		t.Fatalf("want 2 errors, got %v", err)
	}
	if se.List[0].Line != 5 || se.List[1].Line != 7 {
		t.Fatalf("lines %d, %d; want 5, 7", se.List[0].Line, se.List[1].Line)
	}
}

func TestOverlayRelativeToSpec(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "extra"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "image.yaml")
	if err := os.WriteFile(p, []byte(minimal+"overlays: [extra]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err != nil {
		t.Fatal(err)
	}
}

func TestEpoch(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	e, err := Epoch()
	if err != nil || e.Unix() != 1700000000 {
		t.Fatalf("Epoch() = %v, %v", e, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := Epoch(); err == nil {
		t.Fatal("accepted SOURCE_DATE_EPOCH=yesterday")
	}
}

// make demo-image reads the YAML before nodebake build does: a syntax
// error there reads like every other spec error (image.yaml:LINE:).
func TestCheckSyntax(t *testing.T) {
	b, err := os.ReadFile("../image.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSyntax(b, "image.yaml"); err != nil {
		t.Fatalf("the repository's image.yaml: %v", err)
	}
	lines := strings.Split(string(b), "\n")
	lines[8] = "\tbad: x"
	err = CheckSyntax([]byte(strings.Join(lines, "\n")), "image.yaml")
	if err == nil || err.Error() != "image.yaml:9: found character that cannot start any token" {
		t.Fatalf("a tab on line 9: %v, want image.yaml:9: found character that cannot start any token", err)
	}
}

package rootfs

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/tree"
	"github.com/nodebake/nodebake/spec"
)

// debianish is the smallest tree Configure accepts: the files it reads from
// a Debian userland, with contents as Debian ships them.
func debianish(t *testing.T) *tree.Tree {
	t.Helper()
	tr := tree.New()
	files := map[string]string{
		"etc/passwd":                                    "root:x:0:0:root:/root:/bin/bash\n_ssh:x:100:65534::/run/sshd:/usr/sbin/nologin\n",
		"etc/group":                                     "root:x:0:\nsudo:x:27:\nshadow:x:42:\nsystemd-journal:x:999:\n",
		"etc/shadow":                                    "root:*:20000:0:99999:7:::\n",
		"etc/gshadow":                                   "root:*::\nsudo:*::\nshadow:*::\nsystemd-journal:!*::\n",
		"etc/ssh/ssh_host_ed25519_key":                  "PRIVATE",
		"etc/ssh/ssh_host_ed25519_key.pub":              "PUBLIC",
		"boot/vmlinuz-6.1.0-50-amd64":                   "kernel",
		"boot/initrd.img-6.1.0-50-amd64":                "debian initrd",
		"usr/share/doc/tor/changelog.gz":                "x",
		"usr/share/doc/tor/copyright":                   "GPL",
		"usr/share/man/man1/tor.1.gz":                   "x",
		"usr/share/perl/5.36.0/strict.pm":               "x",
		"usr/lib/x86_64-linux-gnu/perl/5.36.0/POSIX.pm": "x",
		"usr/lib/x86_64-linux-gnu/perl-base/strict.pm":  "x",
		"usr/lib/x86_64-linux-gnu/libperl.so.5.36":      "x",
		"usr/lib/udev/hwdb.d/20-OUI.hwdb":               "x",
		"usr/lib/udev/hwdb.bin":                         "x",
		"usr/share/locale/de/LC_MESSAGES/x.mo":          "x",
		"usr/lib/os-release":                            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nIMAGE_ID=old\n",
		"usr/share/systemd/tmp.mount":                   "[Mount]\nWhat=tmpfs\n[Install]\nWantedBy=local-fs.target\n",
		"var/lib/dpkg/status": "Package: tor\nStatus: install ok installed\nArchitecture: amd64\nVersion: 0.4.9.11-0+deb12u1\n\n" +
			"Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n" +
			"Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b9\n",
	}
	for p, c := range files {
		tr.WriteFile(p, []byte(c), 0o644, tree.Root)
	}
	for _, u := range Units {
		if strings.HasPrefix(u, "nodebake-") || u == "tmp.mount" {
			continue
		}
		tr.WriteFile("usr/lib/systemd/system/"+u, []byte("[Unit]\nDescription=x\n\n[Install]\nWantedBy=multi-user.target\n"), 0o644, tree.Root)
	}
	tr.Symlink("ssh.service", "usr/lib/systemd/system/sshd.service")
	return tr
}

func testSpec(t *testing.T) *spec.Spec {
	t.Helper()
	s, err := spec.Parse([]byte(`apiVersion: nodebake/v1
name: node
version: 1.2.3
hostname: node1
users:
  - name: admin
    uid: 1000
    groups: [sudo, bitcoin]
    sudo: true
    ssh_authorized_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHvP8e0k2bM4c5qA9xg0Tq0Jb8q3N1c0xQm6a4M8l1aH admin@laptop"]
  - name: bitcoin
    uid: 1001
    shell: /usr/sbin/nologin
firewall:
  allow_tcp: [22, 50002]
tor:
  onion_services: [{name: fulcrum, ports: [50001, 50002]}]
`), "image.yaml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func read(t *testing.T, tr *tree.Tree, p string) string {
	t.Helper()
	b, err := tr.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConfigure(t *testing.T) {
	tr := debianish(t)
	m, err := Configure(tr, testSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	if m.Kernel != "6.1.0-50-amd64" || len(m.Packages) != 2 || m.Packages[0].Name != "bash" || m.Packages[1].Version != "0.4.9.11-0+deb12u1" {
		t.Fatalf("manifest = %+v", m)
	}
	WriteManifest(tr, m)
	if !strings.Contains(read(t, tr, strings.TrimPrefix(contract.ManifestPath, "/")), `"name": "tor"`) {
		t.Error("manifest not in the image")
	}
	for _, gone := range []string{"etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.pub", "boot/initrd.img-6.1.0-50-amd64",
		"usr/share/doc/tor/changelog.gz", "usr/share/man", "usr/share/locale/de",
		"usr/share/perl/5.36.0", "usr/lib/x86_64-linux-gnu/perl/5.36.0", "usr/lib/x86_64-linux-gnu/libperl.so.5.36",
		"usr/lib/udev/hwdb.d/20-OUI.hwdb"} {
		if _, ok := tr.Get(gone); ok {
			t.Errorf("%s still in the image", gone)
		}
	}
	if _, ok := tr.Get("usr/share/doc/tor/copyright"); !ok {
		t.Error("copyright file trimmed")
	}
	if got := read(t, tr, "etc/machine-id"); got != "" {
		t.Errorf("machine-id %q: the image must not carry one", got)
	}
	if got := read(t, tr, "etc/hostname"); got != "node1\n" {
		t.Errorf("hostname %q", got)
	}
	osr := read(t, tr, "usr/lib/os-release")
	if !strings.Contains(osr, "IMAGE_ID=node\nIMAGE_VERSION=1.2.3\n") || strings.Contains(osr, "IMAGE_ID=old") || !strings.Contains(osr, "ID=debian") {
		t.Errorf("os-release:\n%s", osr)
	}
	nft := read(t, tr, "etc/nftables.conf")
	if !strings.Contains(nft, "policy drop;") || !strings.Contains(nft, "tcp dport { 22, 50002 } accept") || strings.Contains(nft, "50001") {
		t.Errorf("nftables.conf:\n%s", nft)
	}
	torrc := read(t, tr, "etc/tor/torrc")
	for _, want := range []string{"HiddenServiceDir /var/lib/tor/hidden_service_fulcrum/", "HiddenServiceVersion 3",
		"HiddenServicePoWDefensesEnabled 1", "HiddenServicePort 50001 127.0.0.1:50001", "HiddenServicePort 50002 127.0.0.1:50002"} {
		if !strings.Contains(torrc, want) {
			t.Errorf("torrc lacks %q:\n%s", want, torrc)
		}
	}
	sshd := read(t, tr, "etc/ssh/sshd_config.d/10-nodebake.conf")
	for _, want := range []string{"PasswordAuthentication no", "PermitRootLogin no", "AllowUsers admin\n"} {
		if !strings.Contains(sshd, want) {
			t.Errorf("sshd drop-in lacks %q:\n%s", want, sshd)
		}
	}
	if e, _ := tr.Get("etc/sudoers.d/nodebake"); e == nil || e.Mode.Perm() != 0o440 {
		t.Errorf("sudoers drop-in mode: %+v", e)
	}
	if !strings.Contains(read(t, tr, "etc/ssh/authorized_keys/admin"), "admin@laptop") {
		t.Error("admin's key not baked")
	}
	if _, ok := tr.Get("etc/ssh/authorized_keys/bitcoin"); ok {
		t.Error("bitcoin got an authorized_keys file")
	}
	zram := read(t, tr, "etc/systemd/zram-generator.conf")
	if !strings.Contains(zram, "compression-algorithm = zstd") || !strings.Contains(zram, "zram-size = ram / 2") {
		t.Errorf("zram-generator.conf:\n%s", zram)
	}
	sysctl := read(t, tr, "etc/sysctl.d/90-nodebake.conf")
	for _, want := range []string{"vm.vfs_cache_pressure = 500", "vm.swappiness = 100", "vm.dirty_background_ratio = 1", "vm.dirty_ratio = 50"} {
		if !strings.Contains(sysctl, want) {
			t.Errorf("sysctl lacks %q", want)
		}
	}
	for _, link := range []string{
		"etc/systemd/system/multi-user.target.wants/nftables.service",
		"etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
		"etc/systemd/system/multi-user.target.wants/nodebake-firstboot.service",
		"etc/systemd/system/local-fs.target.wants/tmp.mount",
	} {
		if e, ok := tr.Get(link); !ok || e.Link == "" {
			t.Errorf("%s not enabled", link)
		}
	}
	for _, kept := range []string{"usr/lib/x86_64-linux-gnu/perl-base/strict.pm", "usr/lib/udev/hwdb.bin"} {
		if _, ok := tr.Get(kept); !ok {
			t.Errorf("%s was removed", kept)
		}
	}
	for _, u := range []string{"systemd-machine-id-commit.service", "e2scrub_reap.service", "e2scrub_all.timer", "systemd-hwdb-update.service"} {
		if e, ok := tr.Get("etc/systemd/system/" + u); !ok || e.Link != "/dev/null" {
			t.Errorf("%s is not masked", u)
		}
	}
	for _, dir := range []string{"data", "proc", "sys", "dev", "run", "tmp"} {
		if _, ok := tr.Get(dir); !ok {
			t.Errorf("mount point /%s missing", dir)
		}
	}
}

func TestUsers(t *testing.T) {
	tr := debianish(t)
	if err := AddUsers(tr, testSpec(t).Users); err != nil {
		t.Fatal(err)
	}
	passwd := read(t, tr, "etc/passwd")
	if !strings.Contains(passwd, "admin:x:1000:1000::/home/admin:/bin/bash\n") || !strings.Contains(passwd, "bitcoin:x:1001:1001::/home/bitcoin:/usr/sbin/nologin\n") {
		t.Errorf("passwd:\n%s", passwd)
	}
	group := read(t, tr, "etc/group")
	for _, want := range []string{"sudo:x:27:admin\n", "bitcoin:x:1001:admin\n", "admin:x:1000:\n"} {
		if !strings.Contains(group, want) {
			t.Errorf("group lacks %q:\n%s", want, group)
		}
	}
	shadow := read(t, tr, "etc/shadow")
	if !strings.Contains(shadow, "admin:*:") {
		t.Errorf("admin must have no usable password yet stay unlocked:\n%s", shadow)
	}
	if e, _ := tr.Get("etc/shadow"); e.Mode.Perm() != 0o640 || e.GID != 42 {
		t.Errorf("shadow mode %v gid %d", e.Mode, e.GID)
	}
}

func TestUserErrors(t *testing.T) {
	cases := map[string]struct {
		users []spec.User
		want  string
	}{
		"unknown group": {[]spec.User{{Name: "a", UID: 1000, Groups: []string{"wheel"}}}, `group "wheel" does not exist`},
		"taken name":    {[]spec.User{{Name: "root", UID: 1000}}, "root already exists"},
		"taken uid":     {[]spec.User{{Name: "x", UID: 100}}, "uid 100 already belongs"},
		"shell line break": {[]spec.User{{Name: "a", UID: 1000, Shell: "/bin/sh\nroot2::0:0::/root:/bin/sh"}},
			`"/bin/sh\nroot2::0:0::/root:/bin/sh" of user "a" holds ':', ',' or a line break`},
		"group comma": {[]spec.User{{Name: "a", UID: 1000, Shell: "/bin/sh", Groups: []string{"sudo,adm"}}}, `"sudo,adm" of user "a" holds`},
		"two keys": {[]spec.User{{Name: "a", UID: 1000, Shell: "/bin/sh", SSHAuthorizedKeys: []string{"ssh-ed25519 AAAA\nssh-ed25519 BBBB"}}},
			`a key of user "a" holds a line break`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := AddUsers(debianish(t), c.users)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestEnable(t *testing.T) {
	tr := tree.New()
	tr.WriteFile("usr/lib/systemd/system/a.service", []byte("[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target graphical.target\nRequiredBy=b.service\nAlias=alias-a.service\nAlso=a.socket\n"), 0o644, tree.Root)
	tr.WriteFile("usr/lib/systemd/system/a.socket", []byte("[Install]\nWantedBy=sockets.target\n"), 0o644, tree.Root)
	tr.WriteFile("usr/lib/systemd/system/static.service", []byte("[Service]\nExecStart=/bin/true\n"), 0o644, tree.Root)
	if err := Enable(tr, "a.service"); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"etc/systemd/system/multi-user.target.wants/a.service": "/usr/lib/systemd/system/a.service",
		"etc/systemd/system/graphical.target.wants/a.service":  "/usr/lib/systemd/system/a.service",
		"etc/systemd/system/b.service.requires/a.service":      "/usr/lib/systemd/system/a.service",
		"etc/systemd/system/alias-a.service":                   "/usr/lib/systemd/system/a.service",
		"etc/systemd/system/sockets.target.wants/a.socket":     "/usr/lib/systemd/system/a.socket",
	} {
		if e, ok := tr.Get(link); !ok || e.Link != target {
			t.Errorf("%s → %+v, want → %s", link, e, target)
		}
	}
	if err := Enable(tr, "static.service"); err == nil || !strings.Contains(err.Error(), "no [Install] section") {
		t.Errorf("static unit: %v", err)
	}
	if err := Enable(tr, "nope.service"); err == nil || !strings.Contains(err.Error(), "is its package in debian.packages?") {
		t.Errorf("missing unit: %v", err)
	}
}

// Userland refuses, before running anything, a Debian section that would
// hand mmdebstrap another repository or argument.
func TestUserlandRefusesInjection(t *testing.T) {
	good := spec.Debian{Suite: "bookworm", Mirror: "http://deb.debian.org/debian", Components: []string{"main"}, Packages: []string{"less"}}
	for name, c := range map[string]struct {
		edit func(d *spec.Debian)
		want string
	}{
		"mirror with a line": {func(d *spec.Debian) { d.Mirror = "deb [trusted=yes] http://evil.example/ x main" }, `debian.mirror "deb [trusted=yes]`},
		"suite line break":   {func(d *spec.Debian) { d.Suite = "bookworm\ndeb x" }, `debian.suite "bookworm\ndeb x"`},
		"component comma":    {func(d *spec.Debian) { d.Components = []string{"main,x"} }, `debian.components "main,x"`},
		"package comma":      {func(d *spec.Debian) { d.Packages = []string{"less,evil"} }, `debian.packages "less,evil"`},
	} {
		t.Run(name, func(t *testing.T) {
			d := good
			c.edit(&d)
			_, err := Userland(context.Background(), d, time.Unix(0, 0), t.TempDir(), nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Userland: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestParseStatusEmpty(t *testing.T) {
	if _, err := ParseStatus([]byte("Package: x\nStatus: deinstall ok config-files\n")); err == nil {
		t.Fatal("no installed packages accepted")
	}
}

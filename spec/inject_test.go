package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testSSHKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHvP8e0k2bM4c5qA9xg0Tq0Jb8q3N1c0xQm6a4M8l1aH"

// Strings that land in line-based files (sources.list, /etc/passwd,
// authorized_keys, os-release, the boot entry) or in mmdebstrap's
// arguments are refused when they could add a line or an argument there.
func TestRejectsInjection(t *testing.T) {
	user := func(field string) string {
		return minimal + "users:\n  - name: admin\n    uid: 1000\n    " + field + "\n"
	}
	cases := map[string]struct{ yaml, want string }{
		"suite line break": {minimal + "debian:\n  suite: \"bookworm\\ndeb [trusted=yes] http://evil.example/ x main\"\n",
			`image.yaml:5: debian.suite: "bookworm\ndeb [trusted=yes] http://evil.example/ x main": want a Debian suite`},
		"suite option": {minimal + "debian:\n  suite: \"--hook-dir=/tmp\"\n",
			`image.yaml:5: debian.suite: "--hook-dir=/tmp": want a Debian suite`},
		"component line break": {minimal + "debian:\n  components: [main, \"contrib\\ndeb [trusted=yes] http://evil.example/ x main\"]\n",
			`image.yaml:5: debian.components[1]: "contrib\ndeb [trusted=yes] http://evil.example/ x main": want an archive area`},
		"component comma": {minimal + "debian:\n  components: [\"main,evil\"]\n",
			`image.yaml:5: debian.components[0]: "main,evil": want an archive area`},
		"no components": {minimal + "debian:\n  components: []\n",
			"image.yaml:5: debian.components: empty: want at least main"},
		"mirror space": {minimal + "debian:\n  mirror: \"[trusted=yes] http://evil.example/debian\"\n",
			"image.yaml:5: debian.mirror: \"[trusted=yes] http://evil.example/debian\": a mirror URL may not hold spaces"},
		"mirror line break": {minimal + "debian:\n  mirror: \"http://deb.debian.org/debian\\ndeb [trusted=yes] http://evil.example/ x main\"\n",
			"image.yaml:5: debian.mirror: \"http://deb.debian.org/debian\\ndeb [trusted=yes] http://evil.example/ x main\": a mirror URL may not hold spaces, line breaks"},
		"package comma": {minimal + "debian:\n  packages: [\"less,evil\"]\n",
			`image.yaml:5: debian.packages[0]: "less,evil" is not a Debian package name`},
		"package option": {minimal + "debian:\n  packages: [\"--allow-unauthenticated\"]\n",
			`image.yaml:5: debian.packages[0]: "--allow-unauthenticated" is not a Debian package name`},
		"shell line break": {user(`shell: "/bin/bash\nroot2::0:0::/root:/bin/bash"`),
			`image.yaml:7: users[0].shell: "/bin/bash\nroot2::0:0::/root:/bin/bash": want an absolute path`},
		"shell colon": {user(`shell: "/bin/bash:x"`), `image.yaml:7: users[0].shell: "/bin/bash:x": want an absolute path`},
		"shell space": {user(`shell: "/bin/sh -c x"`), `image.yaml:7: users[0].shell: "/bin/sh -c x": want an absolute path`},
		"group line break": {user(`groups: ["sudo\nroot2::0:"]`),
			`image.yaml:7: users[0].groups[0]: "sudo\nroot2::0:": want a group name`},
		"group comma": {user(`groups: ["sudo,adm"]`), `image.yaml:7: users[0].groups[0]: "sudo,adm": want a group name`},
		"two keys in one": {user(`ssh_authorized_keys: ["` + testSSHKey + `\n` + testSSHKey + ` attacker"]`),
			"image.yaml:7: users[0].ssh_authorized_keys[0]: one key per entry: a line break would add keys"},
		"name line break": {"apiVersion: nodebake/v1\nname: \"node\\nID=evil\"\nversion: 1.0.0\n",
			`image.yaml:2: name: "node\nID=evil": want 1–63 lower-case letters`},
		"name trailing dash": {"apiVersion: nodebake/v1\nname: node-\nversion: 1.0.0\n",
			`image.yaml:2: name: "node-": want 1–63 lower-case letters`},
		"version line break": {"apiVersion: nodebake/v1\nname: node\nversion: \"1.0\\noptions init=/bin/sh\"\n",
			`image.yaml:3: version: "1.0\noptions init=/bin/sh": want a version such as 1.0.0`},
		"version shell": {"apiVersion: nodebake/v1\nname: node\nversion: \"1.0$(id)\"\n",
			`image.yaml:3: version: "1.0$(id)": want a version`},
		"version slash": {"apiVersion: nodebake/v1\nname: node\nversion: \"../../1\"\n",
			`image.yaml:3: version: "../../1": want a version`},
		"hostname line break": {minimal + "hostname: \"node\\n127.0.0.1 evil\"\n",
			`image.yaml:4: hostname: "node\n127.0.0.1 evil": want a host name`},
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

// What the stricter rules still accept.
func TestAcceptsDebianForms(t *testing.T) {
	y := minimal + `debian:
  suite: bookworm-backports
  mirror: https://user@deb.example.org:8443/debian/
  components: [main, contrib, non-free-firmware]
  packages: [python3, g++, libssl3=3.0.15-1~deb12u1, tor/bookworm-backports, xz-utils=1:5.4.1-1]
users:
  - name: admin
    uid: 1000
    groups: [sudo, systemd-journal]
    shell: /usr/bin/zsh
    ssh_authorized_keys: ["from=\"10.0.0.0/8\" ` + strings.ReplaceAll(testSSHKey, `"`, `\"`) + ` me@laptop"]
`
	if _, err := Parse([]byte(y), "image.yaml", t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

// Sizes whose byte count does not fit an int64 are refused instead of
// wrapping (17179869185GiB is 2^64 + 1GiB), and each disk size has a bound.
func TestSizeLimits(t *testing.T) {
	for v, want := range map[string]string{
		"17179869185GiB":      `size "17179869185": too large for a byte count (at most 8589934591GiB)`,
		"9223372036854775807": "",
		"9007199254740992KiB": `size "9007199254740992": too large for a byte count`,
	} {
		_, err := ParseSize(v)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("ParseSize(%q) = %v, want %q", v, err, want)
		}
	}
	for name, c := range map[string]struct{ yaml, want string }{
		"wrapping size": {minimal + "disk:\n  slot_size: 17179869185GiB\n",
			`image.yaml:5: disk.slot_size: size "17179869185": too large for a byte count`},
		"esp": {minimal + "disk:\n  esp_size: 5GiB\n",
			"image.yaml:5: disk.esp_size: 5GiB is too large: want at most 4GiB"},
		"slot": {minimal + "disk:\n  slot_size: 65GiB\n",
			"image.yaml:5: disk.slot_size: 65GiB is too large: want at most 64GiB"},
		"data": {minimal + "disk:\n  data_size: 16385GiB\n",
			"image.yaml:5: disk.data_size: 16385GiB is too large: want at most 16384GiB"},
		"total": {minimal + "disk:\n  slot_size: 64GiB\n  data_size: 16384GiB\n",
			"image.yaml:4: disk: the image would be 16908546MiB: want at most 16384GiB"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml), "image.yaml", t.TempDir())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, c.want)
			}
		})
	}
}

// Overlays are subfolders of the spec's folder holding plain files without
// private keys: a spec must not be able to bake ~/.ssh, the update key or
// other files of the build host into an image that is then published.
func TestOverlayRule(t *testing.T) {
	outside := t.TempDir()
	write(t, filepath.Join(outside, "id_ed25519"), "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n")
	write(t, filepath.Join(outside, "notes"), "harmless\n")

	for name, c := range map[string]struct {
		setup func(dir string) string // makes the folder; returns the overlay as written in the spec
		want  string
	}{
		"absolute path elsewhere": {func(string) string { return outside }, "is outside "},
		"dot dot": {func(dir string) string {
			write(t, filepath.Join(dir, "../elsewhere/notes"), "harmless\n")
			return "../elsewhere"
		}, "is outside "},
		"symlinked folder": {func(dir string) string {
			symlink(t, outside, filepath.Join(dir, "ssh"))
			return "ssh"
		}, "ssh is outside "},
		"the spec's folder": {func(string) string { return "." }, "is the spec's own folder"},
		"symlink inside": {func(dir string) string {
			symlink(t, filepath.Join(outside, "notes"), filepath.Join(dir, "extra/etc/motd"))
			return "extra"
		}, "etc/motd is a symlink: overlays hold plain files"},
		"private key": {func(dir string) string {
			write(t, filepath.Join(dir, "keys/etc/update.key"), "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n")
			return "keys"
		}, "etc/update.key holds a private key"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "spec")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			o := c.setup(dir)
			_, err := Parse([]byte(minimal+"overlays: ["+o+"]\n"), "image.yaml", dir)
			if err == nil || !strings.Contains(err.Error(), "image.yaml:4: overlays[0]: ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error:\n%v\nwant image.yaml:4: overlays[0]: … %s", err, c.want)
			}
		})
	}
}

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

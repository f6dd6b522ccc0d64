//go:build qemu

package qemutests

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/build"
	"github.com/nodebake/nodebake/internal/qemu"
	"github.com/nodebake/nodebake/internal/testvm"
	"github.com/nodebake/nodebake/qemu-tests/internal/guest"
	spdxjson "github.com/spdx/tools-golang/json"
)

// bootTimeout covers a first boot under software emulation: ~25 s to
// systemd, then the data partition is formatted and keys are made.
const bootTimeout = 8 * time.Minute

type booted struct {
	vm      *testvm.VM
	ssh     *guest.Client
	sshAddr string
	console *os.File
}

// boot starts image and logs in as admin over the forwarded SSH port.
func boot(t *testing.T, img string, o qemu.Options) *booted {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	t.Cleanup(cancel)
	port, err := testvm.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.CreateTemp(work, "console-*.log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	o.Image = img
	o.Forwards = append(o.Forwards, qemu.Forward{HostPort: port, GuestPort: 22})
	o.Console = logf
	vm, err := testvm.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		vm.Kill()
		if t.Failed() {
			t.Logf("serial console:\n%s", tail(vm.Console(), 150))
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c, err := guest.Dial(ctx, addr, "admin", adminKey)
	if err != nil {
		t.Fatalf("ssh admin@%s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &booted{vm: vm, ssh: c, sshAddr: addr, console: logf}
}

func (b *booted) run(t *testing.T, cmd string) string {
	t.Helper()
	out, err := b.ssh.Run(cmd)
	if err != nil {
		t.Fatalf("guest: %s: %v", cmd, err)
	}
	return strings.TrimSpace(out)
}

// TestBoot boots the image as a user gets it onto an SSD: written by
// nodebake flash onto a disk full of old bytes, so that every region flash
// skips holds garbage rather than zeros.
func TestBoot(t *testing.T) {
	g := boot(t, flashed(t), qemu.Options{Snapshot: true})

	t.Run("bill of materials", func(t *testing.T) {
		// Every Debian package the device has is in the SPDX document
		// beside the image, at the version the device's dpkg reports.
		f, err := os.Open(build.SBOMPath(image))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		doc, err := spdxjson.Read(f)
		if err != nil {
			t.Fatal(err)
		}
		listed := map[string]string{}
		for _, p := range doc.Packages {
			listed[p.PackageName] = p.PackageVersion
		}
		installed := strings.Split(g.run(t, `dpkg-query -W -f '${db:Status-Status} ${Package} ${Version}\n' | awk '$1 == "installed" {print $2, $3}'`), "\n")
		if len(installed) < 100 {
			t.Fatalf("dpkg-query lists %d installed packages", len(installed))
		}
		for _, line := range installed {
			name, version, _ := strings.Cut(line, " ")
			if listed[name] != version {
				t.Errorf("%s %s is installed; the bill of materials has %q", name, version, listed[name])
			}
		}
		if len(listed) != len(installed)+3 {
			t.Errorf("the bill of materials lists %d packages; want the image, Bitcoin Core, Fulcrum and the %d installed", len(listed), len(installed))
		}
		for _, kind := range []string{"bitcoin-core", "fulcrum"} {
			if listed[kind] == "" {
				t.Errorf("no %s release in the bill of materials", kind)
			}
		}
	})
	t.Run("flashed partition table", func(t *testing.T) {
		labels := strings.Fields(g.run(t, "lsblk -n -r -o PARTLABEL /dev/vda"))
		if strings.Join(labels, " ") != "esp root-a root-b data" {
			t.Errorf("partitions on the flashed disk: %v, want esp root-a root-b data", labels)
		}
	})

	t.Run("multi-user", func(t *testing.T) {
		// Waits for the boot to finish; "degraded" means a unit failed.
		state, _ := g.ssh.Run("systemctl is-system-running --wait")
		if strings.TrimSpace(state) != "running" {
			t.Errorf("system state %q; failed units:\n%s", strings.TrimSpace(state), g.run(t, "systemctl --failed --no-legend --plain"))
		}
		if got := g.run(t, "systemctl is-active multi-user.target"); got != "active" {
			t.Errorf("multi-user.target is %q", got)
		}
	})
	t.Run("services", func(t *testing.T) {
		for _, unit := range []string{"ssh", "tor", "nftables", "systemd-networkd", "systemd-resolved", "systemd-timesyncd"} {
			if got, _ := g.ssh.Run("systemctl is-active " + unit); strings.TrimSpace(got) != "active" {
				t.Errorf("%s is %q", unit, strings.TrimSpace(got))
			}
		}
	})
	t.Run("zram", func(t *testing.T) {
		swaps := g.run(t, "cat /proc/swaps")
		if !strings.Contains(swaps, "/dev/zram0") {
			t.Errorf("no zram swap active:\n%s", swaps)
		}
		if algo := g.run(t, "cat /sys/block/zram0/comp_algorithm"); !strings.Contains(algo, "[zstd]") {
			t.Errorf("zram compression %q, want zstd", algo)
		}
		if v := g.run(t, "cd /proc/sys/vm && cat swappiness vfs_cache_pressure dirty_background_ratio dirty_ratio"); strings.Join(strings.Fields(v), " ") != "100 500 1 50" {
			t.Errorf("sysctl values %q, want the guide's 100 500 1 50", v)
		}
	})
	t.Run("immutable root", func(t *testing.T) {
		root := strings.Fields(g.run(t, "findmnt -n -o FSTYPE,OPTIONS,SOURCE /"))
		if len(root) != 3 || root[0] != "squashfs" || !strings.HasPrefix(root[1], "ro") {
			t.Fatalf("/ is %v, want a read-only squashfs", root)
		}
		table := g.run(t, "sudo dmsetup table $(cat /sys/class/block/$(basename "+root[2]+")/dm/name)")
		if !strings.Contains(table, " verity 1 ") {
			t.Errorf("%s is not a dm-verity device: %q", root[2], table)
		}
		if _, err := g.ssh.Run("sudo touch /usr/bin/nodebake-was-here"); err == nil {
			t.Error("wrote to the root filesystem")
		}
	})
	t.Run("data", func(t *testing.T) {
		data := strings.Fields(g.run(t, "findmnt -n -o FSTYPE,OPTIONS /data"))
		if len(data) != 2 || data[0] != "ext4" || !strings.HasPrefix(data[1], "rw") {
			t.Fatalf("/data is %v, want read-write ext4", data)
		}
		g.run(t, "sudo sh -c 'echo ok > /data/probe && cat /data/probe' && sudo rm /data/probe")
		if id := g.run(t, "cat /etc/machine-id"); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
			t.Errorf("machine-id %q", id)
		}
	})
	t.Run("firewall", func(t *testing.T) {
		rules := g.run(t, "sudo nft list ruleset")
		if !strings.Contains(rules, "hook input priority filter; policy drop;") {
			t.Fatalf("input chain is not default-deny:\n%s", rules)
		}
		if got := tcpPorts(rules); fmt.Sprint(got) != fmt.Sprint(specPorts) {
			t.Errorf("open TCP ports %v, want exactly %v:\n%s", got, specPorts, rules)
		}
	})
	t.Run("identity", func(t *testing.T) {
		if h := g.run(t, "hostname"); h != "minibolt" {
			t.Errorf("hostname %q", h)
		}
		osr := g.run(t, "cat /etc/os-release")
		if !strings.Contains(osr, "IMAGE_ID=minibolt") || !strings.Contains(osr, "IMAGE_VERSION=0.1.0") {
			t.Errorf("os-release:\n%s", osr)
		}
		if groups := strings.Fields(g.run(t, "id -nG admin")); !contains(groups, "sudo") || !contains(groups, "bitcoin") {
			t.Errorf("admin groups: %v, want sudo and bitcoin among them", groups)
		}
		if ids := g.run(t, "id -u bitcoin; id -u fulcrum; id -nG fulcrum"); ids != "1001\n1002\nfulcrum bitcoin" {
			t.Errorf("service users: %q", ids)
		}
	})
	t.Run("ssh policy", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, user := range []string{"admin", "root"} {
			if err := guest.TryPassword(ctx, g.sshAddr, user, user); !errors.Is(err, guest.ErrRefused) {
				t.Errorf("password login as %s: %v, want refused", user, err)
			}
		}
		if keys := g.run(t, "ls /etc/ssh/ | grep -c ssh_host_ || true"); keys != "0" {
			t.Errorf("the image carries SSH host keys: %s", keys)
		}
	})
	t.Run("networking", func(t *testing.T) {
		// mDNS answers <hostname>.local; DNS goes through resolved; NTP is on.
		if st := g.run(t, "resolvectl status"); !strings.Contains(st, "+mDNS") {
			t.Errorf("mDNS is not enabled on any link:\n%s", st)
		}
		if ntp := g.run(t, "timedatectl show -p NTP --value"); ntp != "yes" {
			t.Errorf("NTP = %q", ntp)
		}
		if link := g.run(t, "readlink /etc/resolv.conf"); !strings.Contains(link, "systemd/resolve/stub-resolv.conf") {
			t.Errorf("resolv.conf → %q, want resolved's stub", link)
		}
	})
	t.Run("console banner", func(t *testing.T) {
		// agetty on the serial console renders /etc/issue with the address.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := g.vm.WaitConsole(ctx, regexp.MustCompile(`Address: 10\.0\.2\.15\s+Connect: ssh admin@10\.0\.2\.15`)); err != nil {
			t.Errorf("login screen does not show the address: %v", err)
		}
	})
	t.Run("onion services", func(t *testing.T) {
		// Tor makes each onion service's key on first start, on /data.
		out := g.run(t, "for i in $(seq 60); do sudo test -s /var/lib/tor/hidden_service_fulcrum_tcp_ssl/hostname && break; sleep 2; done; sudo cat /var/lib/tor/hidden_service_fulcrum_tcp_ssl/hostname /var/lib/tor/hidden_service_ssh/hostname")
		if n := len(regexp.MustCompile(`(?m)^[a-z2-7]{56}\.onion$`).FindAllString(out, -1)); n != 2 {
			t.Errorf("want 2 v3 onion addresses, got:\n%s", out)
		}
	})
}

var tcpRule = regexp.MustCompile(`tcp dport (\{ ([0-9, ]+) \}|[0-9]+) accept`)

// tcpPorts lists the TCP ports an nftables ruleset accepts.
func tcpPorts(ruleset string) []int {
	var ports []int
	for _, m := range tcpRule.FindAllStringSubmatch(ruleset, -1) {
		list := m[2]
		if list == "" {
			list = m[1]
		}
		for _, p := range strings.Split(list, ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(p)); err == nil {
				ports = append(ports, n)
			}
		}
	}
	sort.Ints(ports)
	return ports
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// flashed writes the shared image with nodebake flash --yes onto a file of
// the image's size filled with non-zero garbage and returns the file.
func flashed(t *testing.T) string {
	t.Helper()
	st, err := os.Stat(image)
	if err != nil {
		t.Fatal(err)
	}
	dev := filepath.Join(work, "flashed.img")
	t.Cleanup(func() { os.Remove(dev) })
	f, err := os.Create(dev)
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 1<<20)
	rand.Read(junk)
	for off := int64(0); off < st.Size(); off += int64(len(junk)) {
		if _, err := f.Write(junk[:min(int64(len(junk)), st.Size()-off)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nodebakeBin, "flash", "--yes", image, dev).CombinedOutput()
	if err != nil {
		t.Fatalf("nodebake flash: %v\n%s", err, out)
	}
	t.Logf("nodebake flash --yes %s %s:\n%s", filepath.Base(image), filepath.Base(dev), out)
	return dev
}

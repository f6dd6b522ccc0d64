//go:build qemu

package qemutests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/internal/firstboot"
	"github.com/nodebake/nodebake/internal/qemu"
)

// copyImage makes a private, sparse copy of the built image, optionally
// enlarged (as when a user flashes it to a bigger SSD).
func copyImage(t *testing.T, name string, size int64) string {
	t.Helper()
	p := filepath.Join(work, name)
	if out, err := exec.Command("cp", "--sparse=always", image, p).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	t.Cleanup(func() { os.Remove(p) })
	if size > 0 {
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// The rendered settings follow the sizing table for the memory the guest
// detects: the guest's own MemTotal and CPU count, fed to the same pure
// function, give what bitcoin.conf and fulcrum.conf say.
func TestSizingFollowsRAM(t *testing.T) {
	seen := map[string]bool{}
	for _, mib := range []int{2048, 4096} {
		t.Run(fmt.Sprintf("%dMiB", mib), func(t *testing.T) {
			g := boot(t, image, qemu.Options{Snapshot: true, MemoryMiB: mib})
			g.run(t, "systemctl is-active nodebake-firstboot.service")
			memKB, _ := strconv.ParseUint(strings.Fields(g.run(t, "grep MemTotal /proc/meminfo"))[1], 10, 64)
			cpus, _ := strconv.Atoi(g.run(t, "nproc"))
			fv := firstboot.FulcrumVersion(2)
			if v, err := g.ssh.Run("cat /usr/share/nodebake/fulcrum-version"); err == nil {
				if fv, err = firstboot.ParseFulcrumVersion(strings.TrimSpace(v)); err != nil {
					t.Fatal(err)
				}
			}
			want := firstboot.Size(firstboot.Hardware{MemTotal: memKB * 1024, CPUs: cpus}, fv)
			if !want.Budget.Fits() {
				t.Fatalf("the sizing for %d MiB does not fit: %+v", mib, want.Budget)
			}
			bconf := g.run(t, "sudo cat /data/bitcoin/bitcoin.conf") + "\n"
			fconf := g.run(t, "sudo cat /data/fulcrum/fulcrum.conf") + "\n"
			for _, c := range []struct{ conf, line string }{
				{bconf, fmt.Sprintf("\ndbcache=%d\n", want.Bitcoind.DBCacheIBD)},
				{bconf, fmt.Sprintf("\nmaxmempool=%d\n", want.Bitcoind.MaxMempoolIBD)},
				{fconf, fmt.Sprintf("\ndb_mem = %d\n", want.Fulcrum.DBMem)},
				{fconf, fmt.Sprintf("\ndb_max_open_files = %d\n", want.Fulcrum.DBMaxOpenFiles)},
				{fconf, "\nbitcoind_timeout = 600\n"},
				{fconf, "\nworker_threads = 1\n"},
			} {
				if !strings.Contains(c.conf, c.line) {
					t.Errorf("%d MiB: config lacks %q", mib, strings.TrimSpace(c.line))
				}
			}
			if strings.Contains(fconf, "utxo") && fv == 2 {
				t.Error("utxo-cache rendered for Fulcrum 2.x")
			}
			seen[fmt.Sprint(want.Bitcoind.DBCacheIBD, want.Fulcrum.DBMem)] = true
			status := g.run(t, "sudo nodectl status")
			if !strings.Contains(status, "all steps succeeded") {
				t.Errorf("nodectl status:\n%s", status)
			}
		})
	}
	if len(seen) != 2 {
		t.Errorf("2 GiB and 4 GiB got the same memory settings")
	}
}

// secrets is what must differ between two devices and survive a reboot.
type secrets struct{ machineID, hostKey, cert, onions string }

func collect(t *testing.T, g *booted) secrets {
	t.Helper()
	onions := g.run(t, "for i in $(seq 60); do sudo test -s /var/lib/tor/hidden_service_ssh/hostname && break; sleep 2; done; sudo sh -c 'cat /var/lib/tor/hidden_service_*/hostname'")
	return secrets{
		machineID: g.run(t, "cat /etc/machine-id"),
		hostKey:   g.run(t, "sudo ssh-keygen -lf /var/lib/nodebake/ssh/ssh_host_ed25519_key.pub"),
		cert:      g.run(t, "sudo sha256sum /data/fulcrum/cert.pem /data/fulcrum/key.pem"),
		onions:    onions,
	}
}

// Two devices flashed from one image share no secret; a reboot keeps each
// device's own.
func TestPerDeviceSecrets(t *testing.T) {
	a, b := copyImage(t, "device-a.img", 0), copyImage(t, "device-b.img", 0)
	first := boot(t, a, qemu.Options{})
	sa := collect(t, first)
	if err := first.vm.Stop(); err != nil {
		t.Fatalf("power off device a: %v", err)
	}
	again := collect(t, boot(t, a, qemu.Options{}))
	if sa != again {
		t.Errorf("a reboot changed the device's secrets:\nbefore %+v\nafter  %+v", sa, again)
	}
	sb := collect(t, boot(t, b, qemu.Options{}))
	for name, pair := range map[string][2]string{
		"machine-id": {sa.machineID, sb.machineID}, "ssh host key": {sa.hostKey, sb.hostKey},
		"TLS certificate": {sa.cert, sb.cert}, "onion addresses": {sa.onions, sb.onions},
	} {
		if pair[0] == pair[1] || pair[0] == "" {
			t.Errorf("%s shared by two devices: %q", name, pair[0])
		}
	}
}

// A raw image written to a bigger disk ends with /data filling it, and the
// partition table stays valid (checked on the host afterwards).
func TestDataGrowsToFillDisk(t *testing.T) {
	const disk = 20 << 30
	img := copyImage(t, "big.img", disk)
	g := boot(t, img, qemu.Options{})
	g.run(t, "systemctl is-active nodebake-firstboot.service")
	fields := strings.Fields(g.run(t, "lsblk -bdno SIZE /dev/disk/by-partlabel/data; findmnt -bno SIZE /data"))
	if len(fields) != 2 {
		t.Fatalf("lsblk/findmnt: %v", fields)
	}
	part, _ := strconv.ParseInt(fields[0], 10, 64)
	fsSize, _ := strconv.ParseInt(fields[1], 10, 64)
	// The data partition follows ESP and the two slots (2.3 GiB by default)
	// and ends 1 MiB before the end, where the backup GPT lives.
	if part < disk-2600<<20 {
		t.Errorf("data partition is %d bytes on a %d-byte disk", part, int64(disk))
	}
	if fsSize < part*9/10 {
		t.Errorf("/data filesystem is %d bytes in a %d-byte partition", fsSize, part)
	}
	if err := g.vm.Stop(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sgdisk", "-v", img).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v after growing: %v\n%s", err, out)
	}
}

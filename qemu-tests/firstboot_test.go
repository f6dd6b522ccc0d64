//go:build qemu

package qemutests

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/nodebake/nodebake/internal/firstboot"
	"github.com/nodebake/nodebake/internal/pairing"
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
	ga := boot(t, a, qemu.Options{})
	again := collect(t, ga)
	if sa != again {
		t.Errorf("a reboot changed the device's secrets:\nbefore %+v\nafter  %+v", sa, again)
	}
	// Device a's identity, backed up with admin's own authorized_keys on
	// /data, for the restore onto b below.
	ga.run(t, "mkdir -p -m 700 .ssh && echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBackupRestoreTestKeyOnlyForNodebakeQemu0 extra' > .ssh/authorized_keys && chmod 600 .ssh/authorized_keys")
	ga.run(t, "echo 'correct horse battery' > /tmp/pw && sudo nodectl backup -o /tmp/identity.age --passphrase-file /tmp/pw")
	archive, err := base64.StdEncoding.DecodeString(ga.run(t, "sudo base64 -w0 /tmp/identity.age"))
	if err != nil {
		t.Fatal(err)
	}
	gb := boot(t, b, qemu.Options{})
	sb := collect(t, gb)
	for name, pair := range map[string][2]string{
		"machine-id": {sa.machineID, sb.machineID}, "ssh host key": {sa.hostKey, sb.hostKey},
		"TLS certificate": {sa.cert, sb.cert}, "onion addresses": {sa.onions, sb.onions},
	} {
		if pair[0] == pair[1] || pair[0] == "" {
			t.Errorf("%s shared by two devices: %q", name, pair[0])
		}
	}
	t.Run("restore a onto b", func(t *testing.T) { restoreOnto(t, gb, archive, sa, sb) })
}

// restoreOnto restores device a's archive onto the fresh device g (whose
// secrets are sb): a wrong passphrase and a damaged archive change
// nothing; the right one gives g a's onion addresses, certificate and SSH
// host key, which sshd then serves.
func restoreOnto(t *testing.T, g *booted, archive []byte, sa, sb secrets) {
	upload := func(name string, b []byte) {
		g.run(t, "echo "+base64.StdEncoding.EncodeToString(b)+" | base64 -d > /tmp/"+name)
	}
	damaged := bytes.Clone(archive)
	damaged[len(damaged)/2] ^= 1
	upload("identity.age", archive)
	upload("damaged.age", damaged)
	g.run(t, "echo 'correct horse battery' > /tmp/pw && echo 'wrong horse battery' > /tmp/wrong")
	for _, c := range []string{"--passphrase-file /tmp/wrong /tmp/identity.age", "--passphrase-file /tmp/pw /tmp/damaged.age"} {
		out, err := g.ssh.Run("sudo nodectl restore " + c)
		if err == nil || !strings.Contains(err.Error(), "nothing restored") {
			t.Errorf("nodectl restore %s: %v\n%s", c, err, out)
		}
		if now := collect(t, g); now != sb {
			t.Errorf("nodectl restore %s changed the device:\nbefore %+v\nafter  %+v", c, sb, now)
		}
	}
	if out, err := g.ssh.Run("sudo nodectl restore --passphrase-file /tmp/pw /tmp/identity.age"); err != nil {
		t.Fatalf("nodectl restore: %v\n%s", err, out)
	}
	got := collect(t, g)
	if got.hostKey != sa.hostKey || got.cert != sa.cert || got.onions != sa.onions {
		t.Errorf("after the restore:\n got  %+v\n want %+v (but its own machine-id)", got, sa)
	}
	if got.machineID != sb.machineID {
		t.Errorf("the restore changed the machine-id")
	}
	if keys := g.run(t, "cat .ssh/authorized_keys; stat -c '%a %U' .ssh .ssh/authorized_keys"); !strings.Contains(keys, "BackupRestoreTestKey") || !strings.Contains(keys, "700 admin\n600 admin") {
		t.Errorf("admin's authorized_keys: %q", keys)
	}
	// The services use them: tor still has a's addresses after its restart
	// (it would have made new keys for ones it could not use), `nodectl
	// connect` as admin shows a's, and sshd serves a's host key.
	for _, unit := range []string{"tor@default", "ssh", "nodebake-connect"} {
		if st, _ := g.ssh.Run("systemctl is-active " + unit); strings.TrimSpace(st) != "active" {
			t.Errorf("%s is %s after the restore", unit, st)
		}
	}
	var info pairing.Info
	if err := json.Unmarshal([]byte(g.run(t, "nodectl connect --json")), &info); err != nil {
		t.Fatal(err)
	}
	if info.Onion == "" || !strings.Contains(sa.onions, info.Onion) {
		t.Errorf("nodectl connect after the restore: onion %q, want one of a's %q", info.Onion, sa.onions)
	}
	var served ssh.PublicKey
	conf := &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.PublicKeys(adminKey)},
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error { served = k; return nil }}
	c, err := ssh.Dial("tcp", g.sshAddr, conf)
	if err != nil {
		t.Fatalf("ssh after the restore: %v", err)
	}
	c.Close()
	if fp := ssh.FingerprintSHA256(served); !strings.Contains(sa.hostKey, fp) {
		t.Errorf("sshd serves %s, want a's %s", fp, sa.hostKey)
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

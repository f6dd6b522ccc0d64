//go:build qemu

package qemutests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/firstboot"
	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
)

// The stand-in Fulcrum's database marker, by format (standin/fulcrum/db.go).
const (
	fulcrumDB   = "/data/fulcrum/fulcrum_db"
	dbFormat1   = fulcrumDB + "/meta/standin-db.json"
	dbFormat2   = fulcrumDB + "/fulc2_db/standin-db.json"
	keptFormat1 = fulcrumDB + ".format1"
	upgradeNote = "this update upgrades Fulcrum's database from format 1 to 2"
)

// electrumVersion asks Fulcrum for server.version from inside the guest.
const electrumVersion = `timeout 20 bash -c 'exec 3<>/dev/tcp/127.0.0.1/50001; printf "%s\n" "{\"id\":1,\"method\":\"server.version\",\"params\":[\"nodebake-test\",\"1.4\"]}" >&3; head -1 <&3'`

// TestFulcrumUpgrade: a device on Fulcrum 1.11.1 (database format 1) is
// updated to an image with Fulcrum 2.1.1: the check and the apply say that
// the update upgrades the database; the new slot's first boot keeps a
// copy and runs Fulcrum with --db-upgrade, which upgrades it to format 2,
// serves, and the slot is blessed; a rollback before the settling boot
// brings back Fulcrum 1.11.1 on the kept copy (format 1); rolling forward
// and letting the upgrade settle (an uncounted boot after the blessing)
// removes the copy, and a rollback is then refused, naming the cause.
func TestFulcrumUpgrade(t *testing.T) {
	t.Parallel()
	const up1, up2 = "1.0.0", "2.0.0"
	dir := filepath.Join(work, "upgrade")
	key := filepath.Join(dir, "keys", "update")
	if out, err := nodebake("keygen", "-o", key); err != nil {
		t.Fatalf("nodebake keygen: %v\n%s", err, out)
	}
	pub, err := ota.LoadPublicKey(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	with1 := strings.Replace(keyedSpec, `version: "2.1.1"`, `version: "1.11.1"`, 1)
	if with1 == keyedSpec {
		t.Fatal(`image.yaml pins no Fulcrum version "2.1.1" to swap`)
	}
	base1, err := demoSpec([]byte(with1))
	if err != nil {
		t.Fatal(err)
	}
	base2, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	srv := otatest.Server(filepath.Join(dir, "www"))
	t.Cleanup(srv.Close)
	var port int
	fmt.Sscanf(srv.URL[strings.LastIndexByte(srv.URL, ':')+1:], "%d", &port)

	images, bundle := map[string]string{}, filepath.Join(dir, up2+".bundle")
	var name, source string
	for v, base := range map[string][]byte{up1: base1, up2: base2} {
		spec, n, err := otaSpec(base, v, ota.FormatPublicKey(pub), "", "")
		if err != nil {
			t.Fatal(err)
		}
		name, source = n, "oci://"+updateHost+"/nodebake/"+n+":stable"
		spec = bytes.ReplaceAll(spec, []byte("@SOURCE@"), []byte(source))
		specFile := filepath.Join(dir, v+".yaml")
		if err := os.WriteFile(specFile, spec, 0o644); err != nil {
			t.Fatal(err)
		}
		images[v] = filepath.Join(dir, n+"-"+v+".img")
		start := time.Now()
		if out, err := nodebake("build", "-q", "-f", specFile, "-o", images[v], "--src", ".."); err != nil {
			t.Fatalf("nodebake build %s: %v\n%s", v, err, out)
		}
		t.Logf("built %s in %v", v, time.Since(start).Round(time.Second))
	}
	if out, err := nodebake("bundle", "-q", "-k", key, "-o", bundle, images[up2]); err != nil {
		t.Fatalf("nodebake bundle: %v\n%s", err, out)
	}
	ref := strings.Replace(source, updateHost, fmt.Sprintf("127.0.0.1:%d", port), 1)
	if out, err := nodebake("publish", "-q", "-k", key, bundle, ref); err != nil {
		t.Fatalf("nodebake publish: %v\n%s", err, out)
	}

	disk := filepath.Join(dir, "device.img")
	if out, err := exec.Command("cp", "--sparse=always", images[up1], disk).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	t.Cleanup(func() { os.Remove(disk) })
	// The demo image's 256 MiB /data has no room for the kept copy and
	// the upgrade (dataformat.Usage.Need: about 2 GB): a larger disk,
	// which the first boot grows /data into.
	if st, err := os.Stat(disk); err != nil {
		t.Fatal(err)
	} else if err := os.Truncate(disk, st.Size()+4<<30); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d := startDevice(t, disk, port)
	l := &lifeVM{tb: t, vm: d.vm, ssh: d.ssh}
	relogin := func() { l.ssh = d.ssh }
	reboot := func(slot string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
		defer cancel()
		d.reboot()
		d.waitBoot(ctx, slot)
		relogin()
	}
	// fulcrumServes waits for Fulcrum's Electrum port and returns its
	// server.version answer.
	fulcrumServes := func(want string) {
		t.Helper()
		l.waitFor("Fulcrum "+want+" serving Electrum", `grep -qE ':C351 0+:0000 0A' /proc/net/tcp /proc/net/tcp6`, 8*time.Minute,
			"systemctl status --no-pager fulcrum; sudo journalctl -b --no-pager -u fulcrum | tail -20; sudo nodectl status | tail -20")
		if out := d.sh(electrumVersion); !strings.Contains(out, want) {
			t.Errorf("server.version: %q, want Fulcrum %s", out, want)
		}
	}
	format := func(path string) string {
		return d.sh("sudo sed -n 's/.*\"format\": *\\([0-9]*\\).*/\\1/p' " + path + " 2>/dev/null || true")
	}

	t.Log("Fulcrum 1.11.1 indexes (after bitcoind's sync at 2 GiB)")
	if got := d.running(); got != "nodebake.slot=a "+up1 {
		t.Fatalf("running %q", got)
	}
	l.waitFor("bitcoind out of IBD", `bitcoin-cli -datadir=/data/bitcoin getblockchaininfo | grep -q '"initialblockdownload": false'`, 8*time.Minute,
		"bitcoin-cli -datadir=/data/bitcoin getblockchaininfo")
	// nodebake-sync-watch asks bitcoind every 5 minutes; restart it to ask now.
	pokeSyncWatch(l)
	fulcrumServes("1.11.1")
	if f := format(dbFormat1); f != "1" {
		t.Fatalf("database marker %s: format %q, want 1", dbFormat1, f)
	}
	t.Logf("1.x indexed at %v", time.Since(start).Round(time.Second))

	t.Log("update to Fulcrum 2.1.1")
	if out := d.sh("sudo nodectl update check 2>&1"); !strings.Contains(out, upgradeNote) {
		t.Errorf("check does not announce the upgrade:\n%s", out)
	}
	if out := d.sh("sudo nodectl update apply 2>&1"); !strings.Contains(out, upgradeNote) || !strings.Contains(out, "slot b holds "+name+" "+up2+" and boots next") {
		t.Fatalf("apply:\n%s", out)
	}
	reboot("b")
	if env := d.sh("cat /run/nodebake/fulcrum.env"); !strings.Contains(env, "FULCRUM_ARGS=--db-upgrade") {
		t.Errorf("/run/nodebake/fulcrum.env: %q", env)
	}
	l.waitFor("Fulcrum running", "systemctl is-active -q fulcrum", 4*time.Minute, "systemctl status --no-pager fulcrum; sudo nodectl status | tail")
	if cmd := d.sh("sudo cat /proc/$(systemctl show -P MainPID fulcrum)/cmdline | tr '\\0' ' '"); !strings.Contains(cmd, "--db-upgrade") {
		t.Errorf("Fulcrum's command line: %q, want --db-upgrade", cmd)
	}
	if d.sh("sudo test -d "+keptFormat1+" && echo kept") != "kept" {
		t.Errorf("no copy kept at %s", keptFormat1)
	}
	fulcrumServes("2.1.1")
	if f := format(dbFormat2); f != "2" {
		t.Errorf("database marker %s: format %q, want 2", dbFormat2, f)
	}
	d.waitBlessed("b")
	t.Logf("upgraded and blessed at %v", time.Since(start).Round(time.Second))

	t.Log("rollback before the settling boot: the kept copy comes back")
	if out := d.sh("sudo nodectl update rollback 2>&1"); !strings.Contains(out, "slot a ("+up1+") boots next") {
		t.Fatalf("rollback:\n%s", out)
	}
	reboot("a")
	fulcrumServes("1.11.1")
	if f := format(dbFormat1); f != "1" {
		t.Errorf("after the rollback, %s: format %q, want 1", dbFormat1, f)
	}
	if got := d.sh("cat " + contract.DataFormatsPath); !strings.Contains(got, `"`+contract.FulcrumDB+`": 1`) {
		t.Logf("%s after the rollback:\n%s", contract.DataFormatsPath, got)
	}
	d.waitBlessed("a")
	t.Logf("back on 1.11.1 at %v", time.Since(start).Round(time.Second))

	t.Log("forward again, settle, and a rollback is refused")
	if out := d.sh("sudo nodectl update rollback 2>&1"); !strings.Contains(out, "slot b ("+up2+") boots next") {
		t.Fatalf("rollback to b:\n%s", out)
	}
	reboot("b")
	fulcrumServes("2.1.1")
	d.waitBlessed("b")
	reboot("b") // uncounted: the upgrade is final, the copy goes
	l.waitFor("first boot done", "test -e "+firstboot.ReportPath, 4*time.Minute, "systemctl status --no-pager nodebake-firstboot")
	if d.sh("sudo test -e "+keptFormat1+" && echo kept || echo gone") != "gone" {
		t.Errorf("%s still there after the settling boot", keptFormat1)
	}
	if env := d.sh("cat /run/nodebake/fulcrum.env 2>/dev/null || true"); strings.Contains(env, "--db-upgrade") {
		t.Errorf("settled, yet /run/nodebake/fulcrum.env: %q", env)
	}
	if out := d.fails("sudo nodectl update rollback"); !strings.Contains(out, "refusing to roll back to slot a ("+up1+"): Fulcrum's database on /data was upgraded to format 2") {
		t.Errorf("rollback after the settling boot:\n%s", out)
	}
	t.Logf("done at %v", time.Since(start).Round(time.Second))
}

//go:build qemu

package qemutests

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/internal/qemu"
	"github.com/nodebake/nodebake/internal/testvm"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/qemu-tests/internal/guest"
	"github.com/nodebake/nodebake/qemu-tests/standin"
)

// The guest reaches the host's update server at this address of QEMU's
// user network (qemu.GuestForward); the images name it as their source.
const (
	updateHost = "10.0.2.100"
	v1, v2, v3 = "1.0.0", "2.0.0", "3.0.0"
)

// otaFixture is what the OTA test and benchmark share: three versions of
// the test spec built with an update key made for the run (v3 with a boot
// assessment that always fails), their bundles, and one server on
// 127.0.0.1 that is both an OCI registry (/v2/) and a web server for
// bundle folders (/bundles/).
type otaFixture struct {
	name    string
	key     string            // private key file
	images  map[string]string // version → image
	bundles map[string]string // version → bundle folder
	www     string
	port    int
	source  string // the images' update source, as the guest sees it
	served  *served
	// schedule is the images' update window: open from an hour before
	// the tests started until six hours after, so that the timer does
	// not fire by itself while they run, and nodebake-update.service,
	// started by hand, may reboot.
	schedule string
}

// openWindow is such a window around now, in UTC (the guest's time).
func openWindow(now time.Time) string {
	now = now.UTC()
	return fmt.Sprintf("daily %s-%s", now.Add(-time.Hour).Format("15:04"), now.Add(6*time.Hour).Format("15:04"))
}

var (
	otaOnce sync.Once
	otaFix  *otaFixture
	otaErr  error
)

func setupOTA(tb testing.TB) *otaFixture {
	tb.Helper()
	otaOnce.Do(func() { otaFix, otaErr = buildOTAFixture() })
	if otaErr != nil {
		tb.Fatal(otaErr)
	}
	return otaFix
}

func buildOTAFixture() (*otaFixture, error) {
	dir := filepath.Join(work, "ota")
	f := &otaFixture{key: filepath.Join(dir, "keys", "update"), images: map[string]string{}, bundles: map[string]string{}, www: filepath.Join(dir, "www"),
		schedule: openWindow(time.Now())}
	if out, err := exec.Command(nodebakeBin, "keygen", "-o", f.key).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nodebake keygen: %v\n%s", err, out)
	}
	pub, err := ota.LoadPublicKey(f.key + ".pub")
	if err != nil {
		return nil, err
	}
	base, err := os.ReadFile(specPath)
	if err != nil {
		return nil, err
	}
	// v3 passes every build check but never its boot assessment.
	broken := filepath.Join(dir, "broken-health")
	dropIn := filepath.Join(broken, "etc/systemd/system/nodebake-health.service.d/broken.conf")
	if err := os.MkdirAll(filepath.Dir(dropIn), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(dropIn, []byte("# qemu-tests: a release whose boot assessment fails\n[Service]\nExecStart=\nExecStart=/bin/false\n"), 0o644); err != nil {
		return nil, err
	}

	// The server lives as long as the test binary.
	f.served = newServed(otatest.Handler(f.www))
	srv := httptest.NewServer(f.served)
	fmt.Sscanf(srv.URL[strings.LastIndexByte(srv.URL, ':')+1:], "%d", &f.port)

	for _, v := range []string{v1, v2, v3} {
		overlay := ""
		if v == v3 {
			overlay = broken
		}
		spec, name, err := otaSpec(base, v, ota.FormatPublicKey(pub), f.schedule, overlay)
		if err != nil {
			return nil, err
		}
		f.name, f.source = name, "oci://"+updateHost+"/nodebake/"+name+":stable"
		spec = bytes.ReplaceAll(spec, []byte("@SOURCE@"), []byte(f.source))
		specFile := filepath.Join(dir, v+".yaml")
		if err := os.WriteFile(specFile, spec, 0o644); err != nil {
			return nil, err
		}
		img := filepath.Join(dir, name+"-"+v+".img")
		start := time.Now()
		if out, err := exec.Command(nodebakeBin, "build", "-q", "-f", specFile, "-o", img, "--src", "..").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("nodebake build %s: %v\n%s", v, err, out)
		}
		fmt.Fprintf(os.Stderr, "ota: built %s in %v\n", img, time.Since(start).Round(time.Second))
		f.images[v] = img
		f.bundles[v] = filepath.Join(dir, v+".bundle")
		if out, err := exec.Command(nodebakeBin, "bundle", "-q", "-k", f.key, "-o", f.bundles[v], img).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("nodebake bundle %s: %v\n%s", v, err, out)
		}
	}
	// v2 is what the registry offers at first; v1 is a web folder.
	if err := f.publish(v2, f.registryRef()); err != nil {
		return nil, err
	}
	return f, f.publish(v1, filepath.Join(f.www, "bundles", v1))
}

// registryRef is the images' source as the host reaches it.
func (f *otaFixture) registryRef() string {
	return strings.Replace(f.source, updateHost, fmt.Sprintf("127.0.0.1:%d", f.port), 1)
}

func (f *otaFixture) publish(version, dest string) error {
	if out, err := exec.Command(nodebakeBin, "publish", "-q", "-k", f.key, f.bundles[version], dest).CombinedOutput(); err != nil {
		return fmt.Errorf("nodebake publish %s %s: %v\n%s", version, dest, err, out)
	}
	return nil
}

// otaSpec is the spec base with the version replaced, an update section
// (public key, source "@SOURCE@", insecure: the host's registry and web
// server speak plain HTTP), the schedule if not "", and, if overlay is
// set, that overlay folder added. It returns the image name too.
func otaSpec(base []byte, version, publicKey, schedule, overlay string) ([]byte, string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(base, &doc); err != nil {
		return nil, "", err
	}
	root := doc.Content[0]
	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
	standin.YAMLSet(root, "version", str(version))
	update := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
		str("public_key"), str(publicKey), str("source"), str("@SOURCE@"),
		str("insecure"), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"},
	}}
	if schedule != "" {
		update.Content = append(update.Content, str("schedule"), str(schedule))
	}
	standin.YAMLSet(root, "update", update)
	if overlay != "" {
		list := standin.YAMLValue(root, "overlays")
		if list == nil {
			list = &yaml.Node{Kind: yaml.SequenceNode}
		}
		list.Content = append(list.Content, str(overlay))
		standin.YAMLSet(root, "overlays", list)
	}
	name := ""
	if n := standin.YAMLValue(root, "name"); n != nil {
		name = n.Value
	}
	out, err := yaml.Marshal(&doc)
	return out, name, err
}

// device is a VM of a private, persistent copy of an image, whose guest
// reaches the fixture's server at updateHost:80.
type device struct {
	*booted
	tb   testing.TB
	disk string
	port int
}

// startDevice boots disk and logs in; the console's line for this boot's
// kernel command line is consumed, so that waitBoot finds the next one.
func startDevice(tb testing.TB, disk string, port int) *device {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	sshPort, err := testvm.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	logf, err := os.CreateTemp(work, "console-ota-*.log")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { logf.Close() })
	vm, err := testvm.Start(context.Background(), qemu.Options{
		Image:         disk,
		MemoryMiB:     2048,
		Forwards:      []qemu.Forward{{HostPort: sshPort, GuestPort: 22}},
		GuestForwards: []qemu.GuestForward{{GuestAddr: updateHost, GuestPort: 80, HostPort: port}},
		Console:       logf,
		// The guest reboots (into an update, out of a failed one): as a
		// power cycle, each boot takes as long as the first, not up to
		// twice that after a warm reset under emulation. The ESP, where
		// boot counting happens, is on the disk either way.
		ColdReboot: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	d := &device{booted: &booted{vm: vm, sshAddr: fmt.Sprintf("127.0.0.1:%d", sshPort), console: logf}, tb: tb, disk: disk, port: port}
	tb.Cleanup(func() {
		vm.Kill()
		if tb.Failed() {
			tb.Logf("serial console:\n%s", tail(vm.Console(), 150))
		}
	})
	d.waitBoot(ctx, "")
	return d
}

var bootLine = regexp.MustCompile(`Kernel command line: [^\n]*nodebake\.slot=([ab])`)

// waitBoot waits for the next boot's kernel command line on the console
// (from slot, if not ""), then logs in. It returns the slot booted.
func (d *device) waitBoot(ctx context.Context, slot string) string {
	d.tb.Helper()
	re := bootLine
	if slot != "" {
		re = regexp.MustCompile(`Kernel command line: [^\n]*nodebake\.slot=` + slot)
	}
	m, err := d.vm.WaitConsole(ctx, re)
	if err != nil {
		d.tb.Fatal(err)
	}
	if d.ssh != nil {
		d.ssh.Close()
	}
	// Logging in gets a boot's time of its own, however long the wait
	// for the kernel took.
	login, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	if d.ssh, err = guest.Dial(login, d.sshAddr, "admin", adminKey); err != nil {
		d.tb.Fatalf("ssh admin@%s: %v", d.sshAddr, err)
	}
	return bootLine.FindStringSubmatch(m)[1]
}

// reboot asks the guest to reboot; waitBoot then finds the next boot.
func (d *device) reboot() {
	d.tb.Helper()
	// The session may end before the command returns.
	d.ssh.Run("sudo systemctl reboot")
}

func (d *device) sh(cmd string) string {
	d.tb.Helper()
	out, err := d.ssh.Run(cmd)
	if err != nil {
		d.tb.Fatalf("guest: %s: %v\n%s", cmd, err, out)
	}
	return strings.TrimSpace(out)
}

// fails runs cmd, which must fail, and returns its output and error text.
func (d *device) fails(cmd string) string {
	d.tb.Helper()
	out, err := d.ssh.Run(cmd + " 2>&1")
	if err == nil {
		d.tb.Fatalf("guest: %s succeeded:\n%s", cmd, out)
	}
	return out
}

func (d *device) entries() string { return d.sh("sudo ls /efi/loader/entries | tr '\\n' ' '") }

// running is the slot on the kernel command line and IMAGE_VERSION.
func (d *device) running() string {
	return d.sh(`echo "$(grep -o 'nodebake.slot=[ab]' /proc/cmdline) $(. /etc/os-release && echo $IMAGE_VERSION)"`)
}

// dataSum is a checksum of files on /data that an update must not touch:
// files of the user's, this device's keys and identity.
func (d *device) dataSum() string {
	return d.sh(`sudo sh -c 'cd /data && for f in ota-probe/blob ota-probe/note fulcrum/key.pem fulcrum/cert.pem; do [ -f $f ] && sha256sum $f; done; sha256sum /var/lib/nodebake/ssh/ssh_host_ed25519_key /etc/machine-id'`)
}

// waitBlessed waits until systemd-bless-boot has dropped the counter from
// slot's entry.
func (d *device) waitBlessed(slot string) {
	d.tb.Helper()
	d.sh(fmt.Sprintf("for i in $(seq 600); do sudo test -e /efi/loader/entries/nodebake-%s.conf && exit 0; sleep 1; done; "+
		"echo 'never blessed:'; sudo ls /efi/loader/entries; systemctl status --no-pager nodebake-health systemd-bless-boot; exit 1", slot))
}

// newDevice makes a private copy of the v1 image (sparse) and boots it.
func newDevice(tb testing.TB, f *otaFixture) *device {
	tb.Helper()
	disk := filepath.Join(work, fmt.Sprintf("ota-device-%d.img", time.Now().UnixNano()))
	if out, err := exec.Command("cp", "--sparse=always", f.images[v1], disk).CombinedOutput(); err != nil {
		tb.Fatalf("cp: %v %s", err, out)
	}
	tb.Cleanup(func() { os.Remove(disk) })
	d := startDevice(tb, disk, f.port)
	d.sh("systemctl is-system-running --wait || true")
	d.sh("sudo sh -c 'mkdir -p /data/ota-probe && head -c 4M /dev/urandom > /data/ota-probe/blob && date > /data/ota-probe/note && sync'")
	return d
}

// updateToV2 installs v2 from the registry and reboots into it; it returns
// how long the apply took and the time from the reboot to the blessing.
func updateToV2(d *device, f *otaFixture) (out string, apply, blessed time.Duration) {
	d.tb.Helper()
	start := time.Now()
	out = d.sh("sudo nodectl update apply 2>&1")
	apply = time.Since(start)
	if !strings.Contains(out, "slot b holds "+f.name+" "+v2+" and boots next") {
		d.tb.Fatalf("apply:\n%s", out)
	}
	d.tb.Logf("sudo nodectl update apply (%v):\n%s", apply.Round(time.Second), out)
	if e := d.entries(); e != "nodebake-a.conf nodebake-b+3.conf" {
		d.tb.Fatalf("entries after apply: %s", e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	start = time.Now()
	d.reboot()
	d.waitBoot(ctx, "b")
	loggedIn := time.Since(start)
	d.waitBlessed("b")
	blessed = time.Since(start)
	// Where the time went, in the guest's own clock (seconds since the
	// kernel started).
	d.tb.Logf("reboot → logged in %v → blessed %v; units active at:\n%s", loggedIn.Round(time.Second), blessed.Round(time.Second),
		d.sh(`for u in nodebake-firstboot bitcoind fulcrum nodebake-health systemd-bless-boot; do echo "$u $(($(systemctl show -P ActiveEnterTimestampMonotonic $u.service)/1000000))s"; done; systemd-analyze | head -1`))
	return out, apply, blessed
}

// deltaSent checks what the server sent since the last call while a
// device installed version: less than a quarter of the bundle's files,
// and root.img only in part. It returns the bytes sent and the bundle's.
func (f *otaFixture) deltaSent(t *testing.T, version string) (sent, full int64) {
	t.Helper()
	b, err := ota.Open(f.bundles[version])
	if err != nil {
		t.Fatal(err)
	}
	got := f.served.sent()
	m := &b.Manifest
	for _, name := range m.Files() {
		rec := m.File(name)
		sent += got["sha256:"+rec.SHA256]
		full += rec.Size
	}
	root := got["sha256:"+m.Root.SHA256]
	t.Logf("%s: the server sent %d of the bundle's %d bytes (%.2f%%), %d of root.img's %d", version, sent, full, 100*float64(sent)/float64(full), root, m.Root.Size)
	if root == 0 || root >= m.Root.Size/4 || sent >= full/4 {
		t.Errorf("%s did not arrive as a delta: %d of %d bytes sent, %d of root.img's %d", version, sent, full, root, m.Root.Size)
	}
	return sent, full
}

// TestOTA drives one device through an update's life, each step on what
// the one before left: a chunk of v2 damaged on the server, so that the
// update is refused and slot b and the ESP are left alone; the server
// repaired, v1 → v2 from the registry as a delta (slot b, blessed, /data
// unchanged; the server sends a fraction of the bundle); a rollback by hand to v1 and another back to v2; a downgrade
// refused; the power cut in the middle of
// installing v3 (the next boot is v2, with no entry for the half-written
// slot); v3 installed as a delta (the second in a row), which fails its boot assessment on each of
// its three tries, after which systemd-boot comes back to v2 by itself and
// v3 is remembered as failed.
func TestOTA(t *testing.T) {
	f := setupOTA(t)
	d := newDevice(t, f)
	if got := d.running(); got != "nodebake.slot=a "+v1 {
		t.Fatalf("running %q, want slot a %s", got, v1)
	}
	sum := d.dataSum()
	sameData := func() {
		t.Helper()
		if got := d.dataSum(); got != sum {
			t.Errorf("files on /data changed:\nbefore\n%s\nafter\n%s", sum, got)
		}
	}

	t.Log("a damaged chunk on the server: the update is refused, slot b is not written")
	const slotB = "/dev/disk/by-partlabel/" + contract.RootB
	// Apply writes a slot from its start: its first 64 MiB show any write.
	before := d.sh("sudo head -c 64M " + slotB + " | sha256sum")
	f.served.setDamaged(true)
	out := d.fails("sudo nodectl update apply")
	f.served.setDamaged(false)
	if !strings.Contains(out, "the signed chunk index says") || !strings.Contains(out, "nothing was installed") {
		t.Errorf("apply with a damaged chunk:\n%s", out)
	}
	if after := d.sh("sudo head -c 64M " + slotB + " | sha256sum"); after != before {
		t.Errorf("the refused update wrote slot b")
	}
	if e := d.entries(); e != "nodebake-a.conf" {
		t.Errorf("entries after the refused update: %s (want only slot a's)", e)
	}
	if left := d.sh("sudo find /efi/nodebake/b -type f 2>/dev/null || true"); left != "" {
		t.Errorf("the refused update left on the ESP: %s", left)
	}

	t.Log("the server repaired: update to v2 from the registry, as a delta")
	if out := d.sh("sudo nodectl update check"); !strings.Contains(out, "update available: "+f.name+" "+v2+" (running "+v1+") from "+f.source) ||
		!strings.Contains(out, "channel "+f.source+": "+f.name+" "+v2+", counter ") || !strings.Contains(out, "(delta: ") {
		t.Fatalf("check:\n%s", out)
	}
	f.served.sent()
	out, apply, blessed := updateToV2(d, f)
	if !strings.Contains(out, "(delta: ") {
		t.Errorf("apply of v2 did not download a delta:\n%s", out)
	}
	f.deltaSent(t, v2)
	t.Logf("apply %v, reboot to blessed %v", apply.Round(time.Second), blessed.Round(time.Second))
	if got := d.running(); got != "nodebake.slot=b "+v2 {
		t.Fatalf("running %q, want slot b %s", got, v2)
	}
	if e := d.entries(); e != "nodebake-a.conf nodebake-b.conf" {
		t.Errorf("entries: %s", e)
	}
	if got := d.sh("systemctl is-active nodebake-health.service systemd-bless-boot.service | tr '\\n' ' '"); got != "active active" {
		t.Errorf("assessment and blessing units: %q", got)
	}
	sameData()

	t.Log("rollback by hand to v1, and back to v2")
	for _, step := range []struct{ to, version, entries string }{
		// Slot a sorts below v2's entry, which Rollback sets aside ("+0").
		{"a", v1, "nodebake-a.conf nodebake-b+0.conf"},
		// v2 sorts first again by its version: nothing to set aside.
		{"b", v2, "nodebake-a.conf nodebake-b.conf"},
	} {
		if out := d.sh("sudo nodectl rollback"); !strings.Contains(out, "slot "+step.to+" ("+step.version+") boots next") {
			t.Fatalf("rollback:\n%s", out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
		d.reboot()
		d.waitBoot(ctx, step.to)
		cancel()
		d.waitBlessed(step.to)
		if got := d.running(); got != "nodebake.slot="+step.to+" "+step.version {
			t.Fatalf("after the rollback: running %q, want slot %s %s", got, step.to, step.version)
		}
		if e := d.entries(); e != step.entries {
			t.Errorf("entries after the rollback to slot %s: %s, want %s", step.to, e, step.entries)
		}
	}
	sameData()

	t.Log("a downgrade to v1 (a web folder) is refused")
	web := "http://" + updateHost + "/bundles/" + v1 + "/"
	if out := d.sh("sudo nodectl update check -source " + web); !strings.Contains(out, "no update: "+web+" offers "+f.name+" "+v1+", this device runs "+v2) {
		t.Errorf("check:\n%s", out)
	}
	if out := d.fails("sudo nodectl update apply -source " + web); !strings.Contains(out, "version "+v1+" is older than the running "+v2+": refusing a downgrade unless it is explicitly allowed") {
		t.Errorf("apply of an older version:\n%s", out)
	}
	if e := d.entries(); e != "nodebake-a.conf nodebake-b.conf" {
		t.Errorf("entries: %s", e)
	}

	t.Log("power cut while v3 is written into slot a")
	if err := f.publish(v3, f.registryRef()); err != nil {
		t.Fatal(err)
	}
	d.sh("sudo sh -c 'nohup nodectl update apply > /tmp/apply.log 2>&1 &'")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for !strings.Contains(d.sh("cat /tmp/apply.log"), "write root:") {
		select {
		case <-ctx.Done():
			t.Fatalf("apply never started writing the slot:\n%s", d.sh("cat /tmp/apply.log"))
		case <-time.After(time.Second):
		}
	}
	time.Sleep(2 * time.Second)
	t.Logf("pulling the plug while:\n%s", tail(d.sh("cat /tmp/apply.log"), 3))
	d.vm.Kill()
	d = startDevice(t, d.disk, f.port)
	if got := d.running(); got != "nodebake.slot=b "+v2 {
		t.Fatalf("after the power cut: running %q, want slot b %s", got, v2)
	}
	if e := d.entries(); e != "nodebake-b.conf" {
		t.Errorf("entries after the power cut: %s (want only slot b's)", e)
	}
	if left := d.sh("sudo find /efi -name '*.tmp' -o -path '/efi/nodebake/a/*'"); left != "" {
		t.Errorf("left on the ESP: %s", left)
	}

	t.Log("v3, whose boot assessment fails, installed as a delta by the automatic update unit, which reboots into it")
	if got := d.sh("systemctl is-enabled nodebake-update.timer; systemctl is-active nodebake-update.timer"); got != "enabled\nactive" {
		t.Errorf("nodebake-update.timer: %q", got)
	}
	f.served.sent()
	d.sh("sudo systemctl start --no-block nodebake-update.service")
	// About a minute per try on an idle machine with 2 cores; far more
	// when other VMs share them.
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	// systemd-boot tries v3 three times; each time the assessment fails
	// and the device reboots; then v2 boots again.
	for try := 1; try <= 3; try++ {
		if _, err := d.vm.WaitConsole(ctx, regexp.MustCompile(`Kernel command line: [^\n]*nodebake\.slot=a`)); err != nil {
			t.Fatalf("try %d of v3: %v", try, err)
		}
		t.Logf("v3 try %d at %v", try, time.Since(start).Round(time.Second))
	}
	d.waitBoot(ctx, "b")
	t.Logf("back on v2 after %v", time.Since(start).Round(time.Second))
	if got := d.running(); got != "nodebake.slot=b "+v2 {
		t.Fatalf("running %q, want slot b %s", got, v2)
	}
	if e := d.entries(); e != "nodebake-a+0-3.conf nodebake-b.conf" {
		t.Errorf("entries: %s", e)
	}
	// The units of updating and assessment are not left failed by the
	// trials. (Other units are the boot tests' business; list them.)
	d.sh("systemctl is-system-running --wait || true")
	if failed := d.sh("systemctl --failed --no-legend --plain"); failed != "" {
		t.Logf("failed units after the fallback:\n%s", failed)
	}
	for _, u := range []string{"efi.automount", "efi.mount", "nodebake-health.service", "nodebake-firstboot.service"} {
		if state := d.sh("systemctl is-failed " + u + " || true"); state == "failed" {
			t.Errorf("%s failed:\n%s", u, d.sh("sudo journalctl -b --no-pager -u "+u+" | tail -20"))
		}
	}
	// Each of the three boots before this one was v3 stopped by its
	// boot assessment.
	for b := -3; b <= -1; b++ {
		j := d.sh(fmt.Sprintf("sudo journalctl -b %d -o short-monotonic --no-pager -u nodebake-health.service | tail -4", b))
		if !strings.Contains(j, "nodebake-health.service: Failed with result") {
			t.Errorf("boot %d did not end in a failed assessment:\n%s", b, j)
		}
	}
	if out := d.sh("sudo nodectl update status"); !strings.Contains(out, "failed     "+v3) || !strings.Contains(out, "channel    "+f.source+": "+v3+", counter ") {
		t.Errorf("status:\n%s", out)
	}
	if got := d.sh("cat " + contract.FailedVersionsPath); got != v3 {
		t.Errorf("%s: %q", contract.FailedVersionsPath, got)
	}
	if out := d.fails("sudo nodectl update apply"); !strings.Contains(out, "version "+v3+" already failed to boot on this device") {
		t.Errorf("apply of the failed version again:\n%s", out)
	}
	if out := d.fails("sudo nodectl update rollback"); !strings.Contains(out, "slot a failed to boot") {
		t.Errorf("rollback to the failed slot:\n%s", out)
	}
	// The automatic run that installed v3, as a delta, said so before it
	// rebooted; the next one skips it.
	f.deltaSent(t, v3)
	if out := d.sh("sudo journalctl --no-pager -o cat -u nodebake-update.service"); !strings.Contains(out, "slot a holds "+f.name+" "+v3+" and boots next") ||
		!strings.Contains(out, "(delta: ") || !strings.Contains(out, "rebooting into "+v3) {
		t.Errorf("nodebake-update.service's run before the trials:\n%s", out)
	}
	d.sh("sudo systemctl start nodebake-update.service")
	if out := d.sh("sudo nodectl update status"); !strings.Contains(out, "automatic  "+f.schedule) || !strings.Contains(out, "skipped "+v3+": it failed to boot here before") {
		t.Errorf("status after an automatic run:\n%s", out)
	}
	if e := d.entries(); e != "nodebake-a+0-3.conf nodebake-b.conf" {
		t.Errorf("entries after the automatic run: %s", e)
	}
	sameData()
}

// BenchmarkOTA prints the update figures the README quotes: bundle size
// against image size, seconds to apply v2 in QEMU (registry download,
// checks and writes), and seconds from the reboot to the blessed entry.
func BenchmarkOTA(b *testing.B) {
	f := setupOTA(b)
	if err := f.publish(v2, f.registryRef()); err != nil {
		b.Fatal(err)
	}
	var bundle int64
	for _, name := range []string{ota.ManifestFile, ota.SignatureFile, ota.KernelFile, ota.InitrdFile, ota.RootIndexFile, ota.RootFile} {
		bundle += size(b, filepath.Join(f.bundles[v2], name))
	}
	b.ReportMetric(float64(bundle)/1e6, "MB-bundle")
	b.ReportMetric(float64(size(b, f.images[v2]))/1e6, "MB-image")
	for i := 0; i < b.N; i++ {
		d := newDevice(b, f)
		_, apply, blessed := updateToV2(d, f)
		b.ReportMetric(apply.Seconds(), "s-apply")
		b.ReportMetric(blessed.Seconds(), "s-reboot-to-blessed")
	}
}

// nodebake runs the nodebake binary the tests built with args.
func nodebake(args ...string) ([]byte, error) {
	return exec.Command(nodebakeBin, args...).CombinedOutput()
}

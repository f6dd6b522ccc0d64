package firstboot

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/internal/bytesize"
)

// memOf is MemTotal as a machine with gib GiB installed reports it.
func memOf(gib uint64) uint64 { return gib*bytesize.GiB - 150*bytesize.MiB }

// checkDevice checks everything the agent promises about a root it ran on.
func checkDevice(t *testing.T, r *testRoot) {
	t.Helper()
	want := map[string]struct {
		mode  fs.FileMode
		owner Owner
		link  string
	}{
		"/data/bitcoin":                       {fs.ModeDir | 0o750, testBitcoin, ""},
		"/data/fulcrum":                       {fs.ModeDir | 0o750, testFulcrum, ""},
		"/data/fulcrum/fulcrum_db":            {fs.ModeDir | 0o750, testFulcrum, ""},
		"/data/bitcoin/bitcoin.conf":          {0o640, testBitcoin, ""},
		"/data/bitcoin/bitcoin.override.conf": {0o640, testBitcoin, ""},
		"/data/fulcrum/fulcrum.conf":          {0o640, testFulcrum, ""},
		"/data/fulcrum/fulcrum.override.conf": {0o640, testFulcrum, ""},
		"/data/fulcrum/key.pem":               {0o600, testFulcrum, ""},
		"/data/fulcrum/cert.pem":              {0o644, testFulcrum, ""},
		"/data/fulcrum/fulcrum-banner.txt":    {0o644, testFulcrum, ""},
		"/home/bitcoin":                       {fs.ModeDir | 0o750, testBitcoin, ""},
		"/home/fulcrum":                       {fs.ModeDir | 0o750, testFulcrum, ""},
		"/home/admin":                         {fs.ModeDir | 0o750, testAdmin, ""},
		"/home/bitcoin/.bitcoin":              {0, testBitcoin, "/data/bitcoin"},
		"/home/fulcrum/.fulcrum":              {0, testFulcrum, "/data/fulcrum"},
		"/home/admin/.bitcoin":                {0, testAdmin, "/data/bitcoin"},
		"/var/lib/nodebake/ssh":               {fs.ModeDir | 0o700, rootOwner, ""},
		HostKeyPath:                           {0o600, rootOwner, ""},
		HostKeyPath + ".pub":                  {0o644, rootOwner, ""},
		ReportPath:                            {0o644, rootOwner, ""},
	}
	snap := r.snapshot()
	for p, w := range want {
		got, ok := snap[p]
		switch {
		case !ok:
			t.Errorf("%s is missing", p)
		case w.link != "" && got.link != w.link:
			t.Errorf("%s links to %q, want %q", p, got.link, w.link)
		case w.link == "" && got.mode != w.mode:
			t.Errorf("%s: mode %v, want %v", p, got.mode, w.mode)
		case got.owner != w.owner:
			t.Errorf("%s: owner %v, want %v", p, got.owner, w.owner)
		}
	}
	for p := range snap {
		if strings.Contains(p, ".tmp-") || strings.HasSuffix(p, ".nodebake-link") {
			t.Errorf("stray temporary file %s", p)
		}
	}
	if err := CheckTLS([]byte(r.read(FulcrumKey)), []byte(r.read(FulcrumCert)), r.now); err != nil {
		t.Errorf("TLS pair: %v", err)
	}
	if _, err := parseHostKey([]byte(r.read(HostKeyPath))); err != nil {
		t.Errorf("host key: %v", err)
	}
	banner, _ := os.ReadFile("../overlays/base" + ImageBanner)
	if r.read(FulcrumBanner) != string(banner) {
		t.Error("the banner is not the image's")
	}
}

func TestRunFreshThenIdempotent(t *testing.T) {
	r := newTestRoot(t, memOf(4), 2, "2.1.1")
	rep := r.run()
	checkDevice(t, r)
	for _, st := range rep.Steps {
		if st.Error != "" {
			t.Errorf("step %s: %s", st.Name, st.Error)
		}
	}
	if !hasLine([]byte(r.read(BitcoinConf)), "dbcache=1920") || !hasLine([]byte(r.read(FulcrumConf)), "db_mem = 1024") {
		t.Errorf("configs not sized for 4 GiB:\n%s\n%s", r.read(BitcoinConf), r.read(FulcrumConf))
	}
	if rep.FulcrumSource != FulcrumVersionFile+": 2.1.1" || rep.Settings.Hardware.CPUs != 2 {
		t.Errorf("report: fulcrum from %q, %d CPUs", rep.FulcrumSource, rep.Settings.Hardware.CPUs)
	}
	back, err := ReadReport(r.path(ReportPath))
	if err != nil || !reflect.DeepEqual(back, rep) {
		t.Fatalf("report read back differs (%v):\n%+v\n%+v", err, back, rep)
	}

	// The second run changes nothing on the device. Its report differs
	// from the first (nothing was created), so a third run checks that the
	// report, too, is left alone when it would not change.
	for run := 2; run <= 3; run++ {
		before := r.snapshot()
		rep = r.run()
		for _, st := range rep.Steps {
			for _, it := range st.Items {
				if it.Status != Unchanged && it.Status != Skipped {
					t.Errorf("run %d: %s: %s %s", run, st.Name, it.Status, it.What)
				}
			}
		}
		for p, after := range r.snapshot() {
			if before[p] != after && (run == 3 || !strings.HasPrefix(p, "/run/")) {
				t.Errorf("run %d touched %s: %+v → %+v", run, p, before[p], after)
			}
		}
	}
}

// TestRunNewHardware moves the data to a machine with more RAM: the
// configs follow it, the secrets stay.
func TestRunNewHardware(t *testing.T) {
	r := newTestRoot(t, memOf(4), 2, "2.1.1")
	r.run()
	key, cert := r.read(FulcrumKey), r.read(FulcrumCert)
	r.setHardware(memOf(16), 8)
	rep := r.run()
	want := Size(Hardware{MemTotal: memOf(16), CPUs: 8}, 2)
	if !hasLine([]byte(r.read(BitcoinConf)), fmt.Sprintf("dbcache=%d", want.Bitcoind.DBCacheIBD)) {
		t.Errorf("bitcoin.conf not resized for 16 GiB (want dbcache=%d):\n%s", want.Bitcoind.DBCacheIBD, r.read(BitcoinConf))
	}
	if strings.Contains(r.read(FulcrumConf), "worker_threads") {
		t.Errorf("16 GiB is no slow device:\n%s", r.read(FulcrumConf))
	}
	if r.read(FulcrumKey) != key || r.read(FulcrumCert) != cert {
		t.Error("the TLS pair changed with the hardware")
	}
	if rep.Settings.Slow || rep.Settings.Hardware.CPUs != 8 {
		t.Errorf("report: %+v", rep.Settings)
	}
}

// TestRunKeepsOverrides checks that the override files are the user's:
// created empty once, never written again, and their settings win.
func TestRunKeepsOverrides(t *testing.T) {
	r := newTestRoot(t, memOf(8), 4, "2.1.1")
	r.write(BitcoinOverride, "dbcache=3000\n")
	r.run()
	if got := r.read(BitcoinOverride); got != "dbcache=3000\n" {
		t.Fatalf("the agent changed the user's override: %q", got)
	}
	if r.read(FulcrumOverride) != "" {
		t.Fatalf("a new override must be empty, got %q", r.read(FulcrumOverride))
	}
	conf := []byte(r.read(BitcoinConf))
	for _, l := range activeLines(conf) {
		if strings.HasPrefix(l, "dbcache=") {
			t.Errorf("bitcoin.conf still sets %q", l)
		}
	}

	// The user edits the Fulcrum override; the next boot applies it.
	r.write(FulcrumOverride, "db_mem = 2000\nanon_logs = true\n")
	before := r.snapshot()
	r.run()
	if got := r.read(FulcrumOverride); got != "db_mem = 2000\nanon_logs = true\n" {
		t.Fatalf("the agent changed the user's override: %q", got)
	}
	fconf := []byte(r.read(FulcrumConf))
	if !hasLine(fconf, "db_mem = 2000") || !hasLine(fconf, "anon_logs = true") || hasLine(fconf, "db_mem = 1024") {
		t.Errorf("fulcrum.conf does not apply the override:\n%s", fconf)
	}
	if after := r.snapshot(); after[BitcoinConf] != before[BitcoinConf] || after[FulcrumOverride] != before[FulcrumOverride] {
		t.Error("files unrelated to the edit were rewritten")
	}
}

func TestRunFulcrumVersions(t *testing.T) {
	r := newTestRoot(t, memOf(8), 4, "1.11.1")
	r.run()
	if !strings.Contains(r.read(FulcrumConf), "\nutxo_cache = 4") {
		t.Errorf("Fulcrum 1.x: no utxo_cache:\n%s", r.read(FulcrumConf))
	}
	r = newTestRoot(t, memOf(8), 4, "")
	rep := r.run()
	if rep.Settings.FulcrumVersion != 2 || !strings.Contains(rep.FulcrumSource, "missing") || strings.Contains(r.read(FulcrumConf), "utxo") {
		t.Errorf("no version file: want 2.x, got %d (%s)", rep.Settings.FulcrumVersion, rep.FulcrumSource)
	}
}

// TestRunInterrupted stops the agent after every step, and in the middle
// of writing files, and checks that the next run leaves the device as a
// run that was never interrupted does.
func TestRunInterrupted(t *testing.T) {
	ref := newTestRoot(t, memOf(4), 2, "2.1.1")
	ref.run()
	refSnap := ref.snapshot()

	n := len(newAgent(ref.config()).steps())
	for k := 0; k <= n; k++ {
		r := newTestRoot(t, memOf(4), 2, "2.1.1")
		a := newAgent(r.config())
		for _, s := range a.steps()[:k] {
			a.do(s)
		}
		// Killed while writing: a half-written temporary config, and a new
		// key whose certificate never got written.
		if _, err := os.Stat(r.path(BitcoinDir)); err == nil {
			os.WriteFile(r.path(strayTemp(BitcoinConf)), []byte("dbca"), 0o600)
		}
		if _, err := os.Stat(r.path(FulcrumDir)); err == nil {
			keyPEM, _, _ := newTLS(r.now)
			os.WriteFile(r.path(FulcrumKey), keyPEM, 0o600)
		}
		r.run()
		checkDevice(t, r)
		snap := r.snapshot()
		for p, want := range refSnap {
			got, ok := snap[p]
			if !ok || got.mode != want.mode || got.owner != want.owner || got.link != want.link {
				t.Errorf("stopped after %d steps: %s is %+v, want %+v", k, p, got, want)
			}
		}
		if len(snap) != len(refSnap) {
			t.Errorf("stopped after %d steps: %d files, want %d", k, len(snap), len(refSnap))
		}
		for _, p := range []string{BitcoinConf, FulcrumConf} {
			if r.read(p) != ref.read(p) {
				t.Errorf("stopped after %d steps: %s differs", k, p)
			}
		}
	}
}

// strayTemp is a temporary file a write of p killed by a power cut leaves.
func strayTemp(p string) string {
	return filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp-0123456789abcdef")
}

// TestRunReportsFailures: a step that cannot do its job says what to do,
// and the others still do theirs.
func TestRunReportsFailures(t *testing.T) {
	r := newTestRoot(t, memOf(4), 2, "2.1.1")
	// Someone's files where the link should be.
	r.write("/home/bitcoin/.bitcoin/wallet.dat", "precious")
	rep, err := Run(r.config())
	if err == nil || !strings.Contains(err.Error(), "folders") {
		t.Fatalf("Run: %v, want the folders step to fail", err)
	}
	failed := rep.Failed()
	if len(failed) != 1 || !strings.Contains(failed[0].Error, "move what it holds into /data/bitcoin") {
		t.Fatalf("failed steps: %+v", failed)
	}
	if r.read("/home/bitcoin/.bitcoin/wallet.dat") != "precious" {
		t.Fatal("the agent touched the user's files")
	}
	for _, p := range []string{BitcoinConf, FulcrumConf, FulcrumCert, HostKeyPath} {
		if _, err := os.Stat(r.path(p)); err != nil {
			t.Errorf("a later step did not run: %v", err)
		}
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1 of 9 steps FAILED", "FAILED: ", "move what it holds", "Settings", "dbcache (IBD)", "Memory (MiB of ", "Plan:", "Fulcrum waits for bitcoind's initial sync"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("status text lacks %q:\n%s", want, text.String())
		}
	}

	// No /data at all: every step that needs it fails, the host key is made.
	r = newTestRoot(t, memOf(4), 2, "2.1.1")
	os.Remove(r.path("data"))
	rep, err = Run(r.config())
	if err == nil || len(rep.Failed()) != 4 {
		t.Fatalf("no /data: %v, failed %+v", err, rep.Failed())
	}
	if !strings.Contains(rep.Failed()[0].Error, "is the data partition mounted") {
		t.Errorf("no /data: %s", rep.Failed()[0].Error)
	}
	if _, err := os.Stat(r.path(HostKeyPath)); err != nil {
		t.Errorf("no host key without /data: %v", err)
	}
}

// TestRunMissingUser: an image without the fulcrum user gets everything
// else done, and is told what to fix.
func TestRunMissingUser(t *testing.T) {
	r := newTestRoot(t, memOf(4), 2, "2.1.1")
	r.write("etc/passwd", "admin:x:1000:1000::/home/admin:/bin/bash\nbitcoin:x:1001:1001::/home/bitcoin:/usr/sbin/nologin\n")
	rep, err := Run(r.config())
	if err == nil {
		t.Fatal("Run succeeded without a fulcrum user")
	}
	var names []string
	for _, st := range rep.Failed() {
		names = append(names, st.Name)
		if !strings.Contains(st.Error, "has no user fulcrum: the image must define it") {
			t.Errorf("%s: %s", st.Name, st.Error)
		}
	}
	if strings.Join(names, ",") != "folders,fulcrum tls,fulcrum.conf" {
		t.Errorf("failed steps %v", names)
	}
	if _, err := os.Stat(r.path(BitcoinConf)); err != nil {
		t.Errorf("bitcoin.conf was not written: %v", err)
	}
}

func TestDetectHardware(t *testing.T) {
	r := newTestRoot(t, 4012345*1024, 1, "")
	hw, err := DetectHardware(r.dir)
	if err != nil || hw != (Hardware{MemTotal: 4012345 * 1024, CPUs: 1}) {
		t.Fatalf("got %+v, %v", hw, err)
	}
	for list, want := range map[string]int{"0-3\n": 4, "0,2-3,7": 4, "0-63": 64} {
		r.write("sys/devices/system/cpu/online", list)
		if hw, err := DetectHardware(r.dir); err != nil || hw.CPUs != want {
			t.Errorf("%q: %d CPUs, %v; want %d", list, hw.CPUs, err, want)
		}
	}
	r.write("proc/meminfo", "MemFree: 1 kB\n")
	if _, err := DetectHardware(r.dir); err == nil {
		t.Error("accepted a meminfo without MemTotal")
	}
	os.RemoveAll(filepath.Join(r.dir, "sys"))
	if _, err := DetectHardware(r.dir); err == nil {
		t.Error("accepted a missing CPU list")
	}
}

//go:build qemu

package qemutests

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/internal/electrumtest"
	"github.com/nodebake/nodebake/internal/firstboot"
	"github.com/nodebake/nodebake/internal/qemu"
	"github.com/nodebake/nodebake/internal/testvm"
	"github.com/nodebake/nodebake/qemu-tests/internal/guest"
)

// lifeVM is a VM booted for a testing.TB (tests and benchmarks alike).
type lifeVM struct {
	tb  testing.TB
	vm  *testvm.VM
	ssh *guest.Client
}

// bootTB starts img (snapshot) with mem MiB and 2 vCPUs, forwards fwd
// and SSH, and logs in as admin.
func bootTB(tb testing.TB, img string, mem int, fwd []qemu.Forward) *lifeVM {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	port, err := testvm.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	logf, err := os.CreateTemp(work, "console-life-*.log")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { logf.Close() })
	vm, err := testvm.Start(context.Background(), qemu.Options{Image: img, Snapshot: true, MemoryMiB: mem, CPUs: 2,
		Forwards: append(fwd, qemu.Forward{HostPort: port, GuestPort: 22}), Console: logf})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		vm.Kill()
		if tb.Failed() {
			tb.Logf("serial console:\n%s", tail(vm.Console(), 100))
		}
	})
	c, err := guest.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", port), "admin", adminKey)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return &lifeVM{tb: tb, vm: vm, ssh: c}
}

func (l *lifeVM) sh(cmd string) string {
	l.tb.Helper()
	out, err := l.ssh.Run(cmd)
	if err != nil {
		l.tb.Fatalf("guest: %s: %v\n%s", cmd, err, out)
	}
	return strings.TrimSpace(out)
}

// waitFor runs cmd in the guest every 2 s until it succeeds, or fails the
// test after limit with what the guest shows in diag.
func (l *lifeVM) waitFor(what, cmd string, limit time.Duration, diag string) {
	l.tb.Helper()
	deadline := time.Now().Add(limit)
	for {
		if _, err := l.ssh.Run(cmd); err == nil {
			return
		}
		if time.Now().After(deadline) {
			out, _ := l.ssh.Run(diag + " 2>&1")
			l.tb.Fatalf("%s: not after %v:\n%s", what, limit, out)
		}
		time.Sleep(2 * time.Second)
	}
}

// report is `sudo nodectl status -json`, read in the guest.
func (l *lifeVM) report() firstboot.Report {
	l.tb.Helper()
	var r firstboot.Report
	if out := l.sh("sudo nodectl status -json"); json.Unmarshal([]byte(out), &r) != nil {
		l.tb.Fatalf("nodectl status -json:\n%s", out)
	}
	return r
}

// pokeSyncWatch makes nodebake-sync-watch ask bitcoind now rather than
// at its next tick, unless it has found bitcoind synced already (a restart
// in the middle of its work would make it do that work again).
func pokeSyncWatch(l *lifeVM) {
	l.tb.Helper()
	l.sh("sudo journalctl --no-pager -u nodebake-sync-watch | grep -q 'bitcoind is synced' || sudo systemctl restart nodebake-sync-watch")
}

// The phases as the memory budget names them, and as logged.
var lifePhases = []struct{ label, budget string }{
	{"IBD", firstboot.PhaseIBD},
	{"indexing", firstboot.PhaseIndexing},
	{"synced", firstboot.PhaseSynced},
}

// memSampler runs in the guest once a second: the phase (IBD until the
// sync marker exists; synced once Fulcrum listens on 50001; indexing in
// between), then memory.current and memory.peak of bitcoind's and
// Fulcrum's cgroups, in bytes (0 while a service has none).
const memSampler = `C=/sys/fs/cgroup/system.slice
r() { cat $C/$1.service/memory.$2 2>/dev/null || echo 0; }
while [ ! -e /run/memsample.stop ]; do
  if [ ! -e ` + firstboot.SyncedMarker + ` ]; then p=IBD
  elif grep -qE ':C351 0+:0000 0A' /proc/net/tcp /proc/net/tcp6; then p=synced
  else p=indexing; fi
  echo "$p $(r bitcoind current) $(r fulcrum current) $(r bitcoind peak) $(r fulcrum peak)" >> /run/memsample.log
  sleep 1
done
`

// phasePeak is what one phase measured and configured, in MiB.
type phasePeak struct {
	phase                     string
	bitcoind, fulcrum, total  int // measured: each program's max, and the max of their sum at one time
	confBitcoind, confFulcrum int
	confPeak, limit, memTotal int
}

// lifecycle boots the default image with mem MiB and follows it from
// bitcoind's initial block download to both programs synced, asserting
// the memory plan's order (Fulcrum waits, skipped by its condition, not
// failed), Electrum at the end, no OOM kill, no restart by systemd, and
// every phase within MemTotal less the 512 MiB reserve. It returns the
// measured peaks per phase.
func lifecycle(tb testing.TB, mem int) []phasePeak {
	tb.Helper()
	ePort, err := testvm.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	l := bootTB(tb, image, mem, []qemu.Forward{{HostPort: ePort, GuestPort: 50001}})
	l.waitFor("first boot's report", "test -e "+firstboot.ReportPath, 5*time.Minute, "systemctl status --no-pager nodebake-firstboot")

	r := l.report()
	s := r.Settings
	tb.Logf("%d MiB: tier %s, RAM %d MiB, plan: fulcrum_waits=%v: %s", mem, s.Tier, s.Budget.RAM, s.Plan.FulcrumWaits, s.Plan.Why)
	if !s.Plan.FulcrumWaits || s.Plan.Why == "" || r.FulcrumMayStart {
		tb.Fatalf("at %d MiB the plan should make Fulcrum wait for bitcoind, and say why: plan %+v, fulcrum_may_start %v", mem, s.Plan, r.FulcrumMayStart)
	}
	if !s.Budget.Fits() {
		tb.Errorf("the budget does not fit: %+v", s.Budget)
	}
	memTotal, _ := strconv.Atoi(l.sh("awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo"))
	limit := memTotal - 512

	// The sampler, then bitcoind restarted with a short, known chain: the
	// demo pace (3000 blocks) may be over by the time SSH answers. The
	// stand-in keeps its progress and extends the chain to chain_length,
	// so this is an initial block download again, whatever the boot did.
	l.sh("echo " + base64.StdEncoding.EncodeToString([]byte(memSampler)) + " | base64 -d | sudo tee /run/memsample.sh >/dev/null")
	l.sh("sudo systemd-run -q --unit=memsample sh /run/memsample.sh")
	l.sh("sudo systemctl stop bitcoind")
	l.sh(`printf 'chain_length = 3600\nblocks_per_second = 20\n' | sudo -u bitcoin tee /data/bitcoin/standin.conf >/dev/null`)
	l.sh("sudo systemctl start bitcoind")

	l.waitFor("bitcoind answering in IBD", `bitcoin-cli -datadir=/data/bitcoin getblockchaininfo | grep -q '"initialblockdownload": true'`, 3*time.Minute,
		"systemctl status --no-pager bitcoind; bitcoin-cli -datadir=/data/bitcoin getblockchaininfo")
	// During IBD: Fulcrum was skipped by its condition, not failed.
	if st := l.sh("systemctl show -p ActiveState -p Result -p ConditionResult fulcrum | sort | tr '\\n' ' '"); st != "ActiveState=inactive ConditionResult=no Result=success" {
		tb.Errorf("Fulcrum during IBD: %q, want inactive, skipped by its condition", st)
	}
	if f := l.sh("systemctl is-failed fulcrum || true"); f == "failed" {
		tb.Errorf("fulcrum.service failed during IBD")
	}
	if l.sh("test -e /run/nodebake/fulcrum-may-start && echo yes || echo no") != "no" {
		tb.Errorf("/run/nodebake/fulcrum-may-start exists during IBD")
	}
	l.waitFor("bitcoind out of IBD", `bitcoin-cli -datadir=/data/bitcoin getblockchaininfo | grep -q '"initialblockdownload": false'`, 6*time.Minute,
		"bitcoin-cli -datadir=/data/bitcoin getblockchaininfo")
	before := l.sh("systemctl show -P InvocationID bitcoind")
	// nodebake-sync-watch asks bitcoind every 30 seconds; restarting it
	// asks at once (what it does next is its own).
	pokeSyncWatch(l)
	l.waitFor("sync-watch: marker, bitcoind restarted, Fulcrum started", "test -e "+firstboot.SyncedMarker+" && systemctl is-active -q fulcrum", 4*time.Minute,
		"sudo journalctl --no-pager -u nodebake-sync-watch -u fulcrum | tail -30")
	if after := l.sh("systemctl show -P InvocationID bitcoind"); after == before {
		tb.Errorf("sync-watch did not restart bitcoind (same invocation %s)", after)
	}
	if j := l.sh("sudo journalctl --no-pager -u nodebake-sync-watch"); !strings.Contains(j, "restarting bitcoind once") || !strings.Contains(j, "starting Fulcrum") {
		tb.Errorf("sync-watch's journal:\n%s", j)
	}
	if r := l.report(); !r.FulcrumMayStart {
		tb.Errorf("after the sync, nodectl status says fulcrum_may_start false")
	}

	l.waitFor("Fulcrum up-to-date, Electrum port open", `grep -qE ':C351 0+:0000 0A' /proc/net/tcp /proc/net/tcp6`, 12*time.Minute,
		"sudo journalctl --no-pager -u fulcrum | tail -20")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := electrumtest.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", ePort), nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	if server, _, err := c.ServerVersion(ctx, "nodebake-test", "1.4"); err != nil || !strings.Contains(server, "Fulcrum") {
		tb.Errorf("server.version: %q %v", server, err)
	}
	// Some seconds of both synced.
	l.waitFor("samples of the synced phase", `[ $(grep -c '^synced' /run/memsample.log) -ge 10 ]`, 2*time.Minute, "tail -3 /run/memsample.log")
	l.sh("sudo touch /run/memsample.stop")

	if n := l.sh("systemctl show -P NRestarts bitcoind; systemctl show -P NRestarts fulcrum"); n != "0\n0" {
		tb.Errorf("NRestarts of bitcoind, fulcrum: %q, want 0 and 0", n)
	}
	if oom := l.sh("sudo journalctl -b --no-pager | grep -iE 'out of memory|oom-kill|oom_kill|killed process' || true"); oom != "" {
		tb.Errorf("OOM in the journal:\n%s", oom)
	}
	if oom := l.sh("sudo journalctl -k -b --no-pager | grep -iE 'out of memory|oom' || true"); oom != "" {
		tb.Errorf("OOM in the kernel log:\n%s", oom)
	}

	peaks := measure(tb, l.sh("cat /run/memsample.log"))
	var out []phasePeak
	for _, ph := range lifePhases {
		p := peaks[ph.label]
		p.phase, p.limit, p.memTotal = ph.label, limit, memTotal
		for _, b := range s.Budget.Phases {
			if b.Name == ph.budget {
				p.confBitcoind, p.confFulcrum, p.confPeak = b.Bitcoind, b.Fulcrum, b.Peak
			}
		}
		tb.Logf("peak %d MiB %s: bitcoind %d fulcrum %d total %d (configured bitcoind %d fulcrum %d, peak with reserve %d; limit MemTotal %d - 512 = %d)",
			mem, ph.label, p.bitcoind, p.fulcrum, p.total, p.confBitcoind, p.confFulcrum, p.confPeak, memTotal, limit)
		if p.bitcoind+p.fulcrum > limit {
			tb.Errorf("%d MiB, %s: bitcoind %d + Fulcrum %d MiB > MemTotal %d - 512 MiB", mem, ph.label, p.bitcoind, p.fulcrum, memTotal)
		}
		// Fulcrum waits through IBD at these sizes. A sample can catch its
		// unit starting just as bitcoind leaves IBD (a few MiB); Fulcrum
		// running would show its base of 400 MiB and more.
		if ph.label == "IBD" && p.fulcrum > 64 {
			tb.Errorf("%d MiB: Fulcrum took %d MiB during IBD, when it waits", mem, p.fulcrum)
		}
		if p.bitcoind == 0 {
			tb.Errorf("%d MiB, %s: no sample of bitcoind", mem, ph.label)
		}
		out = append(out, p)
	}
	return out
}

// measure reads memSampler's log: per phase, each program's largest
// memory.current (and memory.peak where the cgroup lived only in that
// phase: bitcoind's through IBD, Fulcrum's until it is synced, as it
// starts after IBD), and the largest sum of both at one time.
func measure(tb testing.TB, log string) map[string]phasePeak {
	tb.Helper()
	m := map[string]phasePeak{}
	mib := func(s string) int {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			tb.Fatalf("memory sample %q", s)
		}
		return int(n >> 20)
	}
	for _, line := range strings.Split(log, "\n") {
		f := strings.Fields(line)
		if len(f) != 5 {
			continue
		}
		p := m[f[0]]
		bc, fc, bp, fp := mib(f[1]), mib(f[2]), mib(f[3]), mib(f[4])
		if f[0] == "IBD" {
			bc = max(bc, bp)
		}
		if f[0] != "synced" {
			fc = max(fc, fp)
		}
		p.bitcoind, p.fulcrum, p.total = max(p.bitcoind, bc), max(p.fulcrum, fc), max(p.total, mib(f[1])+mib(f[2]))
		m[f[0]] = p
	}
	return m
}

// TestLifecycle follows the default image from power-on through bitcoind's
// initial block download (Fulcrum waiting, as the memory plan has it at
// these sizes), the sync-watch's switch to the synced settings, Fulcrum's
// index, to both synced, at 2 and 4 GiB.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	for _, mem := range []int{2048, 4096} {
		t.Run(fmt.Sprintf("%dMiB", mem), func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			lifecycle(t, mem)
			t.Logf("%d MiB: %v", mem, time.Since(start).Round(time.Second))
		})
	}
}

// BenchmarkMemory prints, per memory tier and phase, the peak memory
// bitcoind and Fulcrum took in the guest beside what the budget
// configures for them (TestLifecycle's run and assertions).
func BenchmarkMemory(b *testing.B) {
	for i := 0; i < b.N; i++ {
		var rows []string
		for _, mem := range []int{2048, 4096} {
			for _, p := range lifecycle(b, mem) {
				rows = append(rows, fmt.Sprintf("%-6d %-9s %8d %8d %8d   %8d %8d %8d   %6d", mem, p.phase, p.bitcoind, p.fulcrum, p.total,
					p.confBitcoind, p.confFulcrum, p.confPeak, p.limit))
			}
		}
		fmt.Printf("memory, MiB     measured peak:                configured:\n%-6s %-9s %8s %8s %8s   %8s %8s %8s   %6s\n%s\n",
			"RAM", "phase", "bitcoind", "fulcrum", "sum", "bitcoind", "fulcrum", "peak", "limit", strings.Join(rows, "\n"))
	}
}

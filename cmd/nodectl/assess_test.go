package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/dataformat"
	"github.com/nodebake/nodebake/internal/firstboot"
	"github.com/nodebake/nodebake/internal/health"
)

func writeReport(t *testing.T, r firstboot.Report) string {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "firstboot.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeManifest(t *testing.T, kinds ...string) string {
	t.Helper()
	var arts []map[string]string
	for _, k := range kinds {
		arts = append(arts, map[string]string{"kind": k, "version": "1"})
	}
	b, _ := json.Marshal(map[string]any{"name": "node", "version": "1.0.0", "artifacts": arts})
	p := filepath.Join(t.TempDir(), "manifest.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAssess(t *testing.T) {
	good := writeReport(t, firstboot.Report{Steps: []firstboot.Step{{Name: "folders"}, {Name: "bitcoin.conf"}}})
	bad := writeReport(t, firstboot.Report{Steps: []firstboot.Step{{Name: "folders"}, {Name: "fulcrum tls", Error: "disk full"}}})
	bare := writeManifest(t)

	// An image without bitcoind or Fulcrum is judged on its first boot.
	out := mustRun(t, "assess", "-report", good, "-manifest", bare)
	if !strings.Contains(out, "first boot: all steps succeeded") || !strings.Contains(out, "neither bitcoind nor Fulcrum") {
		t.Errorf("assess:\n%s", out)
	}
	mustFail(t, "first boot: 1 step(s) failed: fulcrum tls (nodectl status)", "assess", "-report", bad, "-manifest", bare)
	mustFail(t, "first boot: no report at", "assess", "-report", filepath.Join(t.TempDir(), "none.json"), "-manifest", bare)

	// With bitcoind in the image, a bitcoind that does not answer fails
	// the assessment, after the wait, naming what was tried.
	start := time.Now()
	code, out, errs := nodectl(t, "assess", "-report", good, "-manifest", writeManifest(t, contract.BitcoinCore), "-wait", "1s")
	if code != 1 || !strings.Contains(errs, "did not all answer in time") || !strings.Contains(out, "bitcoind:   down: ") || strings.Contains(out, "fulcrum") {
		t.Errorf("assess with bitcoind down: exit %d\n%s%s", code, out, errs)
	}
	if time.Since(start) < time.Second {
		t.Errorf("gave up after %v, before the wait ended", time.Since(start))
	}
}

// Only the services the image has count.
func TestAwaitServices(t *testing.T) {
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	c := health.Config{BitcoindRPC: closed(), Cookie: filepath.Join(t.TempDir(), "none"), Electrum: closed(), FulcrumStats: "http://" + closed() + "/stats"}
	r, err := awaitServices(t.Context(), c, nil, time.Millisecond)
	if err != nil || r.Bitcoind.OK {
		t.Errorf("no services: %v (report %+v)", err, r)
	}
	if _, err := awaitServices(t.Context(), c, []string{contract.Fulcrum}, time.Millisecond); err == nil || !strings.Contains(err.Error(), "not all up") {
		t.Errorf("fulcrum down, one check: %v", err)
	}
	if got := describe(r, []string{contract.Fulcrum}); !strings.HasPrefix(got, "fulcrum:    down: electrum "+c.Electrum+": connection refused") {
		t.Errorf("describe: %q", got)
	}
}

// A Fulcrum that waits, by the memory plan, for bitcoind's initial sync is
// stopped on purpose: the assessment does not wait for it. Once it may
// start, it counts again.
func TestAssessFulcrumWaitsByDesign(t *testing.T) {
	plan := firstboot.Plan{FulcrumWaits: true, Why: "Fulcrum waits for bitcoind's initial sync: 2 GiB cannot hold both caches at once"}
	waiting := writeReport(t, firstboot.Report{Settings: firstboot.Settings{Plan: plan}, Steps: []firstboot.Step{{Name: "folders"}}})
	fulcrumOnly := writeManifest(t, contract.Fulcrum)
	out := mustRun(t, "assess", "-report", waiting, "-manifest", fulcrumOnly)
	if !strings.Contains(out, "fulcrum:    waits by design: "+plan.Why) {
		t.Errorf("assess with Fulcrum waiting:\n%s", out)
	}
	started := writeReport(t, firstboot.Report{FulcrumMayStart: true, Settings: firstboot.Settings{Plan: plan}, Steps: []firstboot.Step{{Name: "folders"}}})
	if code, out, _ := nodectl(t, "assess", "-report", started, "-manifest", fulcrumOnly); code != 1 || strings.Contains(out, "waits by design") {
		t.Errorf("assess with Fulcrum allowed to start but down: exit %d\n%s", code, out)
	}
}

// nodectl status -json prints the report, with the plan and the override
// warnings the QEMU tests and scripts read.
func TestStatusJSON(t *testing.T) {
	rep := firstboot.Report{
		FulcrumMayStart: true,
		Settings:        firstboot.Settings{Plan: firstboot.Plan{Why: "both run at full size: 16 GiB holds both"}},
		ConfigWarnings:  []string{"fulcrum.override.conf: db-mem is not a Fulcrum 2.x option (Fulcrum ignores it): did you mean db_mem?"},
		Steps:           []firstboot.Step{{Name: "folders"}},
	}
	out := mustRun(t, "status", "-json", "-report", writeReport(t, rep))
	var back firstboot.Report
	if err := json.Unmarshal([]byte(out), &back); err != nil {
		t.Fatalf("status -json: %v\n%s", err, out)
	}
	if !back.FulcrumMayStart || back.Settings.Plan != rep.Settings.Plan || len(back.ConfigWarnings) != 1 || back.ConfigWarnings[0] != rep.ConfigWarnings[0] {
		t.Errorf("status -json lost fields:\n%s", out)
	}
	if text := mustRun(t, "status", "-report", writeReport(t, rep)); !strings.Contains(text, rep.ConfigWarnings[0]) || !strings.Contains(text, "Plan:") {
		t.Errorf("status:\n%s", text)
	}
}

// A boot that upgrades its data gets the long wait: killing Fulcrum in the
// middle of --db-upgrade would corrupt the database.
func TestAssessWaitDuringUpgrade(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data-formats.json")
	var out strings.Builder
	if got := assessWait(10*time.Minute, 3*time.Hour, path, &out); got != 10*time.Minute {
		t.Errorf("no record: wait %s, want 10m", got)
	}
	rec := &dataformat.Record{Formats: map[string]int{"fulcrum-db": 2}}
	if err := rec.Save(path); err != nil {
		t.Fatal(err)
	}
	if got := assessWait(10*time.Minute, 3*time.Hour, path, &out); got != 10*time.Minute {
		t.Errorf("no upgrade under way: wait %s, want 10m", got)
	}
	rec.Upgrades = map[string]dataformat.Upgrade{"fulcrum-db": {From: 1, To: 2, Version: "0.2.0"}}
	if err := rec.Save(path); err != nil {
		t.Fatal(err)
	}
	if got := assessWait(10*time.Minute, 3*time.Hour, path, &out); got != 3*time.Hour {
		t.Errorf("upgrade under way: wait %s, want 3h", got)
	}
	if !strings.Contains(out.String(), "fulcrum-db upgrades from format 1 to 2: waiting up to 3h0m0s") {
		t.Errorf("output %q does not say why it waits longer", out.String())
	}
}

package firstboot

import (
	"strconv"
	"strings"
	"testing"
)

// TestRunFulcrumMayStart: on a machine where Fulcrum waits, the agent
// leaves fulcrum.service's condition missing until bitcoind has synced;
// where both fit at once, it creates it at once. The report says which.
func TestRunFulcrumMayStart(t *testing.T) {
	r := newTestRoot(t, memOf(4), 2, "2.1.1")
	rep := r.run()
	if _, ok := r.snapshot()[FulcrumMayStart]; ok || rep.FulcrumMayStart || !rep.Settings.Plan.FulcrumWaits {
		t.Errorf("4 GiB, not synced: want Fulcrum waiting, got flag=%v report %v plan %+v", ok, rep.FulcrumMayStart, rep.Settings.Plan)
	}
	r.write(SyncedMarker, "2025-01-01T00:00:00Z\n")
	rep = r.run()
	if !strings.Contains(r.read(FulcrumMayStart), "bitcoind has synced") || !rep.FulcrumMayStart {
		t.Errorf("4 GiB, synced: want the flag, got %q, report %v", r.read(FulcrumMayStart), rep.FulcrumMayStart)
	}

	r = newTestRoot(t, memOf(16), 4, "2.1.1")
	rep = r.run()
	if !strings.Contains(r.read(FulcrumMayStart), "both run at full size") || !rep.FulcrumMayStart || rep.Settings.Plan.FulcrumWaits {
		t.Errorf("16 GiB: want the flag at once, got %q, report %v", r.read(FulcrumMayStart), rep.FulcrumMayStart)
	}
}

// TestRunReportsOverrideWarnings: what the programs will ignore in the
// override files reaches the report, and the files keep the lines.
func TestRunReportsOverrideWarnings(t *testing.T) {
	r := newTestRoot(t, memOf(8), 4, "2.1.1")
	r.write(FulcrumOverride, "db-mem = 4096\n")
	r.write(BitcoinOverride, "dbcache=3000\n")
	rep := r.run()
	want := "fulcrum.override.conf: db-mem is not a Fulcrum 2.x option (Fulcrum ignores it): did you mean db_mem?"
	if len(rep.ConfigWarnings) != 1 || rep.ConfigWarnings[0] != want {
		t.Errorf("config warnings %q, want %q", rep.ConfigWarnings, want)
	}
	if !hasLine([]byte(r.read(FulcrumConf)), "db-mem = 4096") || !hasLine([]byte(r.read(FulcrumConf)), "db_mem = 1024") {
		t.Errorf("fulcrum.conf must keep the image's db_mem and the user's line:\n%s", r.read(FulcrumConf))
	}
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil || !strings.Contains(text.String(), "WARNING:") || !strings.Contains(text.String(), want) {
		t.Errorf("status text lacks the warning (%v):\n%s", err, text.String())
	}
}

// TestRunSyncedBeforeMarker: sync-watch renders the synced phase before it
// writes the marker (so a run cut short is redone); Config.Synced gives
// the same configuration and flag as the marker does.
func TestRunSyncedBeforeMarker(t *testing.T) {
	r := newTestRoot(t, memOf(4), 2, "2.1.1")
	c := r.config()
	c.Synced = true
	rep, err := Run(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.snapshot()[SyncedMarker]; ok {
		t.Errorf("Run wrote %s; only sync-watch writes it, last", SyncedMarker)
	}
	if !rep.FulcrumMayStart || !strings.Contains(r.read(FulcrumMayStart), "bitcoind has synced") {
		t.Errorf("synced: want Fulcrum allowed to start, got %v, %q", rep.FulcrumMayStart, r.read(FulcrumMayStart))
	}
	want := "dbcache=" + strconv.Itoa(rep.Settings.Bitcoind.DBCacheSynced)
	if !hasLine([]byte(r.read(BitcoinConf)), want) {
		t.Errorf("bitcoin.conf lacks %q:\n%s", want, r.read(BitcoinConf))
	}
}

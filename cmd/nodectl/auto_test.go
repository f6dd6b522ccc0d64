package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

// countReboots replaces reboot for the test and counts its calls.
func countReboots(t *testing.T) *int {
	n := new(int)
	old := reboot
	reboot = func() error { *n++; return nil }
	t.Cleanup(func() { reboot = old })
	return n
}

func wantOut(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// An automatic run installs a newer version whenever it runs, reboots
// into it only inside the window, skips a version that failed here, and
// does nothing while paused or while the running boot is on trial; status
// shows each outcome.
func TestUpdateAuto(t *testing.T) {
	imgs := images(t, "1.0.0", "2.0.0")
	www := t.TempDir()
	srv := otatest.Server(www)
	defer srv.Close()
	b2, _ := bundle(t, imgs["2.0.0"], devPriv)
	if err := bundler.PublishDir(context.Background(), b2, filepath.Join(www, "bundles", "stable"), devSigner, nil); err != nil {
		t.Fatal(err)
	}
	web := srv.URL + "/bundles/stable/"
	reboots := countReboots(t)

	root := fakeDevice(t, imgs["1.0.0"], devKey, web)
	mustFail(t, "automatic updates are off: this image has no update.schedule", "update", "auto", "-root", root)
	if out := mustRun(t, "update", "status", "-root", root); !strings.Contains(out, "automatic  off") {
		t.Errorf("status without a schedule:\n%s", out)
	}
	write(t, root, contract.UpdateSchedulePath, "daily 03:00-05:00\n")
	if out := mustRun(t, "update", "status", "-root", root); !strings.Contains(out, "automatic  daily 03:00-05:00") || !strings.Contains(out, "last run   never") {
		t.Errorf("status before the first run:\n%s", out)
	}

	// Paused: nothing is checked.
	wantOut(t, mustRun(t, "update", "pause", "-root", root), "paused until nodectl update resume")
	wantOut(t, mustRun(t, "update", "auto", "-root", root, "-now", "2026-12-02T03:10:00Z"), "paused: nothing checked")
	wantEntries(t, root, "nodebake-a.conf")
	wantOut(t, mustRun(t, "update", "status", "-root", root), "paused until nodectl update resume", "paused: nothing checked")
	// A pause with an end is over once the end has passed.
	mustRun(t, "update", "pause", "-root", root, "-until", "2026-12-02T01:00:00Z")
	wantOut(t, mustRun(t, "update", "auto", "-root", root, "-now", "2026-12-01T23:00:00Z"), "paused until 2026-12-02T01:00:00Z")
	wantOut(t, mustRun(t, "update", "resume", "-root", root), "resumed")

	// Outside the window the update is installed but waits.
	out := mustRun(t, "update", "auto", "-root", root, "-now", "2026-12-02T02:00:00Z")
	wantOut(t, out, "slot b holds node 2.0.0", "2.0.0 installed: it boots when the next window opens, 2026-12-02T03:00:00Z")
	wantEntries(t, root, "nodebake-a.conf", "nodebake-b+3.conf")
	if *reboots != 0 {
		t.Fatalf("rebooted %d times outside the window", *reboots)
	}
	// The window's run reboots into it without downloading again.
	wantOut(t, mustRun(t, "update", "auto", "-root", root, "-now", "2026-12-02T03:20:00Z"), "rebooting into 2.0.0")
	if *reboots != 1 {
		t.Fatalf("%d reboots in the window, want 1", *reboots)
	}
	wantOut(t, mustRun(t, "update", "status", "-root", root), "last run   ", "rebooting into 2.0.0")

	// Slot b used up its tries: 2.0.0 is not installed again.
	esp := ota.ESPDir(filepath.Join(root, contract.ESPMount))
	if err := esp.Rename("loader/entries/nodebake-b+3.conf", "loader/entries/nodebake-b+0-3.conf"); err != nil {
		t.Fatal(err)
	}
	wantOut(t, mustRun(t, "update", "auto", "-root", root, "-now", "2026-12-03T03:20:00Z"), "skipped 2.0.0: it failed to boot here before")
	wantEntries(t, root, "nodebake-a.conf", "nodebake-b+0-3.conf")
	if *reboots != 1 {
		t.Fatalf("rebooted for a version that failed here")
	}

	// A device that runs 2.0.0 is up to date; one whose boot is on trial
	// waits for its assessment.
	current := fakeDevice(t, imgs["2.0.0"], devKey, web)
	write(t, current, contract.UpdateSchedulePath, "daily 03:00-05:00\n")
	wantOut(t, mustRun(t, "update", "auto", "-root", current, "-now", "2026-12-02T03:20:00Z"), "up to date: "+web+" offers 2.0.0, this device runs 2.0.0")
	trial := fakeDevice(t, imgs["1.0.0"], devKey, web)
	write(t, trial, contract.UpdateSchedulePath, "daily 03:00-05:00\n")
	if err := ota.ESPDir(filepath.Join(trial, contract.ESPMount)).Rename("loader/entries/nodebake-a.conf", "loader/entries/nodebake-a+2-1.conf"); err != nil {
		t.Fatal(err)
	}
	wantOut(t, mustRun(t, "update", "auto", "-root", trial, "-now", "2026-12-02T03:20:00Z"), "this boot of 1.0.0 is on trial")
	wantEntries(t, trial, "nodebake-a+2-1.conf")

	// A source that cannot be reached fails the run, and status says so.
	gone := fakeDevice(t, imgs["1.0.0"], devKey, srv.URL+"/bundles/nothing-here/")
	write(t, gone, contract.UpdateSchedulePath, "daily 03:00-05:00\n")
	code, _, _ := nodectl(t, "update", "auto", "-root", gone, "-now", "2026-12-02T03:20:00Z")
	if code == 0 {
		t.Error("a run whose source has nothing succeeded")
	}
	wantOut(t, mustRun(t, "update", "status", "-root", gone), "last run   ", ": failed: ")
	if *reboots != 1 {
		t.Errorf("%d reboots in all, want 1", *reboots)
	}
}

func TestUpdatePauseRefuses(t *testing.T) {
	root := t.TempDir()
	mustFail(t, "give -for or -until, not both", "update", "pause", "-root", root, "-for", "1h", "-until", "2026-12-02T01:00:00Z")
	mustFail(t, "-for -1h0m0s: want a positive duration", "update", "pause", "-root", root, "-for", "-1h")
	mustFail(t, "-until: parsing time", "update", "pause", "-root", root, "-until", "tomorrow")
	write(t, root, contract.UpdateSchedulePath, "daily 03:00-05:00\n")
	write(t, root, contract.UpdatePausePath, "soon\n")
	mustFail(t, `"soon" is not an RFC 3339 time`, "update", "auto", "-root", root)
}

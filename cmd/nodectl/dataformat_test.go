package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/dataformat"
	"github.com/nodebake/nodebake/internal/otatest"
)

// formatDevice lays out a device that runs 1.0.0 (Fulcrum 1.x) with a
// Fulcrum database in format 1, and a bundle of 2.0.0 (Fulcrum 2.x).
func formatDevice(t *testing.T) (root, bundleDir string) {
	t.Helper()
	dir := t.TempDir()
	oldImg := otatest.Image{Name: "node", Version: "1.0.0", DataFormats: map[string]int{contract.FulcrumDB: 1}}.Build(t, dir)
	newImg := otatest.Image{Name: "node", Version: "2.0.0", DataFormats: map[string]int{contract.FulcrumDB: 2}}.Build(t, dir)
	root = fakeDevice(t, oldImg, devKey, "")
	_, bundleDir = bundle(t, newImg, devPriv)
	setRecord(t, root, &dataformat.Record{Formats: map[string]int{contract.FulcrumDB: 1}})
	write(t, root, dataformat.FulcrumDB.Dir+"/meta/CURRENT", "format 1")
	return root, bundleDir
}

func setRecord(t *testing.T, root string, rec *dataformat.Record) {
	t.Helper()
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	write(t, root, contract.DataFormatsPath, string(b))
}

func record(t *testing.T, root string) *dataformat.Record {
	t.Helper()
	rec, err := dataformat.Load(filepath.Join(root, contract.DataFormatsPath))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

const upgradeNotice = "this update upgrades Fulcrum's database from format 1 to 2; the upgrade cannot be undone"

func TestUpdateSaysDataUpgrade(t *testing.T) {
	root, b := formatDevice(t)
	out := mustRun(t, "update", "check", "-root", root, b)
	if !strings.Contains(out, upgradeNotice) || !strings.Contains(out, "keeps a copy of the format 1 database at /data/fulcrum/fulcrum_db.format1") {
		t.Errorf("check does not name the upgrade:\n%s", out)
	}
	out = mustRun(t, "update", "apply", "-root", root, b)
	i, j := strings.Index(out, upgradeNotice), strings.Index(out, "installing node 2.0.0")
	if i < 0 || j < 0 || i > j {
		t.Errorf("apply does not name the upgrade before it writes:\n%s", out)
	}
	if s := record(t, root).Slots["b"]; s.Version != "2.0.0" || s.Formats[contract.FulcrumDB] != 2 {
		t.Errorf("slot b's formats are not recorded: %+v", record(t, root))
	}
}

func TestUpdateDataUpgradeWithoutRoom(t *testing.T) {
	root, b := formatDevice(t)
	f, err := os.Create(filepath.Join(root, dataformat.FulcrumDB.Dir, "headers"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 43); err != nil {
		t.Skipf("no sparse files here: %v", err)
	}
	f.Close()
	out := mustRun(t, "update", "check", "-root", root, b)
	if !strings.Contains(out, "apply refuses it as it stands: "+upgradeNotice) || !strings.Contains(out, "-accept-data-upgrade") {
		t.Errorf("check:\n%s", out)
	}
	mustFail(t, "/data has no room to keep a copy of it for a rollback", "update", "apply", "-root", root, b)
	wantEntries(t, root, "nodebake-a.conf")

	out = mustRun(t, "update", "apply", "-root", root, "-accept-data-upgrade", b)
	if !strings.Contains(out, "you accepted that (-accept-data-upgrade)") {
		t.Errorf("apply -accept-data-upgrade:\n%s", out)
	}
	if rec := record(t, root); !rec.Consented("2.0.0", contract.FulcrumDB, 2) {
		t.Errorf("consent not recorded: %+v", rec)
	}
	wantEntries(t, root, "nodebake-a.conf", "nodebake-b+3.conf")
}

func TestRollbackAcrossDataUpgrade(t *testing.T) {
	root, _ := formatDevice(t)
	// Slot b holds 0.9.0 (Fulcrum 1.x); the database was upgraded to
	// format 2 without a copy, or the upgrade is final.
	rec := &dataformat.Record{Formats: map[string]int{contract.FulcrumDB: 2},
		Slots: map[string]dataformat.Slot{"b": {Version: "0.9.0", Formats: map[string]int{contract.FulcrumDB: 1}}}}
	setRecord(t, root, rec)
	mustFail(t, "refusing to roll back to slot b (0.9.0): Fulcrum's database on /data was upgraded to format 2, and Fulcrum there reads format 1 only",
		"update", "rollback", "-root", root)
	wantEntries(t, root, "nodebake-a.conf")

	// With the format 1 copy still kept (the upgrade is under way), the
	// rollback is allowed: slot b's first boot puts it back. It then
	// fails only for want of slot b's entry.
	rec.Upgrades = map[string]dataformat.Upgrade{contract.FulcrumDB: {From: 1, To: 2, Version: "1.0.0", Kept: dataformat.FulcrumDB.KeptDir(1)}}
	setRecord(t, root, rec)
	write(t, root, dataformat.FulcrumDB.KeptDir(1)+"/meta/CURRENT", "format 1")
	code, _, errs := nodectl(t, "update", "rollback", "-root", root)
	if code == 0 || strings.Contains(errs, "refusing to roll back to slot b (0.9.0)") {
		t.Errorf("rollback with a kept copy: exit %d, %s", code, errs)
	}
}

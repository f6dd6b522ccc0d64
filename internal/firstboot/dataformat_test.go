package firstboot

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/dataformat"
)

// imageFormat lays out the running image's manifest: it writes Fulcrum's
// database in format f.
func (r *testRoot) imageFormat(version string, f int) {
	r.t.Helper()
	m := contract.Manifest{Name: "node", Version: version, DataFormats: map[string]int{contract.FulcrumDB: f}}
	r.write(contract.ManifestPath, string(m.JSON()))
}

// onTrial makes the boot a counted one (the slot is not blessed yet), or
// not.
func (r *testRoot) onTrial(yes bool) {
	r.t.Helper()
	if yes {
		r.write(BootCountVar, "x")
	} else if err := os.Remove(r.path(BootCountVar)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *testRoot) record() *dataformat.Record {
	r.t.Helper()
	rec, err := dataformat.Load(r.path(contract.DataFormatsPath))
	if err != nil {
		r.t.Fatal(err)
	}
	return rec
}

func (r *testRoot) setRecord(rec *dataformat.Record) {
	r.t.Helper()
	b, err := json.Marshal(rec)
	if err != nil {
		r.t.Fatal(err)
	}
	r.write(contract.DataFormatsPath, string(b))
}

// fulcrumDB lays out a Fulcrum 1.x database with the given tables.
func (r *testRoot) fulcrumDB(content string) {
	r.t.Helper()
	r.write(FulcrumDB+"/meta/CURRENT", content)
	r.write(FulcrumDB+"/headers", "headers "+content)
}

func (r *testRoot) absent(p string) {
	r.t.Helper()
	if _, err := os.Lstat(r.path(p)); err == nil {
		r.t.Errorf("%s exists", p)
	}
}

func dataStep(t *testing.T, rep *Report) Step {
	t.Helper()
	for _, st := range rep.Steps {
		if st.Name == "data formats" {
			return st
		}
	}
	t.Fatal("no data formats step in the report")
	return Step{}
}

func TestDataFormatFresh(t *testing.T) {
	r := newTestRoot(t, memOf(4), 2, "2.1.1")
	r.imageFormat("0.3.0", 2)
	r.write("proc/cmdline", "BOOT_IMAGE=x "+testSlot("b")+"\n")
	r.run()
	rec := r.record()
	if rec.Formats[contract.FulcrumDB] != 2 || len(rec.Upgrades) != 0 {
		t.Errorf("record for a fresh database: %+v", rec)
	}
	if s := rec.Slots["b"]; s.Version != "0.3.0" || s.Formats[contract.FulcrumDB] != 2 {
		t.Errorf("the running slot is not recorded: %+v", rec.Slots)
	}
	r.absent(FulcrumEnv)
	r.absent(FulcrumBlocked)
}

func testSlot(name string) string {
	return contract.Slot{Name: name, RootPartUUID: "0b7c9a52-2c0e-4d7e-9a39-7f6b0c1e2d3a", DataPartUUID: "5f1d7c2e-8a44-4b0b-b6c1-0d2e3f4a5b6c",
		Verity: contract.Verity{RootHash: strings.Repeat("ab", 32), Salt: "00", DataBlocks: 1, HashOffset: 4096}}.Format()
}

// TestDataFormatUpgradeThenSettle boots a 2.x image on a 1.x database:
// a copy is kept, Fulcrum gets --db-upgrade while the slot is on trial,
// and once it is blessed the copy goes and the flag with it.
func TestDataFormatUpgradeThenSettle(t *testing.T) {
	r := newTestRoot(t, memOf(4), 2, "2.1.1")
	r.imageFormat("0.3.0", 2)
	r.setRecord(&dataformat.Record{Formats: map[string]int{contract.FulcrumDB: 1}})
	r.fulcrumDB("format 1")
	r.onTrial(true)

	rep := r.run()
	kept := dataformat.FulcrumDB.KeptDir(1)
	if got := r.read(kept + "/meta/CURRENT"); got != "format 1" || r.read(kept+"/headers") != "headers format 1" {
		t.Errorf("kept copy holds %q", got)
	}
	if o, err := r.owners.ownerOf(r.path(kept)); err != nil || o != testFulcrum {
		t.Errorf("kept folder owned by %v (%v), want fulcrum's, as the original", o, err)
	}
	if fi, err := os.Stat(r.path(kept)); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("kept folder: %v %v, want the original's mode 0750", fi, err)
	}
	rec := r.record()
	if u := rec.Upgrades[contract.FulcrumDB]; rec.Formats[contract.FulcrumDB] != 2 || u != (dataformat.Upgrade{From: 1, To: 2, Version: "0.3.0", Kept: kept}) {
		t.Errorf("record before Fulcrum starts: %+v", rec)
	}
	if got := r.read(FulcrumEnv); got != "FULCRUM_ARGS=--db-upgrade\n" {
		t.Errorf("%s = %q", FulcrumEnv, got)
	}
	if st := dataStep(t, rep); st.Error != "" || !strings.Contains(st.Items[0].Detail, "kept at /data/fulcrum/fulcrum_db.format1") {
		t.Errorf("report: %+v", st)
	}
	r.absent(kept + ".tmp")

	// Fulcrum upgrades; the device reboots while still on trial: the
	// flag again (Fulcrum ignores it on a 2.x database), the copy as it was.
	r.write(FulcrumDB+"/meta/CURRENT", "format 2")
	r.run()
	if r.read(FulcrumEnv) != "FULCRUM_ARGS=--db-upgrade\n" || r.read(kept+"/meta/CURRENT") != "format 1" {
		t.Errorf("second boot on trial: env %q, copy %q", r.read(FulcrumEnv), r.read(kept+"/meta/CURRENT"))
	}

	// Blessed: the upgrade is final.
	r.onTrial(false)
	r.run()
	r.absent(kept)
	r.absent(FulcrumEnv)
	rec = r.record()
	if rec.Formats[contract.FulcrumDB] != 2 || len(rec.Upgrades) != 0 {
		t.Errorf("record after blessing: %+v", rec)
	}
	if r.read(FulcrumDB+"/meta/CURRENT") != "format 2" {
		t.Error("settling changed the database")
	}
}

// TestDataFormatFallbackRestores boots the 1.x image again before the
// 2.x slot was blessed: the kept copy is put back.
func TestDataFormatFallbackRestores(t *testing.T) {
	r := newTestRoot(t, memOf(4), 2, "2.1.1")
	r.imageFormat("0.3.0", 2)
	r.setRecord(&dataformat.Record{Formats: map[string]int{contract.FulcrumDB: 1}})
	r.fulcrumDB("format 1")
	r.onTrial(true)
	r.run()
	r.write(FulcrumDB+"/meta/CURRENT", "format 2")

	r.imageFormat("0.2.0", 1)
	r.write(FulcrumVersionFile, "1.11.1\n")
	r.onTrial(false) // the old slot was blessed long ago
	rep := r.run()
	if got := r.read(FulcrumDB + "/meta/CURRENT"); got != "format 1" {
		t.Errorf("database after the fallback holds %q, want the kept format 1", got)
	}
	rec := r.record()
	if rec.Formats[contract.FulcrumDB] != 1 || len(rec.Upgrades) != 0 {
		t.Errorf("record after the fallback: %+v", rec)
	}
	for _, p := range []string{dataformat.FulcrumDB.KeptDir(1), FulcrumDB + ".discard", FulcrumEnv, FulcrumBlocked} {
		r.absent(p)
	}
	if st := dataStep(t, rep); st.Error != "" || !strings.Contains(st.Items[0].Detail, "put back") {
		t.Errorf("report: %+v", st)
	}
}

// TestDataFormatFallbackRefuses boots the 1.x image on a database that
// was upgraded without a copy: Fulcrum is kept stopped, and why is said.
func TestDataFormatFallbackRefuses(t *testing.T) {
	r := newTestRoot(t, memOf(4), 2, "1.11.1")
	r.imageFormat("0.2.0", 1)
	r.setRecord(&dataformat.Record{Formats: map[string]int{contract.FulcrumDB: 2},
		Upgrades: map[string]dataformat.Upgrade{contract.FulcrumDB: {From: 1, To: 2, Version: "0.3.0"}}})
	r.fulcrumDB("format 2")
	rep, err := Run(r.config())
	if err == nil || !strings.Contains(err.Error(), "data formats") {
		t.Fatalf("Run = %v, want the data formats step to fail", err)
	}
	st := dataStep(t, rep)
	for _, want := range []string{"Fulcrum is not started", "upgraded to format 2 by 0.3.0", "reads format 1 only", "bitcoind runs"} {
		if !strings.Contains(st.Error, want) {
			t.Errorf("step error lacks %q: %s", want, st.Error)
		}
	}
	if got := r.read(FulcrumBlocked); !strings.Contains(got, "Fulcrum is not started") {
		t.Errorf("%s = %q", FulcrumBlocked, got)
	}
	r.absent(FulcrumEnv)
	if failed := rep.Failed(); len(failed) != 1 {
		t.Errorf("other steps failed too: %+v", failed)
	}
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil || !strings.Contains(text.String(), "FAILED: Fulcrum is not started") {
		t.Errorf("nodectl status does not say why (%v):\n%s", err, text.String())
	}
	if r.read(FulcrumDB+"/meta/CURRENT") != "format 2" {
		t.Error("the database was changed")
	}

	// Indexing anew: the admin moves the database away.
	if err := os.RemoveAll(r.path(FulcrumDB)); err != nil {
		t.Fatal(err)
	}
	r.run()
	r.absent(FulcrumBlocked)
	if rec := r.record(); rec.Formats[contract.FulcrumDB] != 1 || len(rec.Upgrades) != 0 {
		t.Errorf("record after the database was moved away: %+v", rec)
	}
}

// TestDataFormatNoRoom upgrades a database too large to copy: refused
// without consent, made without a copy with it.
func TestDataFormatNoRoom(t *testing.T) {
	r := newTestRoot(t, memOf(4), 2, "2.1.1")
	r.imageFormat("0.3.0", 2)
	r.setRecord(&dataformat.Record{Formats: map[string]int{contract.FulcrumDB: 1}})
	r.fulcrumDB("format 1")
	// A sparse file: its apparent size is what a copy would take.
	f, err := os.Create(r.path(FulcrumDB + "/txnum2txhash"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 43); err != nil {
		t.Skipf("no sparse files here: %v", err)
	}
	f.Close()
	r.onTrial(true)
	rep, err := Run(r.config())
	if err == nil || !strings.Contains(dataStep(t, rep).Error, "-accept-data-upgrade") {
		t.Fatalf("Run = %v, step %+v; want a refusal that names -accept-data-upgrade", err, dataStep(t, rep))
	}
	r.absent(FulcrumEnv)
	if r.read(FulcrumBlocked) == "" || r.record().Formats[contract.FulcrumDB] != 1 {
		t.Error("refused upgrade left Fulcrum unblocked or the record raised")
	}

	rec := r.record()
	rec.Consents = []dataformat.Consent{{Version: "0.3.0", Kind: contract.FulcrumDB, To: 2}}
	r.setRecord(rec)
	r.run()
	rec = r.record()
	if u := rec.Upgrades[contract.FulcrumDB]; rec.Formats[contract.FulcrumDB] != 2 || u.Kept != "" || u.From != 1 {
		t.Errorf("record after an accepted upgrade: %+v", rec)
	}
	if r.read(FulcrumEnv) != "FULCRUM_ARGS=--db-upgrade\n" {
		t.Error("no --db-upgrade")
	}
	r.absent(FulcrumBlocked)
	r.absent(dataformat.FulcrumDB.KeptDir(1))
}

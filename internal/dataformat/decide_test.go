package dataformat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDecide(t *testing.T) {
	up := &Upgrade{From: 1, To: 2, Version: "0.3.0", Kept: FulcrumDB.KeptDir(1)}
	noCopy := &Upgrade{From: 1, To: 2, Version: "0.3.0"}
	cases := []struct {
		name string
		b    Boot
		want Action
		why  string
	}{
		{"no Fulcrum in the image", Boot{Image: 0, Data: 2}, NotThisImage, "no Fulcrum"},
		{"fresh folder", Boot{Image: 2, Empty: true}, RecordImage, "empty"},
		{"fresh folder, recorded", Boot{Image: 2, Data: 2, Empty: true}, Nothing, "empty"},
		{"folder emptied by hand after an upgrade", Boot{Image: 1, Data: 2, Empty: true}, RecordImage, "format 1"},
		{"unrecorded data on trial", Boot{Image: 2}, Unrecorded, "once this slot is blessed"},
		{"unrecorded data, blessed", Boot{Image: 2, Blessed: true}, RecordImage, "format 2"},
		{"same format", Boot{Image: 2, Data: 2, Room: true}, Nothing, "format 2"},
		{"upgrade with room", Boot{Image: 2, Data: 1, Room: true}, UpgradeKeep, "kept at /data/fulcrum/fulcrum_db.format1"},
		{"upgrade with room and consent keeps a copy", Boot{Image: 2, Data: 1, Room: true, Consent: true}, UpgradeKeep, "kept"},
		{"upgrade without room, consent", Boot{Image: 2, Data: 1, Consent: true}, UpgradeNoCopy, "without a copy"},
		{"upgrade without room or consent", Boot{Image: 2, Data: 1}, DoNotStart, "-accept-data-upgrade"},
		{"upgrade under way, on trial", Boot{Image: 2, Data: 2, Upgrade: up, Kept: true}, ResumeUpgrade, "ignores the upgrade flag"},
		{"upgrade under way, on trial, no copy", Boot{Image: 2, Data: 2, Upgrade: noCopy}, ResumeUpgrade, "from format 1 to 2"},
		{"upgrade under way, blessed", Boot{Image: 2, Data: 2, Upgrade: up, Kept: true, Blessed: true}, Settle, "final"},
		{"fallback with a copy", Boot{Image: 1, Data: 2, Upgrade: up, Kept: true, Blessed: true}, Restore, "put back"},
		{"fallback, copy gone", Boot{Image: 1, Data: 2, Upgrade: up, Blessed: true}, DoNotStart, "no copy in format 1"},
		{"fallback without a copy", Boot{Image: 1, Data: 2, Upgrade: noCopy, Blessed: true}, DoNotStart, "Fulcrum is not started (bitcoind runs)"},
		{"restore cut short: no database, the copy renamed back", Boot{Image: 1, Data: 2, Empty: true, Upgrade: up, Kept: true}, Restore, "put back"},
		{"database moved away during an upgrade", Boot{Image: 2, Data: 2, Empty: true, Upgrade: up, Kept: true}, RecordImage, "empty"},
		{"older image after a final upgrade", Boot{Image: 1, Data: 2, Room: true, Consent: true, Blessed: true}, DoNotStart, "reads format 1 only"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.b.Kind = FulcrumDB
			d := Decide(c.b)
			if d.Action != c.want || !strings.Contains(d.Why, c.why) {
				t.Errorf("Decide(%+v) = %s %q, want %s and %q", c.b, d.Action, d.Why, c.want, c.why)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name        string
		in          Install
		ok, consent bool
		msg         string
	}{
		{"nothing recorded", Install{Known: true, Image: 2}, true, false, ""},
		{"same format", Install{Known: true, Image: 2, Data: 2}, true, false, ""},
		{"no Fulcrum in the image", Install{Known: true, Image: 0, Data: 2}, true, false, ""},
		{"upgrade with room", Install{Known: true, Image: 2, Data: 1, Room: true}, true, false, "the upgrade cannot be undone: Fulcrum of format 1 cannot read the result. Its first boot keeps a copy"},
		{"upgrade without room", Install{Known: true, Image: 2, Data: 1}, false, false, "pass -accept-data-upgrade"},
		{"upgrade without room, consent", Install{Known: true, Image: 2, Data: 1, Consent: true}, true, true, "a rollback to an image with format 1 is refused"},
		{"downgrade below the data", Install{Known: true, Version: "0.2.0", Image: 1, Data: 2, Consent: true}, false, false, "image 0.2.0 writes Fulcrum's database in format 1"},
		{"old bundle", Install{Image: 0, Data: 2}, false, false, "bundle format 1"},
		{"old bundle, consent", Install{Image: 0, Data: 2, Consent: true}, true, false, "as accepted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.in.Kind = FulcrumDB
			v := Check(c.in)
			if v.OK != c.ok || v.Consent != c.consent || !strings.Contains(v.Message, c.msg) || (c.msg == "") != (v.Message == "") {
				t.Errorf("Check(%+v) = %+v, want ok %v consent %v and %q", c.in, v, c.ok, c.consent, c.msg)
			}
		})
	}
	if v := Check(Install{Kind: FulcrumDB, Known: true, Image: 2, Data: 1}); !strings.HasPrefix(v.Message, "this update upgrades Fulcrum's database from format 1 to 2; the upgrade cannot be undone") {
		t.Errorf("the message does not start by naming the upgrade: %q", v.Message)
	}
}

func TestCheckRollback(t *testing.T) {
	up := &Upgrade{From: 1, To: 2, Version: "0.3.0", Kept: FulcrumDB.KeptDir(1)}
	cases := []struct {
		name string
		r    Rollback
		err  string
	}{
		{"nothing recorded", Rollback{Known: true, Image: 1}, ""},
		{"same format", Rollback{Known: true, Image: 2, Data: 2}, ""},
		{"empty folder", Rollback{Known: true, Image: 1, Data: 2, Empty: true}, ""},
		{"upgrade under way, copy kept", Rollback{Known: true, Image: 1, Data: 2, Upgrade: up, Kept: true}, ""},
		{"upgrade under way, copy gone", Rollback{Known: true, Slot: "a", Version: "0.2.0", Image: 1, Data: 2, Upgrade: up}, "refusing to roll back to slot a (0.2.0)"},
		{"final upgrade", Rollback{Known: true, Slot: "a", Version: "0.2.0", Image: 1, Data: 2}, "upgraded to format 2, and Fulcrum there reads format 1 only"},
		{"unknown slot", Rollback{Slot: "a", Data: 2}, "does not know which format"},
		{"newer slot", Rollback{Known: true, Image: 2, Data: 1}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.r.Kind = FulcrumDB
			err := CheckRollback(c.r)
			if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
				t.Errorf("CheckRollback(%+v) = %v, want %q", c.r, err, c.err)
			}
		})
	}
}

func TestMeasureAndRoom(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fulcrum_db")
	u, err := Measure(dir)
	if err != nil || !u.Empty {
		t.Fatalf("Measure(missing) = %+v, %v; want empty", u, err)
	}
	for p, n := range map[string]int{"meta/000001.sst": 100, "meta/CURRENT": 16, "txhash2txnum/1.sst": 50, "headers": 300} {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if u, err = Measure(dir); err != nil || u != (Usage{Total: 466, Largest: 300}) {
		t.Fatalf("Measure = %+v, %v; want 466 bytes, the largest entry 300", u, err)
	}
	if ok, why, err := Room(dir, u); err != nil || !ok || !strings.Contains(why, "needed") {
		t.Errorf("Room(small) = %v %q %v, want room", ok, why, err)
	}
	if ok, _, err := Room(dir, Usage{Total: 1 << 60}); err != nil || ok {
		t.Errorf("Room(an exabyte) = %v %v, want no room", ok, err)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", ".nodebake", "data-formats.json")
	r, err := Load(path)
	if err != nil || len(r.Formats) != 0 {
		t.Fatalf("Load(missing) = %+v, %v", r, err)
	}
	r.SetFormat(FulcrumDB.Name, 2)
	r.SetSlot("b", "0.3.0", map[string]int{FulcrumDB.Name: 2})
	r.Consents = append(r.Consents, Consent{Version: "0.3.0", Kind: FulcrumDB.Name, To: 2})
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Formats[FulcrumDB.Name] != 2 || back.Slots["b"].Formats[FulcrumDB.Name] != 2 || !back.Consented("0.3.0", FulcrumDB.Name, 2) || back.Consented("0.3.1", FulcrumDB.Name, 2) {
		t.Errorf("round trip: %+v", back)
	}
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "formats of the data on /data are unknown") {
		t.Errorf("Load(damaged) = %v", err)
	}
}

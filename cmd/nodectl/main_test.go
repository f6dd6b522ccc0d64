package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/internal/bytesize"
	"github.com/nodebake/nodebake/internal/firstboot"
)

func TestStatus(t *testing.T) {
	rep := firstboot.Report{
		Time:          time.Date(2025, 11, 24, 12, 0, 0, 0, time.UTC),
		FulcrumSource: firstboot.FulcrumVersionFile + ": 2.1.1",
		Settings:      firstboot.Size(firstboot.Hardware{MemTotal: 4 * bytesize.GiB, CPUs: 2}, 2),
		Steps: []firstboot.Step{
			{Name: "fulcrum tls", Items: []firstboot.Item{{What: firstboot.FulcrumKey, Status: firstboot.Created, Detail: "there was no key"}}},
			{Name: "bitcoin.conf", Items: []firstboot.Item{{What: firstboot.BitcoinConf, Status: firstboot.Unchanged}}},
		},
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "firstboot.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	if code := run([]string{"status", "-report", path}, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	for _, want := range []string{"all steps succeeded", "tier ≤ 4 GiB, slow-device mode", "dbcache (IBD)", "2048 MiB",
		"created /data/fulcrum/key.pem: there was no key", "bitcoin.conf", "1 unchanged"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}

	// A failed step makes status fail too, for scripts.
	rep.Steps[1].Error = "disk full (bitcoind runs with the previous /data/bitcoin/bitcoin.conf if there is one)"
	b, _ = json.Marshal(rep)
	os.WriteFile(path, b, 0o644)
	out.Reset()
	errs.Reset()
	if code := run([]string{"status", "-report", path}, &out, &errs); code != 1 || !strings.Contains(out.String(), "FAILED: disk full") {
		t.Errorf("failed step: exit %d, output:\n%s", code, out.String())
	}

	errs.Reset()
	if code := run([]string{"status", "-report", filepath.Join(t.TempDir(), "none.json")}, &out, &errs); code != 1 || !strings.Contains(errs.String(), "has not run this boot") {
		t.Errorf("missing report: exit %d, %s", code, errs.String())
	}
}

func TestUsage(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run(nil, &out, &errs); code != 2 || !strings.Contains(errs.String(), "firstboot") {
		t.Errorf("no command: exit %d, %s", code, errs.String())
	}
	errs.Reset()
	if code := run([]string{"frobnicate"}, &out, &errs); code != 2 || !strings.Contains(errs.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %s", code, errs.String())
	}
}

// Asking for help is not an error: it prints the usage and exits 0, for the
// program and for every command.
func TestHelpExitsZero(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "help"} {
		var out, errs bytes.Buffer
		if code := run([]string{arg}, &out, &errs); code != 0 || !strings.Contains(out.String(), "usage: nodectl") {
			t.Errorf("nodectl %s: exit %d, stdout %q", arg, code, out.String())
		}
	}
	for name := range commands {
		var out, errs bytes.Buffer
		if code := run([]string{name, "-h"}, &out, &errs); code != 0 {
			t.Errorf("nodectl %s -h: exit %d\n%s%s", name, code, out.String(), errs.String())
		}
	}
}

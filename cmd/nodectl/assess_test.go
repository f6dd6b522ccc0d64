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

package rootfs

import (
	"archive/tar"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/spec"
)

const testUpdateKey = "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="

// Every image mounts its ESP at /efi and has the boot assessment; an
// image whose spec names an update key carries it and the source.
func TestUpdateUnitsAndKey(t *testing.T) {
	s := testSpec(t)
	s.Update = &spec.Update{PublicKey: testUpdateKey, Source: "oci://ghcr.io/me/node:stable"}
	tr := debianish(t)
	m, err := Configure(tr, s)
	if err != nil {
		t.Fatal(err)
	}
	mount := read(t, tr, "etc/systemd/system/efi.mount")
	for _, want := range []string{"What=/dev/disk/by-partuuid/" + contract.UUID("node", contract.ESP) + "\n", "Where=/efi\n", "Type=vfat\n", "umask=0077"} {
		if !strings.Contains(mount, want) {
			t.Errorf("efi.mount lacks %q:\n%s", want, mount)
		}
	}
	if e, ok := tr.Get("efi"); !ok || e.Type != tar.TypeDir {
		t.Error("no /efi mount point")
	}
	for link, target := range map[string]string{
		"etc/systemd/system/local-fs.target.wants/efi.automount":                   "/etc/systemd/system/efi.automount",
		"etc/systemd/system/boot-complete.target.requires/nodebake-health.service": "/etc/systemd/system/nodebake-health.service",
	} {
		if e, ok := tr.Get(link); !ok || e.Link != target {
			t.Errorf("%s → %+v, want a link to %s", link, e, target)
		}
	}
	health := read(t, tr, "etc/systemd/system/nodebake-health.service")
	for _, want := range []string{"Before=boot-complete.target", "FailureAction=reboot", "ExecStart=/usr/bin/nodectl assess -wait ", "LoaderBootCountPath-"} {
		if !strings.Contains(health, want) {
			t.Errorf("nodebake-health.service lacks %q", want)
		}
	}
	if got := read(t, tr, strings.TrimPrefix(contract.UpdateKeyPath, "/")); got != testUpdateKey+"\n" {
		t.Errorf("%s: %q", contract.UpdateKeyPath, got)
	}
	if got := read(t, tr, strings.TrimPrefix(contract.UpdateSourcePath, "/")); got != "oci://ghcr.io/me/node:stable\n" {
		t.Errorf("%s: %q", contract.UpdateSourcePath, got)
	}
	if _, ok := tr.Get(strings.TrimPrefix(contract.UpdateInsecurePath, "/")); ok {
		t.Errorf("%s in an image whose source is not insecure", contract.UpdateInsecurePath)
	}
	// update.insecure: true is baked in as a file the device looks for.
	s.Update = &spec.Update{PublicKey: testUpdateKey, Source: "http://10.0.2.100/bundles/", Insecure: true}
	insecure := debianish(t)
	if _, err := Configure(insecure, s); err != nil {
		t.Fatal(err)
	}
	if got := read(t, insecure, strings.TrimPrefix(contract.UpdateInsecurePath, "/")); got != "true\n" {
		t.Errorf("%s: %q", contract.UpdateInsecurePath, got)
	}
	// update.schedule: the window for nodectl, and the timer that opens it.
	s.Update = &spec.Update{PublicKey: testUpdateKey, Source: "oci://ghcr.io/me/node:stable", Schedule: "sat,sun 22:00-02:00"}
	auto := debianish(t)
	if _, err := Configure(auto, s); err != nil {
		t.Fatal(err)
	}
	if got := read(t, auto, strings.TrimPrefix(contract.UpdateSchedulePath, "/")); got != "sat,sun 22:00-02:00\n" {
		t.Errorf("%s: %q", contract.UpdateSchedulePath, got)
	}
	timer := read(t, auto, "etc/systemd/system/nodebake-update.timer")
	for _, want := range []string{"OnCalendar=Sun,Sat *-*-* 22:00:00\n", "RandomizedDelaySec=3600\n", "WantedBy=timers.target"} {
		if !strings.Contains(timer, want) {
			t.Errorf("nodebake-update.timer lacks %q:\n%s", want, timer)
		}
	}
	if e, ok := auto.Get("etc/systemd/system/timers.target.wants/nodebake-update.timer"); !ok || e.Link != "/etc/systemd/system/nodebake-update.timer" {
		t.Errorf("nodebake-update.timer is not enabled: %+v", e)
	}
	if svc := read(t, auto, "etc/systemd/system/nodebake-update.service"); !strings.Contains(svc, "ExecStart=/usr/bin/nodectl update auto\n") {
		t.Errorf("nodebake-update.service:\n%s", svc)
	}

	var back struct {
		Update *contract.Update `json:"update"`
	}
	if err := json.Unmarshal(m.JSON(), &back); err != nil || back.Update == nil || back.Update.PublicKey != testUpdateKey {
		t.Errorf("manifest update: %+v, %v", back.Update, err)
	}

	// Without an update section: no key, no source, nothing in the
	// manifest; the ESP and the assessment are still there.
	tr = debianish(t)
	if m, err = Configure(tr, testSpec(t)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{contract.UpdateKeyPath, contract.UpdateSourcePath} {
		if _, ok := tr.Get(strings.TrimPrefix(p, "/")); ok {
			t.Errorf("%s in an image without update:", p)
		}
	}
	if m.Update != nil || strings.Contains(string(m.JSON()), `"update"`) {
		t.Errorf("manifest update: %+v", m.Update)
	}
	for _, p := range []string{strings.TrimPrefix(contract.UpdateSchedulePath, "/"), "etc/systemd/system/nodebake-update.timer", "etc/systemd/system/timers.target.wants/nodebake-update.timer"} {
		if _, ok := tr.Get(p); ok {
			t.Errorf("%s in an image without update.schedule", p)
		}
	}
	if _, ok := tr.Get("etc/systemd/system/efi.mount"); !ok {
		t.Error("no efi.mount")
	}
}

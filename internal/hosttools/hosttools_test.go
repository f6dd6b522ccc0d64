package hosttools

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	if err := Check([]Tool{{"sh", "dash"}, {"/", "base-files"}}); err != nil {
		t.Fatalf("sh and / exist: %v", err)
	}
	err := Check([]Tool{{"sh", "dash"}, {"no-such-tool-nodebake", "nodebake-tool"}, {"/no/such/firmware.fd", "ovmf"}})
	if err == nil {
		t.Fatal("missing tools not reported")
	}
	for _, want := range []string{"no-such-tool-nodebake (package nodebake-tool)", "/no/such/firmware.fd (package ovmf)", "apt-get install nodebake-tool ovmf"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestBuildNamesGoWithoutApt(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	err := Check(Build)
	if err == nil {
		t.Fatal("an empty PATH has no mmdebstrap, tar2sqfs or go")
	}
	if want := "install them with: sudo apt-get install mmdebstrap squashfs-tools-ng\n"; !strings.Contains(err.Error()+"\n", want) {
		t.Errorf("error %q lacks %q (go is no Debian package)", err, want)
	}
	if !strings.Contains(err.Error(), "go (package "+GoToolchain+")") {
		t.Errorf("error %q does not name the Go toolchain", err)
	}
}

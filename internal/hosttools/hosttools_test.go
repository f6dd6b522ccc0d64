package hosttools

import (
	"os"
	"slices"
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

// make qemu installs exactly what nodebake qemu checks for: a newcomer
// after make demo-image gets QEMU and OVMF, not "qemu-system-x86_64 not
// found".
func TestMakeQemuInstallsQemu(t *testing.T) {
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "QEMU_PACKAGES := "); ok {
			listed = strings.Fields(v)
		}
	}
	if !strings.Contains(string(b), "@scripts/apt-install $(QEMU_PACKAGES)\n\t$(GO) run ./cmd/nodebake qemu $(IMAGE)") {
		t.Error("the Makefile's qemu target does not install QEMU_PACKAGES before running nodebake qemu")
	}
	var want []string
	for _, tool := range Qemu {
		if !slices.Contains(want, tool.Package) {
			want = append(want, tool.Package)
		}
	}
	if strings.Join(listed, " ") != strings.Join(want, " ") {
		t.Errorf("QEMU_PACKAGES = %v, want the packages of hosttools.Qemu: %v", listed, want)
	}
}

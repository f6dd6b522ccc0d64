package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/tree"
	"github.com/nodebake/nodebake/spec"
)

func TestOutputsCommitAndAbort(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "node.img")
	o := newOutputs(img)
	for _, p := range []string{img, img + ".sha256"} {
		if err := os.WriteFile(o.temp(p), []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(img); !os.IsNotExist(err) {
		t.Fatal("image visible before commit")
	}
	if err := o.commit(); err != nil {
		t.Fatal(err)
	}
	o.abort() // after a commit, abort must not remove the results
	for _, p := range []string{img, img + ".sha256"} {
		if b, err := os.ReadFile(p); err != nil || string(b) != p {
			t.Fatalf("%s: %q %v", p, b, err)
		}
	}

	dir2 := t.TempDir()
	o = newOutputs(filepath.Join(dir2, "x.img"))
	os.WriteFile(o.temp(filepath.Join(dir2, "x.img")), []byte("half"), 0o644)
	os.WriteFile(o.temp(filepath.Join(dir2, "x.img.zst")), []byte("half"), 0o644)
	o.abort()
	if left, _ := os.ReadDir(dir2); len(left) != 0 {
		t.Fatalf("abort left %v", left)
	}
}

func TestIDsAreStableAcrossVersions(t *testing.T) {
	a := IDs(&spec.Spec{Name: "node", Version: "1.0.0"})
	b := IDs(&spec.Spec{Name: "node", Version: "2.0.0"})
	c := IDs(&spec.Spec{Name: "other", Version: "1.0.0"})
	if a.RootA != b.RootA || a.Data != b.Data || a.Disk != b.Disk {
		t.Fatal("partition GUIDs change with the version: an update could not keep its slot's PARTUUID")
	}
	if a.RootA == c.RootA || a.RootA == a.RootB || a.ESP == a.Data {
		t.Fatal("GUIDs collide")
	}
	if string(a.veritySalt()) == string(b.veritySalt()) {
		t.Fatal("verity salt does not change with the version")
	}
}

func TestESPFiles(t *testing.T) {
	tr := tree.New()
	tr.WriteFile("usr/lib/systemd/boot/efi/systemd-bootx64.efi", []byte("MZboot"), 0o644, tree.Root)
	tr.WriteFile("boot/vmlinuz-6.1.0-50-amd64", []byte("kernel"), 0o644, tree.Root)
	s := &spec.Spec{Name: "node", Version: "1.0.0"}
	slot := contract.Slot{Name: "a", RootPartUUID: IDs(s).RootA, DataPartUUID: IDs(s).Data,
		Verity: contract.Verity{RootHash: strings.Repeat("0", 64), Salt: "00", DataBlocks: 1, HashOffset: 4096}}
	files, err := espFiles(tr, s, "6.1.0-50-amd64", slot, []byte("initrd"))
	if err != nil {
		t.Fatal(err)
	}
	if string(files["EFI/BOOT/BOOTX64.EFI"]) != "MZboot" || string(files["nodebake/a/vmlinuz"]) != "kernel" {
		t.Fatal("loader or kernel missing")
	}
	entry := string(files["loader/entries/nodebake-a.conf"])
	opts := ""
	for _, l := range strings.Split(entry, "\n") {
		if o, ok := strings.CutPrefix(l, "options "); ok {
			opts = o
		}
	}
	back, err := contract.Parse(opts)
	if err != nil || back != slot {
		t.Fatalf("entry options do not carry the slot: %v\n%s", err, entry)
	}
	if !strings.Contains(entry, "linux /nodebake/a/vmlinuz\ninitrd /nodebake/a/initrd.img\n") {
		t.Fatalf("entry:\n%s", entry)
	}
	if _, err := espFiles(tree.New(), s, "6.1.0-50-amd64", slot, nil); err == nil || !strings.Contains(err.Error(), "systemd-boot-efi") {
		t.Fatalf("missing systemd-boot: %v", err)
	}
}

func TestFindSource(t *testing.T) {
	src, err := FindSource("../spec")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(src, "cmd", "nodebake-init")); err != nil {
		t.Fatalf("FindSource = %s: %v", src, err)
	}
	if _, err := FindSource(t.TempDir()); err == nil || !strings.Contains(err.Error(), "--src") {
		t.Fatalf("outside the repo: %v", err)
	}
}

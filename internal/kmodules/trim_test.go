package kmodules

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/nodebake/nodebake/internal/tree"
)

const kver = "6.1.0-99-amd64"

// fakeDep has the shape of Debian's modules.dep: a storage driver with a
// chain of dependencies, a NIC that names firmware, a compressed module
// and drivers a headless node does not want.
const fakeDep = `kernel/drivers/nvme/host/nvme.ko: kernel/drivers/nvme/host/nvme-core.ko kernel/lib/crc64.ko
kernel/drivers/nvme/host/nvme-core.ko: kernel/lib/crc64.ko
kernel/lib/crc64.ko:
kernel/drivers/net/ethernet/realtek/r8169.ko: kernel/drivers/net/phy/libphy.ko
kernel/drivers/net/phy/libphy.ko:
kernel/drivers/net/phy/realtek.ko: kernel/drivers/net/phy/libphy.ko
kernel/drivers/gpu/drm/i915/i915.ko: kernel/drivers/gpu/drm/drm.ko
kernel/drivers/gpu/drm/drm.ko:
kernel/sound/core/snd.ko:
kernel/fs/ext4/ext4.ko.zst: kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
`

func fakeTree(t *testing.T) *tree.Tree {
	t.Helper()
	tr := tree.New()
	dir := Dir(kver) + "/"
	tr.WriteFile(dir+"modules.dep", []byte(fakeDep), 0o644, tree.Root)
	tr.WriteFile(dir+"modules.builtin", []byte("kernel/fs/squashfs/squashfs.ko\n"), 0o644, tree.Root)
	tr.WriteFile(dir+"modules.alias", []byte("alias pci:v00008086d* i915\n"), 0o644, tree.Root)
	var order []string
	for _, line := range strings.Split(strings.TrimSpace(fakeDep), "\n") {
		file, _, _ := strings.Cut(line, ":")
		content := []byte("\x7fELF " + file + "\x00")
		switch {
		case strings.HasSuffix(file, "r8169.ko"):
			content = append(content, "license=GPL\x00firmware=rtl_nic/rtl8168h-2.fw\x00firmware=rtl_nic/rtl8125*.fw\x00"...)
		case strings.HasSuffix(file, "i915.ko"):
			content = append(content, "firmware=i915/tgl_dmc.bin\x00"...)
		case strings.HasSuffix(file, ".zst"):
			var b bytes.Buffer
			w, _ := zstd.NewWriter(&b)
			w.Write(append(content, "firmware=ext4-fw.bin\x00"...))
			w.Close()
			content = b.Bytes()
		}
		tr.WriteFile(dir+file, content, 0o644, tree.Root)
		order = append(order, strings.TrimSuffix(file, ".zst"))
	}
	tr.WriteFile(dir+"modules.order", []byte(strings.Join(order, "\n")+"\n"), 0o644, tree.Root)
	fw := firmwareDir + "/"
	for _, f := range []string{"rtl_nic/rtl8168h-2.fw", "rtl_nic/rtl8125a-3.fw", "rtl_nic/rtl8125b-2.fw.zst", "rtl_nic/rtl8107e-1.fw", "i915/tgl_dmc_ver2_12.bin", "ext4-fw.bin", "iwlwifi-9000.ucode"} {
		tr.WriteFile(fw+f, []byte(f), 0o644, tree.Root)
	}
	tr.Symlink("tgl_dmc_ver2_12.bin", fw+"i915/tgl_dmc.bin")
	return tr
}

// fakeDepmod records what depmod was given and writes a modules.dep of
// the module files it finds, as depmod would.
type fakeDepmod struct{ saw []string }

func (f *fakeDepmod) run(base, kver string) error {
	dir := filepath.Join(base, "lib/modules", kver) // through the lib → usr/lib link, as kmod 30 looks
	var dep []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		f.saw = append(f.saw, rel)
		if strings.Contains(rel, ".ko") {
			dep = append(dep, rel+":")
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range []string{"modules.dep", "modules.dep.bin", "modules.alias"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(dep, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func moduleFiles(tr *tree.Tree) []string {
	var out []string
	for _, p := range tr.Paths() {
		if rel, ok := strings.CutPrefix(p, Dir(kver)+"/kernel/"); ok && strings.Contains(rel, ".ko") {
			out = append(out, rel)
		}
	}
	return out
}

func firmwareFiles(tr *tree.Tree) []string {
	var out []string
	for _, p := range tr.Paths() {
		if rel, ok := strings.CutPrefix(p, firmwareDir+"/"); ok && strings.Contains(rel, ".") {
			out = append(out, rel)
		}
	}
	return out
}

// A profile keeps its folders and names with their dependencies; extra
// adds to it; everything else goes, with the firmware only it named, and
// depmod re-indexes what is left.
func TestTrimProfileExtraAndClosure(t *testing.T) {
	tr := fakeTree(t)
	var dm fakeDepmod
	st, err := Trim(tr, kver, []string{"drivers/nvme/", "r8169", "drivers/net/phy/", "ext4", "squashfs", "not_in_this_kernel"}, []string{"i915"}, dm.run)
	if err != nil {
		t.Fatal(err)
	}
	wantMods := []string{
		"drivers/gpu/drm/drm.ko", "drivers/gpu/drm/i915/i915.ko",
		"drivers/net/ethernet/realtek/r8169.ko", "drivers/net/phy/libphy.ko", "drivers/net/phy/realtek.ko",
		"drivers/nvme/host/nvme-core.ko", "drivers/nvme/host/nvme.ko",
		"fs/ext4/ext4.ko.zst", "fs/jbd2/jbd2.ko", "lib/crc64.ko",
	}
	if got := moduleFiles(tr); !slices.Equal(got, wantMods) {
		t.Errorf("modules kept:\n got %q\nwant %q", got, wantMods)
	}
	if st.Modules != 10 || st.ModulesRemoved != 1 {
		t.Errorf("stats %+v", st)
	}
	if _, ok := tr.Get(Dir(kver) + "/kernel/sound"); ok {
		t.Error("the emptied kernel/sound folder is still there")
	}
	wantFW := []string{"ext4-fw.bin", "i915/tgl_dmc.bin", "i915/tgl_dmc_ver2_12.bin", "rtl_nic/rtl8125a-3.fw", "rtl_nic/rtl8125b-2.fw.zst", "rtl_nic/rtl8168h-2.fw"}
	if got := firmwareFiles(tr); !slices.Equal(got, wantFW) {
		t.Errorf("firmware kept:\n got %q\nwant %q", got, wantFW)
	}
	// depmod saw the kept modules and its inputs, not the old index.
	slices.Sort(dm.saw)
	for _, f := range dm.saw {
		if strings.HasPrefix(f, "modules.") && !slices.Contains(depmodInputs, f) {
			t.Errorf("depmod was handed the old index file %s", f)
		}
		if strings.Contains(f, "snd.ko") {
			t.Errorf("depmod was handed the removed %s", f)
		}
	}
	order, _ := tr.ReadFile(Dir(kver) + "/modules.order")
	if strings.Contains(string(order), "snd.ko") || !strings.Contains(string(order), "kernel/fs/ext4/ext4.ko\n") {
		t.Errorf("modules.order =\n%s", order)
	}
	// The index in the tree is depmod's.
	dep, _ := tr.ReadFile(Dir(kver) + "/modules.dep.bin")
	if !strings.Contains(string(dep), "kernel/drivers/gpu/drm/i915/i915.ko:") || strings.Contains(string(dep), "snd") {
		t.Errorf("modules.dep.bin =\n%s", dep)
	}
	alias, _ := tr.ReadFile(Dir(kver) + "/modules.alias")
	if strings.Contains(string(alias), "pci:v00008086") {
		t.Errorf("modules.alias is the old one:\n%s", alias)
	}
}

func TestTrimRefusesUnknownExtra(t *testing.T) {
	for _, tc := range []struct{ extra, want string }{
		{"nosuch_mod", `kernel 6.1.0-99-amd64 has no module "nosuch_mod": it is neither in modules.dep nor built in`},
		{"drivers/net/wireless/", "kernel 6.1.0-99-amd64 has no modules under kernel/drivers/net/wireless/"},
	} {
		tr := fakeTree(t)
		var dm fakeDepmod
		_, err := Trim(tr, kver, []string{"ext4"}, []string{tc.extra}, dm.run)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("extra %q: error %v, want %q", tc.extra, err, tc.want)
		}
		if len(moduleFiles(tr)) != 11 {
			t.Errorf("extra %q: modules removed although the selection failed", tc.extra)
		}
	}
	// A module built into the kernel is no error: there is nothing to keep.
	var dm fakeDepmod
	if _, err := Trim(fakeTree(t), kver, nil, []string{"squashfs", "ext4"}, dm.run); err != nil {
		t.Error(err)
	}
}

func TestTrimBrokenDep(t *testing.T) {
	tr := fakeTree(t)
	tr.WriteFile(Dir(kver)+"/modules.dep", []byte("kernel/a.ko: kernel/missing.ko\n"), 0o644, tree.Root)
	var dm fakeDepmod
	_, err := Trim(tr, kver, []string{"a"}, nil, dm.run)
	if err == nil || !strings.Contains(err.Error(), "kernel/a.ko needs kernel/missing.ko, which has no line of its own") {
		t.Errorf("error %v", err)
	}
}

// The headless profile names no module twice and only names or folders.
func TestHeadlessProfile(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range Headless {
		if seen[m] || strings.HasPrefix(m, "/") || strings.HasPrefix(m, "kernel/") {
			t.Errorf("profile entry %q repeated or not relative to kernel/", m)
		}
		seen[m] = true
	}
}

// The cache runs depmod once for one module set and hands back the same
// index; another set runs it again.
func TestCachedDepmod(t *testing.T) {
	cache := t.TempDir()
	var dm fakeDepmod
	runs := 0
	counted := func(base, kver string) error { runs++; return dm.run(base, kver) }
	index := func(keep []string) string {
		tr := fakeTree(t)
		if _, err := Trim(tr, kver, keep, nil, CachedDepmod(cache, counted)); err != nil {
			t.Fatal(err)
		}
		b, err := tr.ReadFile(Dir(kver) + "/modules.dep.bin")
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	first := index([]string{"ext4"})
	if again := index([]string{"ext4"}); again != first || runs != 1 {
		t.Errorf("second trim of the same set: %d depmod runs, index %q, first %q", runs, again, first)
	}
	if other := index([]string{"nvme"}); other == first || runs != 2 {
		t.Errorf("another set: %d depmod runs, index %q", runs, other)
	}
}

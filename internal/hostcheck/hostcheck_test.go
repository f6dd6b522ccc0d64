package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/nodebake/nodebake/internal/hosttools"
)

// A tiny module: one program run directly, one through a helper's
// parameter, two through a table, one that no constant names.
const tinyGo = `package tiny

import "os/exec"

func Pack() error { return exec.Command("mksquashfs", "root", "root.img").Run() }

func run(name string, args ...string) error { return exec.Command(name, args...).Run() }

func Format(dev string) error { return run("mkfs.ext4", "-q", dev) }

func Table() {
	for _, c := range [][]string{
		{"mmd", "::/EFI"},
		{"mcopy", "a", "::/a"},
	} {
		exec.Command(c[0], c[1:]...).Run()
	}
}

func Self(bin string) { exec.Command(bin + ".test").Run() }
`

func tiny(t *testing.T, allow map[allowKey]string) *scanner {
	t.Helper()
	dir := t.TempDir()
	for name, text := range map[string]string{"go.mod": "module example.com/tiny\n\ngo 1.22\n", "tiny.go": tinyGo} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := analyse(dir, allow)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeDebian knows the packages of the test, and no others.
type fakeDebian struct {
	basic map[string]bool
	owner map[string][]string
}

func (d fakeDebian) everywhere(pkg string) bool { return d.basic[pkg] }
func (d fakeDebian) owners(program string) ([]string, bool) {
	o, ok := d.owner[program]
	return o, ok
}

var (
	tinyAllowed = map[allowKey]string{{"tiny.go", "bin + \".test\""}: "a binary the test built"}
	tinyTable   = []hosttools.Tool{
		{Name: "mksquashfs", Package: "squashfs-tools"},
		{Name: "mkfs.ext4", Package: "e2fsprogs"},
		{Name: "mmd", Package: "mtools"},
		{Name: "mcopy", Package: "mtools"},
	}
	allLists = lists{test: []string{"squashfs-tools", "e2fsprogs", "mtools"}}
	noDebian = fakeDebian{}
)

func TestFindsPrograms(t *testing.T) {
	s := tiny(t, tinyAllowed)
	want := map[string][]string{
		"mksquashfs": {"tiny.go:5"},
		"mkfs.ext4":  {"tiny.go:9"}, // at Format's call of run, through its parameter
		"mmd":        {"tiny.go:13"},
		"mcopy":      {"tiny.go:14"},
	}
	if got := s.programs(); !reflect.DeepEqual(got, want) {
		t.Errorf("programs: got %v, want %v", got, want)
	}
	if p := s.problems(); len(p) != 0 {
		t.Errorf("unresolved: %v", p)
	}
	if msgs := check(s.programs(), s.problems(), tinyTable, nil, nil, allLists, noDebian); len(msgs) != 0 {
		t.Errorf("all packages listed, want no problems, got %q", msgs)
	}
}

func TestMissingPackage(t *testing.T) {
	s := tiny(t, tinyAllowed)
	l := lists{test: []string{"e2fsprogs", "mtools"}}
	got := check(s.programs(), s.problems(), tinyTable, nil, nil, l, noDebian)
	want := []string{"mksquashfs (run at tiny.go:5): package squashfs-tools is not in the Makefile's TEST_PACKAGES: add it"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// A package on every Debian machine needs no list.
	if msgs := check(s.programs(), s.problems(), tinyTable, nil, nil, l, fakeDebian{basic: map[string]bool{"squashfs-tools": true}}); len(msgs) != 0 {
		t.Errorf("essential package: want no problems, got %q", msgs)
	}
}

func TestUndeclaredProgram(t *testing.T) {
	s := tiny(t, tinyAllowed)
	got := check(s.programs(), s.problems(), tinyTable[:1:1], nil, nil, allLists, noDebian)
	want := []string{
		"mcopy (run at tiny.go:14) is not in hosttools.Programs: add it with its Debian package (dpkg -S names it)",
		"mkfs.ext4 (run at tiny.go:9) is not in hosttools.Programs: add it with its Debian package (dpkg -S names it)",
		"mmd (run at tiny.go:13) is not in hosttools.Programs: add it with its Debian package (dpkg -S names it)",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestUnresolvedProgram(t *testing.T) {
	s := tiny(t, nil)
	got := check(s.programs(), s.problems(), tinyTable, nil, nil, allLists, noDebian)
	want := []string{`tiny.go:20: exec.Command runs bin + ".test", which is not a constant: name the program with a constant, or add it to internal/hostcheck's allowed list with the reason it needs no Debian package`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestTableChecks(t *testing.T) {
	s := tiny(t, tinyAllowed)
	table := append(tinyTable[:len(tinyTable):len(tinyTable)],
		hosttools.Tool{Name: "zstd", Package: "zstd"},                            // nothing runs it
		hosttools.Tool{Name: "/usr/share/OVMF/OVMF_CODE_4M.fd", Package: "ovmf"}, // a file: its package must be listed
	)
	deb := fakeDebian{owner: map[string][]string{"mkfs.ext4": {"e2fsprogs"}, "mmd": {"dosfstools"}}}
	// The Go toolchain is no Debian package: no list needs it.
	build := []hosttools.Tool{{Name: "mksquashfs", Package: "squashfs-tools"}, {Name: "go", Package: hosttools.GoToolchain}}
	got := check(s.programs(), s.problems(), table, build, nil, allLists, deb)
	want := []string{
		"mmd: hosttools.Programs says package mtools, but dpkg says dosfstools installed it here: correct the table",
		"zstd: hosttools.Programs names it but no code runs it: remove it",
		"/usr/share/OVMF/OVMF_CODE_4M.fd (in hosttools.Programs): package ovmf is not in the Makefile's TEST_PACKAGES: add it",
		"mksquashfs (nodebake build runs it, hosttools.Build): package squashfs-tools is not in the Makefile's BUILD_PACKAGES: add it",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q,\nwant %q", got, want)
	}
}

func TestDeviceOnly(t *testing.T) {
	s := tiny(t, tinyAllowed)
	device := map[string]string{"mksquashfs": "runs on the device"}
	if msgs := check(s.programs(), s.problems(), tinyTable[1:], nil, device, allLists, noDebian); len(msgs) != 0 {
		t.Errorf("a device-only program needs no table entry, got %q", msgs)
	}
}

// The real tables: every program the check knows is on the device stays
// out of the host's table, and every name there is declared once.
func TestTablesApart(t *testing.T) {
	seen := map[string]bool{}
	for _, tool := range hosttools.Programs {
		if seen[tool.Name] {
			t.Errorf("%s is in hosttools.Programs twice", tool.Name)
		}
		seen[tool.Name] = true
		if _, ok := deviceOnly[tool.Name]; ok {
			t.Errorf("%s is both a host program and device-only", tool.Name)
		}
	}
}

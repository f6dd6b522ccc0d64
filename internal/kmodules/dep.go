// Package kmodules reads a kernel's module index (modules.dep,
// modules.builtin) and trims a root tree's modules and firmware to a
// profile: the modules asked for, everything they need by modules.dep, and
// the firmware files they name. The initramfs uses the same index.
package kmodules

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/nodebake/nodebake/internal/bytesize"
)

// Dir is where a merged-/usr Debian userland keeps kver's modules.
func Dir(kver string) string { return path.Join("usr/lib/modules", kver) }

// Dep is one line of modules.dep: a module file and the files it needs.
type Dep struct {
	File string   // relative to Dir, e.g. kernel/fs/ext4/ext4.ko
	Deps []string // the files it needs, in modules.dep's order
	Line string   // the line as read, for writing a restricted modules.dep
}

// ParseDep reads modules.dep ("kernel/a.ko: kernel/b.ko kernel/c.ko").
func ParseDep(b []byte) ([]Dep, error) {
	var out []Dep
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, bytesize.MiB)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		file, deps, ok := strings.Cut(line, ":")
		if !ok || file == "" {
			return nil, fmt.Errorf("line %d: %q is not \"module: dependencies\"", n, line)
		}
		if !fs.ValidPath(file) {
			return nil, fmt.Errorf("line %d: %q is not a relative path", n, file)
		}
		out = append(out, Dep{File: file, Deps: strings.Fields(deps), Line: line})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no modules listed")
	}
	return out, nil
}

// Name turns "kernel/drivers/md/dm-verity.ko[.xz]" into "dm_verity": the
// kernel treats - and _ in module names alike, file names use either.
func Name(file string) string {
	base := path.Base(file)
	if i := strings.LastIndex(base, ".ko"); i > 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// Index is a kernel's module tree as modules.dep and modules.builtin
// describe it.
type Index struct {
	Kver    string
	Deps    []Dep // in modules.dep's order
	byName  map[string]Dep
	byFile  map[string]Dep
	builtin map[string]bool
}

// ReadIndex reads kver's modules.dep and modules.builtin from root.
func ReadIndex(root fs.FS, kver string) (*Index, error) {
	if kver == "" || strings.Contains(kver, "/") {
		return nil, fmt.Errorf("kernel version %q is not a directory name under usr/lib/modules", kver)
	}
	dir := Dir(kver)
	depText, err := fs.ReadFile(root, path.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w (is linux-image-%s installed in the userland?)", kver, err, kver)
	}
	builtinText, err := fs.ReadFile(root, path.Join(dir, "modules.builtin"))
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", kver, err)
	}
	deps, err := ParseDep(depText)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path.Join(dir, "modules.dep"), err)
	}
	x := &Index{Kver: kver, Deps: deps, byName: map[string]Dep{}, byFile: map[string]Dep{}, builtin: map[string]bool{}}
	for _, d := range deps {
		x.byName[Name(d.File)] = d
		x.byFile[d.File] = d
	}
	for _, f := range strings.Fields(string(builtinText)) {
		x.builtin[Name(f)] = true
	}
	return x, nil
}

// Lookup returns the modules.dep line of the module called name ("-" and
// "_" alike).
func (x *Index) Lookup(name string) (Dep, bool) {
	d, ok := x.byName[strings.ReplaceAll(name, "-", "_")]
	return d, ok
}

// Builtin reports whether name is built into the kernel.
func (x *Index) Builtin(name string) bool {
	return x.builtin[strings.ReplaceAll(name, "-", "_")]
}

// Close adds file and, transitively, every file it needs to need.
func (x *Index) Close(need map[string]bool, file string) error {
	return x.close(need, file, file)
}

func (x *Index) close(need map[string]bool, file, from string) error {
	if need[file] {
		return nil
	}
	d, ok := x.byFile[file]
	if !ok {
		return fmt.Errorf("modules.dep: %s needs %s, which has no line of its own", from, file)
	}
	need[file] = true
	for _, dep := range d.Deps {
		if err := x.close(need, dep, file); err != nil {
			return err
		}
	}
	return nil
}

package rootfs

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"strings"

	"github.com/nodebake/nodebake/internal/tree"
)

// unitDirs are searched in systemd's order: the admin's units first.
var unitDirs = []string{"etc/systemd/system", "usr/lib/systemd/system"}

// Enable does what `systemctl enable` does, at build time: it reads the
// unit's [Install] section and creates the WantedBy/RequiredBy/Alias
// symlinks in /etc/systemd/system, then enables the units named by Also=.
// The root is read-only on the device, so nothing can be enabled later.
func Enable(t *tree.Tree, unit string) error {
	return enable(t, unit, map[string]bool{})
}

func enable(t *tree.Tree, unit string, done map[string]bool) error {
	if done[unit] {
		return nil
	}
	done[unit] = true
	file, body, err := findUnit(t, unit)
	if err != nil {
		return err
	}
	inst := installSection(body)
	if len(inst) == 0 {
		return fmt.Errorf("enable %s: %s has no [Install] section; it cannot be enabled", unit, file)
	}
	target := "/" + file
	for _, kv := range inst {
		switch kv[0] {
		case "WantedBy", "RequiredBy":
			suffix := ".wants"
			if kv[0] == "RequiredBy" {
				suffix = ".requires"
			}
			for _, by := range strings.Fields(kv[1]) {
				t.Symlink(target, path.Join("etc/systemd/system", by+suffix, unit))
			}
		case "Alias":
			for _, a := range strings.Fields(kv[1]) {
				t.Symlink(target, path.Join("etc/systemd/system", a))
			}
		case "Also":
			for _, also := range strings.Fields(kv[1]) {
				if err := enable(t, also, done); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Mask makes a unit impossible to start, as `systemctl mask` does.
func Mask(t *tree.Tree, unit string) {
	t.Symlink("/dev/null", path.Join("etc/systemd/system", unit))
}

func findUnit(t *tree.Tree, unit string) (string, []byte, error) {
	for _, d := range unitDirs {
		p := path.Join(d, unit)
		e, ok := t.Get(p)
		if !ok {
			continue
		}
		// Debian ships some units as links (e.g. sshd.service → ssh.service).
		if e.Link != "" {
			return findUnit(t, path.Base(e.Link))
		}
		b, err := t.ReadFile(p)
		return p, b, err
	}
	return "", nil, fmt.Errorf("enable %s: no such unit in %s: is its package in debian.packages?", unit, strings.Join(unitDirs, " or "))
}

// installSection returns the key/value pairs of a unit's [Install] section.
func installSection(unit []byte) [][2]string {
	var out [][2]string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			in = line == "[Install]"
		case in:
			if k, v, ok := strings.Cut(line, "="); ok {
				out = append(out, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
			}
		}
	}
	return out
}

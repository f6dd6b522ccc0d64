// Package overlays holds the files nodebake bakes into every image and
// copies overlay folders into a tree. A file named *.tmpl is rendered with
// text/template from the spec and stored without the suffix; every other
// file is copied as it is.
package overlays

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strings"
	"text/template"

	"github.com/nodebake/nodebake/internal/tree"
)

//go:embed all:base all:bitcoind all:fulcrum
var embedded embed.FS

// Base is nodebake's own overlay, applied before the spec's overlays.
func Base() fs.FS { return builtin("base") }

// Bitcoind and Fulcrum hold the services' units, applied when the image
// carries that artifact.
func Bitcoind() fs.FS { return builtin("bitcoind") }

// Fulcrum: see Bitcoind.
func Fulcrum() fs.FS { return builtin("fulcrum") }

func builtin(dir string) fs.FS {
	sub, err := fs.Sub(embedded, dir)
	if err != nil {
		panic(err) // the embed pattern above guarantees the folder
	}
	return baseFS{sub}
}

// baseFS marks the embedded overlays, whose files carry no permission bits.
type baseFS struct{ fs.FS }

// embeddedModes gives the few base files that must not be 0644: go:embed
// keeps no permissions.
var embeddedModes = map[string]fs.FileMode{
	"etc/sudoers.d/nodebake": 0o440, // sudo ignores group/world-readable drop-ins
}

// Dir returns an overlay folder on disk; its files keep their permission bits.
func Dir(path string) fs.FS { return os.DirFS(path) }

// Apply copies every file of fsys into t (owned by root), rendering *.tmpl
// with data. Files from disk keep their permission bits; embedded ones get
// 0644 unless listed in embeddedModes. name is used in error messages.
func Apply(t *tree.Tree, fsys fs.FS, name string, data any) error {
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("overlay %s: %w", name, err)
		}
		if d.IsDir() {
			if p != "." {
				t.MkdirAll(p, 0o755, tree.Root)
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("overlay %s: %w", name, err)
		}
		if err := plain(p, info); err != nil {
			return fmt.Errorf("overlay %s: %w", name, err)
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return fmt.Errorf("overlay %s: %w", name, err)
		}
		if err := noPrivateKey(p, b); err != nil {
			return fmt.Errorf("overlay %s: %w", name, err)
		}
		dst := p
		if strings.HasSuffix(p, ".tmpl") {
			dst = strings.TrimSuffix(p, ".tmpl")
			if b, err = render(p, b, data); err != nil {
				return fmt.Errorf("overlay %s: %w", name, err)
			}
		}
		mode := info.Mode().Perm()
		if _, ok := fsys.(baseFS); ok {
			mode = 0o644
			if m, ok := embeddedModes[dst]; ok {
				mode = m
			}
		}
		t.WriteFile(dst, b, mode, tree.Root)
		return nil
	})
}

// Check reports the first file of an overlay folder that Apply would
// refuse, so that the spec can name it before any build work starts.
func Check(dir string) error {
	fsys := os.DirFS(dir)
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if err := plain(p, info); err != nil {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		return noPrivateKey(p, b)
	})
}

// plain refuses what is not a regular file: a symlink could reach out of
// the overlay folder (to ~/.ssh), and reading a fifo or device would hang
// or copy the host's device into the image.
func plain(p string, info fs.FileInfo) error {
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s is a symlink: overlays hold plain files, so that nothing outside the folder ends up in the image", p)
	case !info.Mode().IsRegular():
		return fmt.Errorf("%s is a %s, not a plain file: overlays hold plain files and folders", p, info.Mode().Type())
	}
	return nil
}

// privateKeyMark matches the start of a PEM private key of any kind
// (OpenSSH, PKCS#1/#8, EC, PGP's armour, nodebake's update key) and PuTTY's
// key files.
var privateKeyMark = regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY|PuTTY-User-Key-File-`)

// noPrivateKey refuses a file that holds a private key: every device and
// every copy of a published image would share it. Per-device keys are
// made on the device at first boot.
func noPrivateKey(p string, b []byte) error {
	if privateKeyMark.Match(b) {
		return fmt.Errorf("%s holds a private key: an image is copied to every device and may be published, so keys stay out of overlays (devices make their own at first boot; keep signing keys outside the overlay folders)", p)
	}
	return nil
}

var funcs = template.FuncMap{
	// join renders a list as "a, b, c": nftables sets, port lists.
	"join": func(list any, sep string) string {
		var parts []string
		switch l := list.(type) {
		case []int:
			for _, v := range l {
				parts = append(parts, fmt.Sprint(v))
			}
		case []string:
			parts = l
		default:
			return fmt.Sprint(list)
		}
		return strings.Join(parts, sep)
	},
}

func render(name string, text []byte, data any) ([]byte, error) {
	tmpl, err := template.New(path.Base(name)).Option("missingkey=error").Funcs(funcs).Parse(string(text))
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, data); err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return out.Bytes(), nil
}

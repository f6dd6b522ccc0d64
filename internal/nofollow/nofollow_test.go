package nofollow

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// layout makes a folder a service owns, with a secret next to it that the
// service must never get root to touch.
func layout(t *testing.T) (svc, secret string) {
	t.Helper()
	top := t.TempDir()
	svc = filepath.Join(top, "svc")
	secret = filepath.Join(top, "shadow")
	if err := os.Mkdir(svc, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, []byte("root's secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	return svc, secret
}

func open(t *testing.T, p string) *Dir {
	t.Helper()
	d, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func mkfifo(t *testing.T, p string) {
	t.Helper()
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
}

// untouched fails the test if the secret changed in any way.
func untouched(t *testing.T, secret string) {
	t.Helper()
	b, err := os.ReadFile(secret)
	fi, _ := os.Lstat(secret)
	if err != nil || string(b) != "root's secret" || fi.Mode() != 0o600 {
		t.Fatalf("the secret was touched: %q, %v, %v", b, fi.Mode(), err)
	}
}

func TestOpenDirRefusesLinks(t *testing.T) {
	svc, secret := layout(t)
	top := filepath.Dir(svc)
	os.MkdirAll(filepath.Join(svc, "a/b"), 0o755)
	symlink(t, top, filepath.Join(svc, "a/up"))
	symlink(t, "b", filepath.Join(svc, "a/same")) // stays inside: refused all the same
	symlink(t, filepath.Join(svc, "a"), filepath.Join(top, "alias"))
	root := open(t, top)

	for _, rel := range []string{"svc/a/up", "svc/a/up/svc", "svc/a/same", "alias/b", "svc/../svc"} {
		d, err := root.OpenDir(rel)
		if err == nil {
			d.Close()
			t.Errorf("%s: opened", rel)
			continue
		}
		if rel != "svc/../svc" && !errors.Is(err, ErrSymlink) {
			t.Errorf("%s: %v, want ErrSymlink", rel, err)
		}
	}
	if _, err := root.MkdirAll("svc/a/up/new", 0o755); !errors.Is(err, ErrSymlink) {
		t.Errorf("MkdirAll through a link: %v", err)
	}
	if _, err := os.Stat(filepath.Join(top, "new")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("MkdirAll made a folder through a link")
	}
	if _, err := root.OpenDir("shadow"); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("a file opened as a folder: %v", err)
	}

	d, err := root.OpenDir("svc/a/b")
	if err != nil || d.Path() != filepath.Join(top, "svc/a/b") {
		t.Fatalf("a plain path: %v", err)
	}
	d.Close()
	d, err = root.MkdirAll("svc/x/y", 0o700)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if fi, err := os.Stat(filepath.Join(svc, "x/y")); err != nil || !fi.IsDir() {
		t.Fatalf("MkdirAll: %v", err)
	}
	untouched(t, secret)
}

// TestDirOutlivesItsName: once open, a Dir is the folder it opened, even
// if its owner renames it and puts a link to elsewhere in its place.
func TestDirOutlivesItsName(t *testing.T) {
	svc, secret := layout(t)
	d := open(t, svc)
	if err := os.Rename(svc, svc+".moved"); err != nil {
		t.Fatal(err)
	}
	symlink(t, filepath.Dir(secret), svc)
	f, name, err := d.CreateTemp("x")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := d.Rename(name, "shadow"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(svc+".moved", "shadow")); err != nil {
		t.Fatalf("the file is not in the folder that was opened: %v", err)
	}
	untouched(t, secret)
}

func TestOpenFile(t *testing.T) {
	svc, secret := layout(t)
	d := open(t, svc)
	symlink(t, secret, filepath.Join(svc, "abs"))
	symlink(t, "../shadow", filepath.Join(svc, "rel"))
	symlink(t, "plain", filepath.Join(svc, "inside"))
	os.WriteFile(filepath.Join(svc, "plain"), []byte("ok"), 0o644)
	os.WriteFile(filepath.Join(svc, "big"), make([]byte, 101), 0o644)
	mkfifo(t, filepath.Join(svc, "fifo"))
	os.Mkdir(filepath.Join(svc, "dir"), 0o755)

	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, name := range []string{"abs", "rel", "inside"} {
			if _, err := d.ReadFile(name, 100); !errors.Is(err, ErrSymlink) || !strings.Contains(err.Error(), filepath.Join(svc, name)) {
				t.Errorf("%s: %v, want ErrSymlink naming the file", name, err)
			}
		}
		for _, name := range []string{"fifo", "dir"} {
			if _, err := d.ReadFile(name, 100); !errors.Is(err, ErrNotRegular) {
				t.Errorf("%s: %v, want ErrNotRegular", name, err)
			}
		}
		if _, err := d.ReadFile("big", 100); !errors.Is(err, ErrTooLarge) {
			t.Errorf("101 bytes, at most 100: %v", err)
		}
		if b, err := d.ReadFile("plain", 100); err != nil || string(b) != "ok" {
			t.Errorf("plain: %q %v", b, err)
		}
		for _, name := range []string{"../shadow", "a/b", "", "."} {
			if _, err := d.ReadFile(name, 100); err == nil {
				t.Errorf("%q: read", name)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("reading a FIFO blocked")
	}
	untouched(t, secret)
}

func TestNamesLinksAndRemoval(t *testing.T) {
	svc, secret := layout(t)
	d := open(t, svc)
	symlink(t, secret, filepath.Join(svc, "l"))
	symlink(t, filepath.Join(svc, "nowhere"), filepath.Join(svc, "dangling"))
	os.WriteFile(filepath.Join(svc, "f"), []byte("new"), 0o644)

	if fi, err := d.Lstat("l"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Lstat of a link: %v %v", fi, err)
	}
	if target, err := d.Readlink("l"); err != nil || target != secret {
		t.Errorf("Readlink: %q %v", target, err)
	}
	if err := d.Link("f", "dangling"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Link onto a dangling link: %v", err)
	}
	if _, err := os.Stat(filepath.Join(svc, "nowhere")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("Link created the dangling link's target")
	}
	if err := d.Rename("f", "l"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(svc, "l")); string(b) != "new" {
		t.Errorf("Rename over a link: %q", b)
	}
	if err := d.Symlink(secret, "s"); err != nil {
		t.Fatal(err)
	}
	if err := d.Symlink("x", "s"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Symlink over a name: %v", err)
	}
	if err := d.Remove("s"); err != nil {
		t.Fatal(err)
	}
	names, err := d.Names()
	sort.Strings(names)
	if err != nil || strings.Join(names, " ") != "dangling l" {
		t.Errorf("Names: %v %v", names, err)
	}
	untouched(t, secret)
}

// TestCreateTempRace plays a service that guesses the temporary name and
// puts a link to root's secret, or a FIFO, there between the choice of the
// name and the creation of the file: where the old agent removed its fixed
// temporary name and then opened it with O_CREATE|O_TRUNC, following the
// link.
func TestCreateTempRace(t *testing.T) {
	svc, secret := layout(t)
	d := open(t, svc)
	var planted []string
	beforeCreate = func(d *Dir, name string) {
		if len(planted) == 0 {
			symlink(t, secret, d.Join(name))
		} else if len(planted) == 1 {
			mkfifo(t, d.Join(name))
		}
		planted = append(planted, name)
	}
	defer func() { beforeCreate = nil }()
	f, name, err := d.CreateTemp(".conf.tmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(planted) != 3 || name != planted[2] || !strings.HasPrefix(name, ".conf.tmp-") {
		t.Fatalf("names tried %v, got %s", planted, name)
	}
	if _, err := f.Write([]byte("written")); err != nil {
		t.Fatal(err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the temporary file: %v %v", fi, err)
	}
	untouched(t, secret)
}

package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/nodebake/nodebake/internal/nofollow"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := Write(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("two"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	st, _ := os.Stat(p)
	if err != nil || string(b) != "two" || st.Mode().Perm() != 0o640 {
		t.Fatalf("%q %v %v", b, st.Mode(), err)
	}
	if err := WriteNew(p, []byte("three"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("WriteNew over an existing file: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Fatalf("WriteNew changed the file: %q", b)
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Fatalf("temporary files left: %v", left)
	}
	if err := Write(filepath.Join(dir, "no", "such"), nil, 0o600); err == nil {
		t.Fatal("wrote into a missing folder")
	}
}

// TestReplaceInAServiceFolder: a link or a FIFO at the name or at a
// temporary name, put there by the folder's owner, is replaced or removed,
// never followed.
func TestReplaceInAServiceFolder(t *testing.T) {
	top := t.TempDir()
	svc, secret := filepath.Join(top, "svc"), filepath.Join(top, "shadow")
	os.Mkdir(svc, 0o750)
	os.WriteFile(secret, []byte("root's secret"), 0o600)
	os.Symlink(secret, filepath.Join(svc, "conf"))
	os.Symlink(secret, filepath.Join(svc, ".conf.tmp-1234"))
	syscall.Mkfifo(filepath.Join(svc, ".conf.tmp-fifo"), 0o600)
	os.Symlink(filepath.Join(svc, "nowhere"), filepath.Join(svc, "new"))
	d, err := nofollow.Open(svc)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	if err := RemoveTemps(d, "conf"); err != nil {
		t.Fatal(err)
	}
	var owned *os.File
	own := func(f *os.File) error { owned = f; return nil }
	if err := Replace(d, "conf", []byte("mine"), 0o640, own); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(svc, "conf"))
	if b, _ := os.ReadFile(filepath.Join(svc, "conf")); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o640 || string(b) != "mine" {
		t.Fatalf("conf: %v %v %q", fi, err, b)
	}
	if owned == nil || !strings.Contains(owned.Name(), ".conf.tmp-") {
		t.Fatalf("own was not given the temporary file: %v", owned)
	}
	if err := Create(d, "new", []byte("x"), 0o600, nil); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create onto a dangling link: %v", err)
	}
	if _, err := os.Stat(filepath.Join(svc, "nowhere")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("Create wrote through a dangling link")
	}
	names, _ := d.Names()
	sort.Strings(names)
	if strings.Join(names, " ") != "conf new" {
		t.Fatalf("left in the folder: %v", names)
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "root's secret" {
		t.Fatalf("the secret changed: %q %v", b, err)
	}
	if fi, _ := os.Stat(secret); fi.Mode().Perm() != 0o600 {
		t.Fatalf("the secret's mode changed: %v", fi.Mode())
	}
}

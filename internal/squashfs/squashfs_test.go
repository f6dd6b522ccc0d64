package squashfs

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/internal/tree"
)

// A small tree packed by the real tar2sqfs and listed back by unsquashfs:
// owners, modes, links and xattrs the format cannot hold.
func TestBuildReadBack(t *testing.T) {
	tr := tree.New()
	tr.WriteFile("etc/hostname", []byte("node\n"), 0o644, tree.Root)
	tr.WriteFile("data/secret", []byte("x"), 0o600, tree.Owner{UID: 1001, GID: 1001})
	tr.Symlink("usr/bin", "bin")
	tr.MkdirAll("usr/bin", 0o755, tree.Root)
	if e, _ := tr.Get("etc/hostname"); e != nil {
		e.Xattrs = map[string]string{"system.posix_acl_access": "x", "user.keep": "y"}
	}
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := filepath.Join(t.TempDir(), "root.sqfs")
	if err := Build(context.Background(), tr, out, epoch, nil); err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command("unsquashfs", "-lln", out).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, list)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(list), "\n") {
		lines[strings.Join(strings.Fields(l), " ")] = true
	}
	for _, want := range []string{
		"-rw------- 1001/1001 1 2026-01-01 00:00 squashfs-root/data/secret",
		"lrwxrwxrwx 0/0 7 2026-01-01 00:00 squashfs-root/bin -> usr/bin",
		"-rw-r--r-- 0/0 5 2026-01-01 00:00 squashfs-root/etc/hostname",
	} {
		if !lines[want] {
			t.Errorf("listing lacks %q:\n%s", want, list)
		}
	}
	if e, _ := tr.Get("etc/hostname"); e.Xattrs["user.keep"] != "y" || e.Xattrs["system.posix_acl_access"] != "" {
		t.Errorf("xattrs after build: %v (want system.* dropped, user.* kept)", e.Xattrs)
	}
}

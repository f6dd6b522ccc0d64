package build

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/internal/tree"
	"github.com/nodebake/nodebake/spec"
)

// A module in kernel.modules.extra that the kernel lacks stops the build
// with the line of image.yaml that names it.
func TestTrimModulesUnknownExtra(t *testing.T) {
	yaml := "apiVersion: nodebake/v1\nname: node\nversion: 1.0.0\nkernel:\n  modules:\n    extra:\n      - ext4\n      - nosuch_mod\n"
	s, err := spec.Parse([]byte(yaml), "image.yaml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const kver = "6.1.0-99-amd64"
	tr := tree.New()
	dir := "usr/lib/modules/" + kver + "/"
	tr.WriteFile(dir+"modules.dep", []byte("kernel/fs/ext4/ext4.ko:\n"), 0o644, tree.Root)
	tr.WriteFile(dir+"modules.builtin", nil, 0o644, tree.Root)
	tr.WriteFile(dir+"kernel/fs/ext4/ext4.ko", []byte("\x7fELF"), 0o644, tree.Root)
	err = trimModules(tr, s, kver, t.TempDir(), io.Discard)
	want := `image.yaml:8: kernel.modules.extra[1]: kernel 6.1.0-99-amd64 has no module "nosuch_mod"`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %v\nwant %s…", err, want)
	}
}

// A quiet build (nodebake build -q) gives the stages no writer: the
// module stage still runs (it once wrote to a nil writer and panicked).
func TestTrimModulesQuiet(t *testing.T) {
	yaml := "apiVersion: nodebake/v1\nname: node\nversion: 1.0.0\nkernel:\n  modules:\n    profile: all\n"
	s, err := spec.Parse([]byte(yaml), "image.yaml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	quiet := newLog(context.Background(), nil)
	if err := quiet.stage("kernel modules", "", func() error {
		return trimModules(tree.New(), s, "6.1.0-99-amd64", t.TempDir(), quiet.detail())
	}); err != nil {
		t.Fatal(err)
	}
}

package initramfs

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cavaliergopher/cpio"
	"github.com/klauspost/compress/zstd"
)

const kver = "6.1.0-50-amd64"

var mtime = time.Unix(1700000000, 0)

// fakeDep mirrors the shape of Debian's modules.dep: dependencies are listed
// after the colon, the deepest last, and some file names use dashes.
const fakeDep = `kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/md/dm-mod.ko:
kernel/drivers/md/dm-bufio.ko: kernel/drivers/md/dm-mod.ko
kernel/drivers/md/dm-verity.ko: kernel/drivers/md/dm-bufio.ko kernel/drivers/md/dm-mod.ko kernel/lib/reed_solomon/reed_solomon.ko
kernel/lib/reed_solomon/reed_solomon.ko:
kernel/fs/ext4/ext4.ko: kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/drivers/net/unused.ko:
`

const fakeBuiltin = `kernel/fs/squashfs/squashfs.ko
kernel/crypto/sha256_generic.ko
`

// fakeRoot is a userland with fakeDep's modules; each module's content is its
// own path, so the archive can be checked file by file.
func fakeRoot() fstest.MapFS {
	dir := "usr/lib/modules/" + kver + "/"
	root := fstest.MapFS{
		dir + "modules.dep":     {Data: []byte(fakeDep)},
		dir + "modules.builtin": {Data: []byte(fakeBuiltin)},
		dir + "modules.alias":   {Data: []byte("alias virtio:d00000002v* virtio_blk\n")},
	}
	for _, line := range strings.Split(strings.TrimSpace(fakeDep), "\n") {
		f, _, _ := strings.Cut(line, ":")
		root[dir+f] = &fstest.MapFile{Data: []byte("module " + f), Mode: 0o644}
	}
	return root
}

var fakeModules = []string{"virtio_blk", "squashfs", "dm-verity", "ext4"}

func TestResolveClosureAndOrder(t *testing.T) {
	p, err := resolve(fakeRoot(), kver, fakeModules)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"virtio_blk", "dm-verity", "ext4"}; !slices.Equal(p.load, want) {
		t.Errorf("load = %q, want %q (requested order, built-ins dropped)", p.load, want)
	}
	if want := []string{"squashfs"}; !slices.Equal(p.builtin, want) {
		t.Errorf("builtin = %q, want %q", p.builtin, want)
	}
	want := []string{
		"kernel/drivers/block/virtio_blk.ko",
		"kernel/drivers/md/dm-bufio.ko",
		"kernel/drivers/md/dm-mod.ko",
		"kernel/drivers/md/dm-verity.ko",
		"kernel/drivers/virtio/virtio.ko",
		"kernel/drivers/virtio/virtio_ring.ko",
		"kernel/fs/ext4/ext4.ko",
		"kernel/fs/jbd2/jbd2.ko",
		"kernel/fs/mbcache.ko",
		"kernel/lib/reed_solomon/reed_solomon.ko",
	}
	if !slices.Equal(p.files, want) {
		t.Errorf("files = %q\nwant %q", p.files, want)
	}
	// The archive's modules.dep keeps the needed lines in their original order.
	var wantDep []string
	for _, line := range strings.Split(strings.TrimSpace(fakeDep), "\n") {
		if !strings.Contains(line, "unused.ko") {
			wantDep = append(wantDep, line)
		}
	}
	if got := string(p.dep); got != strings.Join(wantDep, "\n")+"\n" {
		t.Errorf("modules.dep =\n%s", got)
	}
}

func TestResolveCompressedModuleNames(t *testing.T) {
	dir := "usr/lib/modules/" + kver + "/"
	root := fstest.MapFS{
		dir + "modules.dep":     {Data: []byte("kernel/fs/overlayfs/overlay.ko.zst:\n")},
		dir + "modules.builtin": {Data: nil},
	}
	p, err := resolve(root, kver, []string{"overlay"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"kernel/fs/overlayfs/overlay.ko.zst"}; !slices.Equal(p.files, want) {
		t.Errorf("files = %q, want %q", p.files, want)
	}
}

func TestResolveErrors(t *testing.T) {
	dir := "usr/lib/modules/" + kver + "/"
	for _, tc := range []struct {
		name    string
		root    fstest.MapFS
		modules []string
		want    string
	}{
		{"unknown module", fakeRoot(), []string{"ext4", "nosuch_mod"}, `no module "nosuch_mod": it is neither in modules.dep nor in modules.builtin`},
		{"no kernel", fstest.MapFS{}, []string{"ext4"}, "is linux-image-" + kver + " installed"},
		{"dangling dependency", fstest.MapFS{
			dir + "modules.dep":     {Data: []byte("kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko\n")},
			dir + "modules.builtin": {},
		}, []string{"ext4"}, "kernel/fs/ext4/ext4.ko needs kernel/fs/jbd2/jbd2.ko, which has no line of its own"},
		{"garbled modules.dep", fstest.MapFS{
			dir + "modules.dep":     {Data: []byte("kernel/fs/ext4/ext4.ko\n")},
			dir + "modules.builtin": {},
		}, []string{"ext4"}, `line 1: "kernel/fs/ext4/ext4.ko" is not "module: dependencies"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := resolve(tc.root, kver, tc.modules)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestBuildMissingModuleFile(t *testing.T) {
	root := fakeRoot()
	delete(root, "usr/lib/modules/"+kver+"/kernel/fs/jbd2/jbd2.ko")
	_, err := build(io.Discard, root, kver, fakeModules, []byte("init"), mtime)
	if err == nil || !strings.Contains(err.Error(), "kernel/fs/jbd2/jbd2.ko") {
		t.Fatalf("err = %v, want it to name jbd2.ko", err)
	}
}

type entry struct {
	mode cpio.FileMode
	data string
}

// readBack decompresses an initramfs with the reference zstd tool and reads
// the cpio archive, checking the header fields every entry must share.
func readBack(t *testing.T, compressed []byte) (names []string, entries map[string]entry) {
	t.Helper()
	cmd := exec.Command("zstd", "-d", "-c")
	cmd.Stdin = bytes.NewReader(compressed)
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("zstd -d: %v", err)
	}
	entries = map[string]entry{}
	r := cpio.NewReader(bytes.NewReader(raw))
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Guid != 0 || !h.ModTime.Equal(mtime) {
			t.Errorf("%s: uid %d gid %d mtime %s, want 0 0 %s", h.Name, h.Uid, h.Guid, h.ModTime, mtime)
		}
		if h.Mode.IsRegular() && h.Links != 1 {
			t.Errorf("%s: %d links, want 1 (the kernel hard-links files with more)", h.Name, h.Links)
		}
		names = append(names, h.Name)
		entries[h.Name] = entry{h.Mode, string(data)}
	}
	return names, entries
}

func TestBuildArchive(t *testing.T) {
	var out bytes.Buffer
	st, err := build(&out, fakeRoot(), kver, fakeModules, []byte("\x7fELF init"), mtime)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes != int64(out.Len()) || st.CPIOBytes <= 0 {
		t.Errorf("stats: %d bytes (wrote %d), cpio %d", st.Bytes, out.Len(), st.CPIOBytes)
	}
	if want := []string{"squashfs"}; !slices.Equal(st.Builtin, want) {
		t.Errorf("Builtin = %q, want %q", st.Builtin, want)
	}
	names, entries := readBack(t, out.Bytes())
	if !slices.IsSorted(names) {
		t.Errorf("entries are not sorted: %q", names)
	}

	mods := "lib/modules/" + kver
	want := map[string]entry{
		"init":                            {cpio.TypeReg | 0o755, "\x7fELF init"},
		ModuleList:                        {cpio.TypeReg | 0o644, "virtio_blk\ndm-verity\next4\n"},
		mods + "/modules.dep":             {cpio.TypeReg | 0o644, ""},
		"dev":                             {cpio.TypeDir | 0o755, ""},
		"proc":                            {cpio.TypeDir | 0o755, ""},
		"run":                             {cpio.TypeDir | 0o755, ""},
		"sys":                             {cpio.TypeDir | 0o755, ""},
		"sysroot":                         {cpio.TypeDir | 0o755, ""},
		"etc":                             {cpio.TypeDir | 0o755, ""},
		"etc/nodebake-init":               {cpio.TypeDir | 0o755, ""},
		"lib":                             {cpio.TypeDir | 0o755, ""},
		"lib/modules":                     {cpio.TypeDir | 0o755, ""},
		mods:                              {cpio.TypeDir | 0o755, ""},
		mods + "/kernel":                  {cpio.TypeDir | 0o755, ""},
		mods + "/kernel/lib":              {cpio.TypeDir | 0o755, ""},
		mods + "/kernel/lib/reed_solomon": {cpio.TypeDir | 0o755, ""},
	}
	for _, f := range st.Files {
		want[mods+"/"+f] = entry{cpio.TypeReg | 0o644, "module " + f}
	}
	for name, w := range want {
		got, ok := entries[name]
		if !ok {
			t.Errorf("archive lacks %s", name)
			continue
		}
		if got.mode != w.mode {
			t.Errorf("%s: mode %v, want %v", name, got.mode, w.mode)
		}
		if w.mode.IsRegular() && name != mods+"/modules.dep" && got.data != w.data {
			t.Errorf("%s: content %q, want %q", name, got.data, w.data)
		}
	}
	if !strings.Contains(entries[mods+"/modules.dep"].data, "kernel/drivers/md/dm-verity.ko: ") {
		t.Errorf("modules.dep in the archive lacks dm-verity:\n%s", entries[mods+"/modules.dep"].data)
	}
	for name := range entries {
		if strings.Contains(name, "unused") || strings.Contains(name, "squashfs") || strings.Contains(name, "modules.alias") {
			t.Errorf("archive holds %s, which nothing needs", name)
		}
	}
}

func TestBuildIsReproducible(t *testing.T) {
	var a, b bytes.Buffer
	if _, err := build(&a, fakeRoot(), kver, fakeModules, []byte("init"), mtime); err != nil {
		t.Fatal(err)
	}
	if _, err := build(&b, fakeRoot(), kver, fakeModules, []byte("init"), mtime); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two builds from the same inputs differ")
	}
	// The in-process decoder agrees with the zstd tool.
	d, err := zstd.NewReader(bytes.NewReader(a.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := io.Copy(io.Discard, d); err != nil {
		t.Fatal(err)
	}
}

func TestBuildRejectsBadInputs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		kver  string
		init  []byte
		mtime time.Time
		want  string
	}{
		{"empty init", kver, nil, mtime, "/init binary is empty"},
		{"kver with slash", "../6.1", []byte("init"), mtime, "not a directory name"},
		{"mtime before 1970", kver, []byte("init"), time.Unix(-1, 0), "does not fit a cpio header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := build(io.Discard, fakeRoot(), tc.kver, fakeModules, tc.init, tc.mtime)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

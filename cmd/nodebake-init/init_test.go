package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodebake/nodebake/internal/initramfs"
)

func TestModuleListMatchesInitramfs(t *testing.T) {
	if moduleList != "/"+initramfs.ModuleList {
		t.Fatalf("/init reads %s but the initramfs writes /%s", moduleList, initramfs.ModuleList)
	}
}

// tool finds an installed program, also in the sbin directories a plain
// user's PATH may lack.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(dir, name); exec.Command(p, "-V").Run() == nil {
			return p
		}
	}
	t.Fatalf("%s is not installed (apt-get install e2fsprogs dosfstools)", name)
	return ""
}

// image makes a file of the given size and runs a formatter on it.
func image(t *testing.T, size int64, format ...string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "part.img")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	if len(format) > 0 {
		cmd := exec.Command(tool(t, format[0]), append(format[1:], path)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
	}
	head, err := readHead(path)
	if err != nil {
		t.Fatal(err)
	}
	return head
}

func TestClassify(t *testing.T) {
	junk := make([]byte, probeBytes)
	junk[70000] = 0x42
	for _, tc := range []struct {
		name string
		head []byte
		want contents
		at   int
	}{
		{"mkfs.ext4", image(t, 16<<20, "mkfs.ext4", "-q", "-F", "-L", "data"), ext4, 0},
		{"zeroed partition", image(t, 16<<20), blank, 0},
		{"mkfs.vfat", image(t, 16<<20, "mkfs.vfat"), other, 0},
		{"stray byte past 64 KiB", junk, other, 70000},
		{"shorter than a superblock", []byte{0, 0, 1}, other, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.head) == 0 {
				t.Fatal("read nothing")
			}
			got, at := classify(tc.head)
			if got != tc.want || at != tc.at {
				t.Errorf("classify = %v at %d, want %v at %d", got, at, tc.want, tc.at)
			}
		})
	}
}

func TestStateLayout(t *testing.T) {
	dirs, mounts := stateLayout("/sysroot")
	wantDirs := []string{
		"/sysroot/data/.nodebake",
		"/sysroot/data/.nodebake/var/upper",
		"/sysroot/data/.nodebake/var/work",
		"/sysroot/data/.nodebake/etc/upper",
		"/sysroot/data/.nodebake/etc/work",
		"/sysroot/data/home",
	}
	if !slices.Equal(dirs, wantDirs) {
		t.Errorf("dirs = %q\nwant %q", dirs, wantDirs)
	}
	want := []stateMount{
		{"/var", "overlay", "/sysroot/var", "overlay",
			"lowerdir=/sysroot/var,upperdir=/sysroot/data/.nodebake/var/upper,workdir=/sysroot/data/.nodebake/var/work", 0},
		{"/etc", "overlay", "/sysroot/etc", "overlay",
			"lowerdir=/sysroot/etc,upperdir=/sysroot/data/.nodebake/etc/upper,workdir=/sysroot/data/.nodebake/etc/work", 0},
		{"/home", "/sysroot/data/home", "/sysroot/home", "", "", unix.MS_BIND},
		{"/etc/machine-id", "/sysroot/data/.nodebake/machine-id", "/sysroot/etc/machine-id", "", "", unix.MS_BIND},
	}
	if !slices.Equal(mounts, want) {
		t.Errorf("mounts =\n%+v\nwant\n%+v", mounts, want)
	}
	// overlayfs needs upper and work on one filesystem, the data partition.
	for _, d := range dirs[1:5] {
		if !strings.HasPrefix(d, "/sysroot/data/") {
			t.Errorf("%s is not on the data partition", d)
		}
	}
}

func TestNewMachineID(t *testing.T) {
	id, err := newMachineID(bytes.NewReader(bytes.Repeat([]byte{0xff}, 16)))
	if err != nil {
		t.Fatal(err)
	}
	// Version 4 and the RFC 4122 variant, like systemd's own ids.
	if want := "ffffffffffff4fffbfffffffffffffff"; id != want {
		t.Errorf("id = %s, want %s", id, want)
	}
	if _, err := newMachineID(bytes.NewReader(make([]byte, 15))); err == nil {
		t.Error("15 random bytes made an id")
	}
}

func TestValidMachineID(t *testing.T) {
	for id, want := range map[string]bool{
		"0123456789abcdef0123456789abcdef":   true,
		"0123456789ABCDEF0123456789ABCDEF":   false, // systemd writes lower case
		"00000000000000000000000000000000":   false,
		"0123456789abcdef0123456789abcde":    false,
		"0123456789abcdef0123456789abcdef0":  false,
		"0123456789abcdef-123456789abcdef":   false,
		"01234567-89ab-cdef-0123-456789abcd": false,
		"":                                   false,
	} {
		if got := validMachineID(id); got != want {
			t.Errorf("validMachineID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestEnsureMachineID(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "machine-id")

	id, created, err := ensureMachineID(dir)
	if err != nil || !created || !validMachineID(id) {
		t.Fatalf("first call: %q created=%v err=%v", id, created, err)
	}
	b, err := os.ReadFile(file)
	if err != nil || string(b) != id+"\n" {
		t.Fatalf("file holds %q (%v), want %q", b, err, id+"\n")
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o444 {
		t.Errorf("mode %v, want 0444", fi.Mode().Perm())
	}

	again, created, err := ensureMachineID(dir)
	if err != nil || created || again != id {
		t.Errorf("second call: %q created=%v err=%v, want %q kept", again, created, err, id)
	}

	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("uninitialized\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fresh, created, err := ensureMachineID(dir)
	if err != nil || !created || fresh == id || !validMachineID(fresh) {
		t.Errorf("malformed file: %q created=%v err=%v, want a new id", fresh, created, err)
	}

	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only machine-id (no temporary files)", len(entries))
	}
}

func TestEnsureMachineIDUnreadable(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should be: neither missing nor readable.
	if err := os.Mkdir(filepath.Join(dir, "machine-id"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ensureMachineID(dir); err == nil {
		t.Fatal("no error for an unreadable machine-id")
	}
	if _, err := os.Stat(filepath.Join(dir, "machine-id")); errors.Is(err, fs.ErrNotExist) {
		t.Fatal("the unreadable machine-id was removed")
	}
}

func TestFindPartition(t *testing.T) {
	const root = "0fc63daf-8483-4772-8e79-3d69d8477de4"
	devs := []blockDevice{
		{name: "vda", size: 2 << 30},
		{name: "vda1", partUUID: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", label: "esp"},
		{name: "vda2", partUUID: root, label: "root-a"},
		{name: "sda1"},
	}
	d, err := findPartition(devs, strings.ToUpper(root))
	if err != nil || d.name != "vda2" {
		t.Errorf("found %q, %v; want vda2", d.name, err)
	}
	if _, err := findPartition(devs, "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"); err != errNoPartition {
		t.Errorf("missing partition: err = %v, want errNoPartition", err)
	}
	twice := append(devs, blockDevice{name: "sdb2", partUUID: root})
	_, err = findPartition(twice, root)
	if err == nil || !strings.Contains(err.Error(), "/dev/vda2 and /dev/sdb2") {
		t.Errorf("duplicate PARTUUID: err = %v, want both devices named", err)
	}
}

func TestDescribe(t *testing.T) {
	got := describe([]blockDevice{
		{name: "vda", size: 2 << 30},
		{name: "vda2", size: 768 << 20, partUUID: "0fc63daf-8483-4772-8e79-3d69d8477de4", label: "root-a"},
	})
	want := []string{
		"vda             2 GiB",
		"vda2          768 MiB PARTUUID=0fc63daf-8483-4772-8e79-3d69d8477de4 PARTLABEL=root-a",
	}
	if !slices.Equal(got, want) {
		t.Errorf("describe =\n%q\nwant\n%q", got, want)
	}
	if got := describe(nil); len(got) != 1 || !strings.Contains(got[0], "none") {
		t.Errorf("describe(nil) = %q", got)
	}
}

func TestFailWait(t *testing.T) {
	for cmdline, want := range map[string]time.Duration{
		"":                               defaultFailWait,
		"console=ttyS0 quiet":            defaultFailWait,
		"nodebake.failwait=0":            0,
		"quiet nodebake.failwait=300 ro": 300 * time.Second,
		"nodebake.failwait=-5":           defaultFailWait,
		"nodebake.failwait=soon":         defaultFailWait,
		"nodebake.failwait=5 nodebake.failwait=7": 7 * time.Second, // the last one wins, as in the kernel
	} {
		if got := failWait(cmdline); got != want {
			t.Errorf("failWait(%q) = %v, want %v", cmdline, got, want)
		}
	}
}

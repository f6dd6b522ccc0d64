package firstboot

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ownerPlan records the owners the agent sets, by file (inode and birth
// time, as inode numbers are reused), so that an owner set on a temporary
// file follows it through the rename, as on a real filesystem. Files it
// has not set report their real owner.
type ownerPlan struct{ byInode map[fileID]Owner }

type fileID struct {
	ino   uint64
	birth unix.StatxTimestamp
}

func newOwnerPlan() *ownerPlan { return &ownerPlan{byInode: map[fileID]Owner{}} }

func inode(f *os.File) (fileID, Owner, error) {
	var st unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_INO|unix.STATX_BTIME|unix.STATX_UID|unix.STATX_GID, &st); err != nil {
		return fileID{}, Owner{}, err
	}
	if st.Mask&unix.STATX_BTIME == 0 {
		return fileID{}, Owner{}, fmt.Errorf("%s: the filesystem keeps no birth times", f.Name())
	}
	return fileID{st.Ino, st.Btime}, Owner{int(st.Uid), int(st.Gid)}, nil
}

func (p *ownerPlan) Owner(f *os.File) (Owner, error) {
	ino, real, err := inode(f)
	if err != nil {
		return Owner{}, err
	}
	if o, ok := p.byInode[ino]; ok {
		return o, nil
	}
	return real, nil
}

func (p *ownerPlan) SetOwner(f *os.File, o Owner) error {
	ino, _, err := inode(f)
	if err != nil {
		return err
	}
	p.byInode[ino] = o
	return nil
}

// ownerOf is the owner the plan gives the file at path, a link itself
// rather than its target.
func (p *ownerPlan) ownerOf(path string) (Owner, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return Owner{}, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	return p.Owner(f)
}

// The users of image.yaml.
var (
	testAdmin   = Owner{1000, 1000}
	testBitcoin = Owner{1001, 1001}
	testFulcrum = Owner{1002, 1002}
)

// testRoot is a temporary device root: the parts of /proc, /sys, /etc and
// the image the agent reads, and an empty /data.
type testRoot struct {
	t      *testing.T
	dir    string
	owners *ownerPlan
	now    time.Time
}

func newTestRoot(t *testing.T, mem uint64, cpus int, fulcrumVersion string) *testRoot {
	t.Helper()
	r := &testRoot{t: t, dir: t.TempDir(), owners: newOwnerPlan(), now: time.Date(2025, 11, 24, 12, 0, 0, 0, time.UTC)}
	r.setHardware(mem, cpus)
	r.write("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"+
		"admin:x:1000:1000::/home/admin:/bin/bash\n"+
		"bitcoin:x:1001:1001::/home/bitcoin:/usr/sbin/nologin\n"+
		"fulcrum:x:1002:1002::/home/fulcrum:/usr/sbin/nologin\n")
	// The banner the image really carries.
	banner, err := os.ReadFile("../overlays/base" + ImageBanner)
	if err != nil {
		t.Fatal(err)
	}
	r.write(ImageBanner, string(banner))
	if fulcrumVersion != "" {
		r.write(FulcrumVersionFile, fulcrumVersion+"\n")
	}
	for _, d := range []string{"data", "home", "var/lib", "run"} {
		if err := os.MkdirAll(r.path(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func (r *testRoot) path(p string) string { return filepath.Join(r.dir, p) }

func (r *testRoot) write(p, content string) {
	r.t.Helper()
	full := r.path(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *testRoot) read(p string) string {
	r.t.Helper()
	b, err := os.ReadFile(r.path(p))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(b)
}

func (r *testRoot) setHardware(mem uint64, cpus int) {
	r.write("proc/meminfo", fmt.Sprintf("MemTotal:       %d kB\nMemFree:         123456 kB\n", mem/1024))
	online := "0"
	if cpus > 1 {
		online = fmt.Sprintf("0-%d", cpus-1)
	}
	r.write("sys/devices/system/cpu/online", online+"\n")
}

func (r *testRoot) config() Config {
	return Config{Root: r.dir, Owners: r.owners, Now: func() time.Time { return r.now }}
}

func (r *testRoot) run() *Report {
	r.t.Helper()
	rep, err := Run(r.config())
	if err != nil {
		r.t.Fatalf("Run: %v", err)
	}
	return rep
}

// fileState is what the agent may change about a file.
type fileState struct {
	ino   uint64
	mtime time.Time
	mode  fs.FileMode
	owner Owner
	link  string
}

// snapshot records every file under the root that the agent manages.
func (r *testRoot) snapshot() map[string]fileState {
	r.t.Helper()
	out := map[string]fileState{}
	for _, top := range []string{"data", "home", "var", "run"} {
		err := filepath.WalkDir(r.path(top), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			o, err := r.owners.ownerOf(p)
			if err != nil {
				return err
			}
			st := fileState{ino: fi.Sys().(*syscall.Stat_t).Ino, mtime: fi.ModTime(), mode: fi.Mode(), owner: o}
			if fi.Mode()&fs.ModeSymlink != 0 {
				st.link, _ = os.Readlink(p)
			}
			out[strings.TrimPrefix(p, r.dir)] = st
			return nil
		})
		if err != nil {
			r.t.Fatal(err)
		}
	}
	return out
}

package firstboot

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The agent runs as root in folders that bitcoind, Fulcrum and the users
// own. These tests play a service that plants links, FIFOs and hard links
// there, and check that root never reads, writes, chmods or chowns
// anything through them.

// secret is a root-only file outside every service folder, as /etc/shadow
// is on the device.
const secretPath = "/etc/shadow"

func (r *testRoot) plantSecret() {
	r.t.Helper()
	r.write(secretPath, "root:$y$j9T$secrethash:20000:0:99999:7:::\n")
	if err := os.Chmod(r.path(secretPath), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// secretUntouched fails the test if the secret changed, or its mode or owner.
func (r *testRoot) secretUntouched() {
	r.t.Helper()
	fi, err := os.Stat(r.path(secretPath))
	if err != nil || fi.Mode() != 0o600 || r.read(secretPath) != "root:$y$j9T$secrethash:20000:0:99999:7:::\n" {
		r.t.Fatalf("the secret changed: %v %v", fi, err)
	}
	if o, _ := r.owners.ownerOf(r.path(secretPath)); o != (Owner{os.Getuid(), os.Getgid()}) {
		r.t.Fatalf("the secret's owner was set to %v", o)
	}
}

// replaceWithLink puts a link to target where p is.
func (r *testRoot) replaceWithLink(p, target string) {
	r.t.Helper()
	if err := os.RemoveAll(r.path(p)); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Symlink(target, r.path(p)); err != nil {
		r.t.Fatal(err)
	}
}

// item finds the item a report gives for the device path what.
func item(t *testing.T, rep *Report, what string) Item {
	t.Helper()
	for _, st := range rep.Steps {
		for _, it := range st.Items {
			if it.What == what {
				return it
			}
		}
	}
	t.Fatalf("the report has no item %s: %+v", what, rep.Steps)
	return Item{}
}

func reportText(t *testing.T, rep *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestOverrideLinksIgnored: an override that is a link, to root's secret
// or to another file of the same folder, is not read. The configs are
// written without it and the report says why; the boot does not fail.
func TestOverrideLinksIgnored(t *testing.T) {
	r := newTestRoot(t, memOf(4), 2, "2.1.1")
	r.plantSecret()
	r.run()
	r.replaceWithLink(FulcrumOverride, r.path(secretPath))
	r.replaceWithLink(BitcoinOverride, "../../etc/shadow")
	rep := r.run()

	for _, p := range []string{FulcrumConf, BitcoinConf} {
		if strings.Contains(r.read(p), "secrethash") || strings.Contains(r.read(p), "#root=") {
			t.Errorf("%s shows the secret:\n%s", p, r.read(p))
		}
	}
	for _, p := range []string{FulcrumOverride, BitcoinOverride} {
		it := item(t, rep, p)
		want := filepath.Base(p) + " is a symbolic link: ignored; replace it with a regular file"
		if it.Status != Skipped || it.Detail != want {
			t.Errorf("%s: %+v, want skipped: %s", p, it, want)
		}
		if !strings.Contains(reportText(t, rep), want) {
			t.Errorf("nodectl status does not say %q", want)
		}
		if fi, err := os.Lstat(r.path(p)); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("the agent changed the user's %s: %v %v", p, fi, err)
		}
	}
	r.secretUntouched()

	// A link to the folder's own key: os.Root would follow it, this agent
	// does not, so Fulcrum's key does not reach fulcrum.conf (group fulcrum).
	r.replaceWithLink(FulcrumOverride, "key.pem")
	rep = r.run()
	if strings.Contains(r.read(FulcrumConf), "PRIVATE KEY") || item(t, rep, FulcrumOverride).Status != Skipped {
		t.Errorf("the key went into fulcrum.conf:\n%s", r.read(FulcrumConf))
	}
}

// TestOverrideNotRegular: a FIFO would block a reader for ever (and the
// boot with it), a folder cannot be read, a huge file is refused.
func TestOverrideNotRegular(t *testing.T) {
	r := newTestRoot(t, memOf(4), 2, "2.1.1")
	r.run()
	os.Remove(r.path(FulcrumOverride))
	if err := syscall.Mkfifo(r.path(FulcrumOverride), 0o640); err != nil {
		t.Fatal(err)
	}
	os.Remove(r.path(BitcoinOverride))
	os.Mkdir(r.path(BitcoinOverride), 0o750)

	done := make(chan *Report)
	go func() {
		rep, err := Run(r.config())
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- rep
	}()
	var rep *Report
	select {
	case rep = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the agent is stuck on a FIFO at " + FulcrumOverride)
	}
	for _, p := range []string{FulcrumOverride, BitcoinOverride} {
		if it := item(t, rep, p); it.Status != Skipped || it.Detail != filepath.Base(p)+" is not a regular file: ignored; replace it with a regular file" {
			t.Errorf("%s: %+v", p, it)
		}
	}

	os.Remove(r.path(FulcrumOverride))
	r.write(FulcrumOverride, "db_mem = 2000\n"+strings.Repeat("# padding\n", maxRead/10))
	rep = r.run()
	if it := item(t, rep, FulcrumOverride); it.Status != Skipped || !strings.Contains(it.Detail, "is larger than 1024 KiB: ignored") {
		t.Errorf("a 1 MiB override: %+v", it)
	}
}

// TestWrittenFileLinks: links where the agent writes its own files are
// replaced, and their targets left alone; links where the user's files
// are (the banner, a TLS pair kept elsewhere) are left as they are,
// unread. Either way the report says so.
func TestWrittenFileLinks(t *testing.T) {
	r := newTestRoot(t, memOf(4), 2, "2.1.1")
	r.plantSecret()
	r.run()
	// A valid pair outside, with modes other than those the agent gives
	// a pair (0600 and 0644), so that a chmod through the links would show.
	r.write("/etc/ssl/pair/key", r.read(FulcrumKey))
	r.write("/etc/ssl/pair/cert", r.read(FulcrumCert))
	os.Chmod(r.path("/etc/ssl/pair/key"), 0o640)
	os.Chmod(r.path("/etc/ssl/pair/cert"), 0o600)
	r.replaceWithLink(FulcrumKey, r.path("/etc/ssl/pair/key"))
	r.replaceWithLink(FulcrumCert, r.path("/etc/ssl/pair/cert"))
	for _, p := range []string{FulcrumConf, BitcoinConf, FulcrumBanner} {
		r.replaceWithLink(p, r.path(secretPath))
	}
	rep := r.run()

	r.secretUntouched()
	for p, mode := range map[string]fs.FileMode{"/etc/ssl/pair/key": 0o640, "/etc/ssl/pair/cert": 0o600} {
		fi, _ := os.Stat(r.path(p))
		o, _ := r.owners.ownerOf(r.path(p))
		if fi.Mode() != mode || o != (Owner{os.Getuid(), os.Getgid()}) {
			t.Errorf("%s: mode %v owner %v, want %v untouched", p, fi.Mode(), o, mode)
		}
	}
	for _, p := range []string{FulcrumConf, BitcoinConf} {
		fi, err := os.Lstat(r.path(p))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o640 || !strings.HasPrefix(r.read(p), "# nodebake: ") {
			t.Errorf("%s was not rewritten: %v %v", p, fi, err)
		}
		if it := item(t, rep, p); it.Status != Changed || !strings.Contains(it.Detail, "was a symbolic link: replaced by a regular file") {
			t.Errorf("%s: %+v", p, it)
		}
	}
	for _, p := range []string{FulcrumKey, FulcrumCert} {
		if it := item(t, rep, p); it.Status != Skipped || !strings.Contains(it.Detail, filepath.Base(p)+" is a symbolic link: left alone and unchecked") {
			t.Errorf("%s: %+v", p, it)
		}
	}
	if it := item(t, rep, FulcrumBanner); it.Status != Skipped || !strings.Contains(it.Detail, "is a symbolic link: left as it is") {
		t.Errorf("%s: %+v", FulcrumBanner, it)
	}
	if len(rep.Failed()) != 0 {
		t.Errorf("failed steps: %+v", rep.Failed())
	}
}

// TestHardLinkNotChanged: a key that is also a file elsewhere keeps its
// mode: changing it would change the other file too.
func TestHardLinkNotChanged(t *testing.T) {
	r := newTestRoot(t, memOf(4), 2, "2.1.1")
	r.run()
	r.write("/etc/ssl/key", r.read(FulcrumKey))
	os.Chmod(r.path("/etc/ssl/key"), 0o640)
	os.Remove(r.path(FulcrumKey))
	if err := os.Link(r.path("/etc/ssl/key"), r.path(FulcrumKey)); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(r.config())
	if err == nil || len(rep.Failed()) != 1 || !strings.Contains(rep.Failed()[0].Error, "has 2 names (hard links)") {
		t.Fatalf("Run: %v, failed %+v", err, rep.Failed())
	}
	if fi, _ := os.Stat(r.path("/etc/ssl/key")); fi.Mode() != 0o640 {
		t.Errorf("the other name's mode changed to %v", fi.Mode())
	}
}

// TestFolderLinks: a service folder, or a folder inside one, replaced by a
// link: nothing is written, chmodded or chowned through it, and the report
// says what to do.
func TestFolderLinks(t *testing.T) {
	r := newTestRoot(t, memOf(4), 2, "2.1.1")
	r.plantSecret()
	etc := func() []string {
		var names []string
		filepath.WalkDir(r.path("etc"), func(p string, d fs.DirEntry, err error) error {
			fi, _ := os.Lstat(p)
			names = append(names, p+" "+fi.Mode().String())
			return nil
		})
		return names
	}
	before := etc()
	os.Mkdir(r.path("data"), 0o755)
	r.replaceWithLink(FulcrumDir, r.path("etc"))
	rep, err := Run(r.config())
	if err == nil {
		t.Fatal("Run succeeded with /data/fulcrum a link to /etc")
	}
	var failed []string
	for _, st := range rep.Failed() {
		failed = append(failed, st.Name)
		if !strings.Contains(st.Error, "is a symbolic link") {
			t.Errorf("%s: %s", st.Name, st.Error)
		}
	}
	if strings.Join(failed, ",") != "folders,fulcrum tls,fulcrum.conf" {
		t.Errorf("failed steps %v", failed)
	}
	if after := etc(); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("/etc changed:\n%s\nwas\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
	}
	r.secretUntouched()
	if _, err := os.Stat(r.path(BitcoinConf)); err != nil {
		t.Errorf("bitcoind's config was not written: %v", err)
	}

	// A folder inside a service folder, which the service can replace.
	r = newTestRoot(t, memOf(4), 2, "2.1.1")
	r.run()
	os.Mkdir(r.path("/etc/private"), 0o700)
	r.replaceWithLink(FulcrumDB, r.path("/etc/private"))
	rep, err = Run(r.config())
	if err == nil || !strings.Contains(rep.Failed()[0].Error, FulcrumDB+" is a symbolic link, not a folder") {
		t.Fatalf("Run: %v %+v", err, rep.Failed())
	}
	fi, _ := os.Stat(r.path("/etc/private"))
	if o, _ := r.owners.ownerOf(r.path("/etc/private")); fi.Mode().Perm() != 0o700 || o == testFulcrum {
		t.Errorf("the link's target was changed: %v %v", fi.Mode(), o)
	}
}

// TestTemporaryNamesPlanted: links and FIFOs at the names of temporary
// files are removed, not followed, and the files are written.
func TestTemporaryNamesPlanted(t *testing.T) {
	r := newTestRoot(t, memOf(4), 2, "2.1.1")
	r.plantSecret()
	r.run()
	if err := os.Symlink(r.path(secretPath), r.path(strayTemp(FulcrumConf))); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(r.path(strayTemp(BitcoinConf)), 0o600); err != nil {
		t.Fatal(err)
	}
	r.setHardware(memOf(8), 4) // both configs change
	rep := r.run()
	for _, p := range []string{FulcrumConf, BitcoinConf} {
		if it := item(t, rep, p); it.Status != Changed {
			t.Errorf("%s: %+v", p, it)
		}
		if _, err := os.Lstat(r.path(strayTemp(p))); err == nil {
			t.Errorf("%s is still there", strayTemp(p))
		}
	}
	r.secretUntouched()
	checkDevice(t, r)
}

// TestSystemOwnersLink: SystemOwners sets a link's owner, not its target's.
// Without root the owner stays the same, but chown still stamps the
// change time of the file it changes.
func TestSystemOwnersLink(t *testing.T) {
	dir := t.TempDir()
	target, link := filepath.Join(dir, "target"), filepath.Join(dir, "link")
	os.WriteFile(target, nil, 0o600)
	os.Symlink(target, link)
	ctime := func(p string) unix.Timespec {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ctim
	}
	before, linkBefore := ctime(target), ctime(link)
	time.Sleep(50 * time.Millisecond) // beyond a coarse clock's tick
	d := openDir(t, dir)
	f, err := d.OpenPath("link")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	me := Owner{os.Getuid(), os.Getgid()}
	if err := SystemOwners().SetOwner(f, me); err != nil {
		t.Fatal(err)
	}
	if o, err := SystemOwners().Owner(f); err != nil || o != me {
		t.Fatalf("Owner: %v %v", o, err)
	}
	if ctime(target) != before || ctime(link) == linkBefore {
		t.Fatal("SetOwner changed the link's target, not the link")
	}
}

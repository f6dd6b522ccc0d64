//go:build qemu

package qemutests

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/qemu"
	"github.com/nodebake/nodebake/internal/testvm"
	"github.com/nodebake/nodebake/ota"
)

// The system calls that change the ESP or make a change durable; strace
// stops the traced program after each one that names an ESP path. Opening
// a file is left out: nothing is on the disk before its fsync, which is
// in the set.
const espSyscalls = "rename,renameat,renameat2,unlink,unlinkat,fsync,fdatasync"

// espTracePaths are every path on the ESP that nodectl or
// systemd-bless-boot may change, for strace's -P (which takes exact paths,
// and matches a file descriptor, or a directory descriptor a name is
// relative to, by the path it was opened with: systemd-bless-boot renames
// relative to the ESP's root).
func espTracePaths() []string {
	esp := contract.ESPMount + "/"
	paths := []string{contract.ESPMount, esp + contract.EntriesDir, esp + "nodebake"}
	for _, slot := range []string{"a", "b"} {
		paths = append(paths, esp+contract.SlotDir(slot))
		for _, f := range []string{contract.KernelFile, contract.InitrdFile} {
			paths = append(paths, esp+contract.SlotDir(slot)+"/"+f, esp+contract.SlotDir(slot)+"/"+f+".tmp")
		}
		for _, counter := range []string{"", "+0", "+3", "+2-1", "+1-2", "+0-1", "+0-2", "+0-3"} {
			entry := esp + contract.EntriesDir + "/" + contract.EntryPrefix + slot + counter + ".conf"
			paths = append(paths, entry, entry+".tmp")
		}
	}
	return paths
}

// powerCut is the disk as a power cut at one point left it: the phase's
// disk as the phase ended, with the ESP as it was at the cut.
type powerCut struct {
	phase   string
	syscall string // the system call the program had just made
	esp     string // the ESP's bytes at the cut; "" if its files are as at the cut before
	files   string // the ESP's files and their sha256, as read back
	base    string // the phase's disk
	want    string // the slot that must boot; "" for either
}

// cutEach runs cmd as root in the guest under strace, which stops it
// after each system call that changes the ESP. At each stop the VM is
// paused (QEMU flushes what the guest wrote to the image file), the ESP's
// bytes copied out, the VM resumed and the program continued. When the
// phase ends the whole disk is copied once. A cut's disk is that copy with
// the ESP as it was at the cut: the root slots differ from the cut's only
// while apply streams slot b, before slot b has an entry, when nothing
// boots it. A cut whose ESP holds the same files as the one before is not
// kept. want says which slot must boot after the cut that follows syscall
// number i (its strace line).
func (d *device) cutEach(phase, cmd string, want func(i int, syscall string) string) (cuts []powerCut, out string) {
	t := d.tb
	t.Helper()
	var trace []string
	for _, p := range espTracePaths() {
		trace = append(trace, "-P", p)
	}
	off, size := espRegion(t, d.disk)
	disk, err := os.Open(d.disk)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	d.sh(fmt.Sprintf(`sudo sh -c 'rm -f /tmp/st.log /tmp/st.rc; nohup strace -f -qq -o /tmp/st.log -e signal=SIGSTOP -e trace=%s -e inject=%s:signal=STOP %s sh -c "%s > /tmp/st.out 2>&1; echo \$? > /tmp/st.rc" > /dev/null 2>&1 &'`,
		espSyscalls, espSyscalls, strings.Join(trace, " "), cmd))
	start := time.Now()
	base := filepath.Join(work, "cut-"+phase+".img")
	t.Cleanup(func() { os.Remove(base) })
	lastFiles := ""
	for n := 1; ; n++ {
		// Wait for the n-th stop, or the end.
		state := d.sh(fmt.Sprintf(`for i in $(seq 3000); do `+
			`[ $(grep -c 'SIGSTOP {si_signo=SIGSTOP, si_code=SI_KERNEL}' /tmp/st.log) -ge %d ] && { echo stopped; exit 0; }; `+
			`[ -e /tmp/st.rc ] && { echo ended; exit 0; }; sleep 0.2; done; echo timeout`, n))
		if state == "ended" {
			break
		}
		if state != "stopped" {
			t.Fatalf("%s: neither stopped nor ended after %v:\n%s", phase, time.Since(start).Round(time.Second), d.sh("tail -20 /tmp/st.log"))
		}
		tid, syscall := stoppedAt(t, d.sh("cat /tmp/st.log"), n)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := d.vm.Pause(ctx); err != nil {
			t.Fatal(err)
		}
		esp := make([]byte, size)
		_, err := disk.ReadAt(esp, off)
		if err == nil {
			err = d.vm.Resume(ctx)
		}
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		c := powerCut{phase: phase, syscall: syscall, want: want(n, syscall), base: base,
			esp: filepath.Join(work, fmt.Sprintf("cut-%s-%02d.esp", phase, n))}
		if err := os.WriteFile(c.esp, esp, 0o600); err != nil {
			t.Fatal(err)
		}
		if c.files = espFiles(c.esp); c.files == lastFiles {
			os.Remove(c.esp)
			c.esp = ""
		} else {
			lastFiles = c.files
			t.Cleanup(func() { os.Remove(c.esp) })
		}
		cuts = append(cuts, c)
		d.sh("sudo kill -CONT " + tid)
	}
	out = d.sh("cat /tmp/st.out")
	if rc := d.sh("cat /tmp/st.rc"); rc != "0" {
		t.Fatalf("%s: %s exited with %s:\n%s", phase, cmd, rc, out)
	}
	// The phase's disk, as it ended.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := d.vm.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "--sparse=always", d.disk, base).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if err := d.vm.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d stops in %v", phase, len(cuts), time.Since(start).Round(time.Second))
	return cuts, out
}

// stopped matches the signal strace injects after a system call; with -f
// each line starts with the thread's id, padded to five places.
var (
	stopped   = regexp.MustCompile(`(?m)^(\d+) +--- SIGSTOP \{si_signo=SIGSTOP, si_code=SI_KERNEL\} ---$`)
	traceLine = regexp.MustCompile(`^(\d+) +(.*)$`)
)

// stoppedAt finds, in strace's log, the thread of the n-th injected stop
// and the system call it had just made.
func stoppedAt(t testing.TB, log string, n int) (tid, syscall string) {
	t.Helper()
	m := stopped.FindAllStringSubmatchIndex(log, n)
	if len(m) < n {
		t.Fatalf("strace's log shows %d stops, want %d:\n%s", len(m), n, log)
	}
	tid = log[m[n-1][2]:m[n-1][3]]
	for _, line := range strings.Split(log[:m[n-1][0]], "\n") {
		l := traceLine.FindStringSubmatch(line)
		switch {
		case l == nil || l[1] != tid || strings.HasPrefix(l[2], "---"):
		case strings.HasPrefix(l[2], "<... "):
			// The end of a call another thread's line interrupted.
			syscall += " " + l[2]
		default:
			syscall = l[2]
		}
	}
	return tid, syscall
}

// espRegion finds the ESP partition in a disk image: its offset and size
// in bytes.
func espRegion(t testing.TB, img string) (off, size int64) {
	t.Helper()
	off, size, err := espRegionErr(img)
	if err != nil {
		t.Fatal(err)
	}
	return off, size
}

func espRegionErr(img string) (off, size int64, err error) {
	d, err := diskfs.Open(img, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		return 0, 0, err
	}
	defer d.Close()
	pt, err := d.GetPartitionTable()
	if err != nil {
		return 0, 0, err
	}
	for _, p := range pt.(*gpt.Table).Partitions {
		if p.Name == contract.ESP {
			bs := int64(d.LogicalBlocksize)
			return int64(p.Start) * bs, int64(p.End-p.Start+1) * bs, nil
		}
	}
	return 0, 0, fmt.Errorf("%s: no ESP partition", img)
}

// espFiles lists the files of a FAT image with their sizes and sha256, as
// a FAT reader finds them: what a boot loader can read. A FAT that cannot
// be read is listed by its error.
func espFiles(img string) string {
	f, err := os.Open(img)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	fs, err := fat32.Read(file.New(f, true), st.Size(), 0, 512)
	if err != nil {
		return fmt.Sprintf("unreadable FAT: %v", err)
	}
	var lines []string
	var walk func(dir string) error
	walk = func(dir string) error {
		entries, err := fs.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			name := path.Join(dir, e.Name())
			if e.IsDir() {
				lines = append(lines, name+"/")
				if err := walk(name); err != nil {
					return err
				}
				continue
			}
			b, err := fs.ReadFile(name)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			lines = append(lines, fmt.Sprintf("%s %d %x", name, len(b), sha256.Sum256(b)))
		}
		return nil
	}
	if err := walk("."); err != nil {
		return fmt.Sprintf("unreadable FAT: %v", err)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

var (
	// The whole line: the console arrives in pieces, and a line's start
	// alone would match too.
	cutCmdline = regexp.MustCompile(`Kernel command line: ([^\r\n]*)\r?\n`)
	cutInit    = regexp.MustCompile(`systemd\[1\]|Welcome to`)
)

// bootCut boots a power cut's disk (its phase's disk with its ESP, in a
// copy) in a fresh QEMU only until systemd starts. The kernel prints the
// command line systemd-boot gave it: its slot and the root hash the slot's
// verity device must match. /init mounts no root that does not match it
// (TestCorruptRootStopsBoot), so systemd starting proves that slot's
// kernel, initrd and root are whole. It returns the slot.
func bootCut(c powerCut, roots map[string]string) (slot string, err error) {
	img := strings.TrimSuffix(c.esp, ".esp") + ".img"
	defer os.Remove(img)
	if out, err := exec.Command("cp", "--sparse=always", c.base, img).CombinedOutput(); err != nil {
		return "", fmt.Errorf("cp: %v %s", err, out)
	}
	esp, err := os.ReadFile(c.esp)
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		return "", err
	}
	off, _, err := espRegionErr(img)
	if err == nil {
		_, err = f.WriteAt(esp, off)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	vm, err := testvm.Start(ctx, qemu.Options{Image: img, NoReboot: true, MemoryMiB: 1024, CPUs: 1})
	if err != nil {
		return "", err
	}
	defer vm.Kill()
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, tail(vm.Console(), 60))
		}
	}()
	m, err := vm.WaitConsole(ctx, cutCmdline)
	if err != nil {
		return "", err
	}
	s, err := contract.Parse(cutCmdline.FindStringSubmatch(m)[1])
	if err != nil {
		return "", err
	}
	if s.Verity.RootHash != roots[s.Name] {
		return "", fmt.Errorf("slot %s boots with root hash %s, want %s", s.Name, s.Verity.RootHash, roots[s.Name])
	}
	if _, err := vm.WaitConsole(ctx, cutInit); err != nil {
		return "", err
	}
	return s.Name, nil
}

// TestPowerCutESP cuts the power, in effect, after every system call that
// changes the ESP while a device applies an update (v1 on slot a installs
// v2 into slot b), while systemd-bless-boot blesses slot b, and while
// nodectl rolls back to slot a (a promotion and a demotion), and boots
// each distinct disk: a complete slot must boot, the one expected where
// the state says which. The exhaustive cut of every operation, with
// renames split either way, is ota's TestPowerCut; this checks the real
// thing: Linux's vfat, systemd-boot, the kernel and /init.
func TestPowerCutESP(t *testing.T) {
	f := setupOTA(t)
	roots := map[string]string{}
	for slot, v := range map[string]string{"a": v1, "b": v2} {
		b, err := ota.Open(f.bundles[v])
		if err != nil {
			t.Fatal(err)
		}
		roots[slot] = b.Manifest.Verity.RootHash
	}
	// TestOTA leaves v3 on the registry; this test installs v2.
	if err := f.publish(v2, f.registryRef()); err != nil {
		t.Fatal(err)
	}
	d := newDevice(t, f)
	start := time.Now()
	var cuts []powerCut

	// Slot a boots until slot b's new entry gets its name; then slot b,
	// newer, sorts first. At the rename itself either may.
	renamed := false
	applyCuts, out := d.cutEach("apply", "nodectl update apply", func(_ int, sc string) string {
		switch {
		case renamed:
			return "b"
		case strings.HasPrefix(sc, "rename") && strings.Contains(sc, "nodebake-b+3.conf.tmp"):
			renamed = true
			return ""
		}
		return "a"
	})
	if !strings.Contains(out, "slot b holds "+f.name+" "+v2+" and boots next") {
		t.Fatalf("apply:\n%s", out)
	}
	cuts = append(cuts, applyCuts...)

	// Slot b boots with systemd-bless-boot masked, so that it can be run
	// by hand under strace.
	d.sh(`sudo sed -i 's/^options /options systemd.mask=systemd-bless-boot.service /' /efi/loader/entries/nodebake-b+3.conf`)
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	d.reboot()
	d.waitBoot(ctx, "b")
	cancel()
	d.sh("systemctl is-system-running --wait || true")
	if e := d.entries(); e != "nodebake-a.conf nodebake-b+2-1.conf" {
		t.Fatalf("entries on slot b's first boot: %s", e)
	}
	// systemd-bless-boot syncs the directory but not the renamed file:
	// until the kernel writes its inode back the new name is empty on the
	// disk, and slot a, the fallback, boots (seen here; ota's doc.go).
	blessCuts, _ := d.cutEach("bless", "/usr/lib/systemd/systemd-bless-boot good", func(int, string) string { return "" })
	if e := d.entries(); e != "nodebake-a.conf nodebake-b.conf" {
		t.Fatalf("entries after the blessing: %s", e)
	}
	cuts = append(cuts, blessCuts...)

	// Rolling back to the older slot a gives it three tries, then demotes
	// slot b: b boots until its good name is removed.
	removed := false
	rollbackCuts, out := d.cutEach("rollback", "nodectl update rollback", func(_ int, sc string) string {
		switch {
		case removed:
			return "a"
		case strings.HasPrefix(sc, "unlink") && strings.Contains(sc, `/nodebake-b.conf"`):
			removed = true
			return ""
		}
		return "b"
	})
	if !strings.Contains(out, "slot a ("+v1+") boots next") {
		t.Fatalf("rollback:\n%s", out)
	}
	if e := d.entries(); e != "nodebake-a+3.conf nodebake-b+0.conf" {
		t.Fatalf("entries after the rollback: %s", e)
	}
	cuts = append(cuts, rollbackCuts...)
	d.vm.Kill()
	t.Logf("%d stops recorded in %v", len(cuts), time.Since(start).Round(time.Second))

	// Boot each distinct disk, two at a time (a CPU each: nothing else
	// runs beside this test); a cut whose ESP holds the same files as the
	// one before boots as that one did, and must want the same.
	start = time.Now()
	slots := make([]string, len(cuts))
	errs := make([]error, len(cuts))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	n := 0
	for i, c := range cuts {
		if c.esp == "" {
			continue
		}
		n++
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			slots[i], errs[i] = bootCut(c, roots)
		}()
	}
	wg.Wait()
	booted := ""
	for i, c := range cuts {
		if c.esp != "" {
			if errs[i] != nil {
				t.Fatalf("%s, cut after %s: %v", c.phase, c.syscall, errs[i])
			}
			booted = slots[i]
		}
		t.Logf("%-8s cut after %-90.90s boots slot %s", c.phase, c.syscall, booted)
		if c.want != "" && booted != c.want {
			t.Errorf("%s: the cut after %s boots slot %s, want %s", c.phase, c.syscall, booted, c.want)
		}
	}
	t.Logf("%d distinct disks booted in %v", n, time.Since(start).Round(time.Second))
	// Each kind of step was cut: the renames of new files and of
	// systemd-bless-boot, and the removals of old names.
	for _, want := range []struct{ phase, syscall, path string }{
		{"apply", "rename", "vmlinuz.tmp"}, {"apply", "rename", "nodebake-b+3.conf.tmp"},
		{"bless", "rename", "nodebake-b+2-1.conf"},
		{"rollback", "rename", "nodebake-a+3.conf.tmp"}, {"rollback", "unlink", "nodebake-a.conf"},
		{"rollback", "rename", "nodebake-b+0.conf.tmp"}, {"rollback", "unlink", "nodebake-b.conf"},
	} {
		if !slices.ContainsFunc(cuts, func(c powerCut) bool {
			return c.phase == want.phase && strings.HasPrefix(c.syscall, want.syscall) && strings.Contains(c.syscall, want.path)
		}) {
			t.Errorf("%s: no stop at the %s of %s", want.phase, want.syscall, want.path)
		}
	}
}

//go:build qemu

package qemutests

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/disk"
	"github.com/nodebake/nodebake/internal/qemu"
	"github.com/nodebake/nodebake/internal/squashfs"
	"github.com/nodebake/nodebake/internal/testvm"
	"github.com/nodebake/nodebake/qemu-tests/internal/guest"
)

// BenchmarkImage prints the build figures the README quotes: cold build
// (empty cache: mmdebstrap downloads), warm build beside a bare tar2sqfs
// of the same tree (the same-run baseline of issue #13: warm ≤ 1.5 × bare
// + 5 s), root squashfs and its kernel modules, raw image (apparent and
// allocated: it is sparse) and .zst sizes. Nothing is asserted; run it
// with `make bench`.
func BenchmarkImage(b *testing.B) {
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		img := filepath.Join(dir, "minibolt.img")
		build := func(cache string) time.Duration {
			start := time.Now()
			cmd := exec.Command(nodebakeBin, "build", "-q", "-f", specPath, "-o", img, "--src", "..", "--compress", "zstd", "--cache", cache)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("build: %v\n%s", err, out)
			}
			return time.Since(start)
		}
		cache := filepath.Join(dir, "cache")
		cold := build(cache)
		warm := build(cache)

		info, err := disk.Inspect(img)
		if err != nil {
			b.Fatal(err)
		}
		slot, err := contract.Parse(info.ESP.Entries[0].Options)
		if err != nil {
			b.Fatal(err)
		}
		rootA := partition(b, info, contract.RootA)
		sqfs := filepath.Join(dir, "root.sqfs")
		copyRange(b, img, sqfs, rootA.Start, int64(slot.Verity.HashOffset))
		modules := treeBytes(b, sqfs, "usr/lib/modules")
		bare := bareTar2sqfs(b, dir, sqfs)

		rows := []row{
			{"squashfs MB", mb(int64(slot.Verity.HashOffset)), ""},
			{"modules MB", mb(modules), "uncompressed, in the squashfs"},
			{"raw image MB", mb(size(b, img)), fmt.Sprintf("%s MB allocated (sparse)", mb(allocated(b, img)))},
			{".zst image MB", mb(size(b, img+".zst")), ""},
			{"cold build s", secs(cold), "empty cache: mmdebstrap downloads"},
			{"warm build s", secs(warm), fmt.Sprintf("bare tar2sqfs %s s; warm/(1.5×bare+5 s) = %.2f", secs(bare), warm.Seconds()/(1.5*bare.Seconds()+5))},
		}
		printTable(b, rows)
		b.ReportMetric(float64(slot.Verity.HashOffset)/1e6, "MB-squashfs")
		b.ReportMetric(float64(modules)/1e6, "MB-modules")
		b.ReportMetric(float64(size(b, img))/1e6, "MB-image")
		b.ReportMetric(float64(size(b, img+".zst"))/1e6, "MB-zst")
		b.ReportMetric(cold.Seconds(), "s-cold-build")
		b.ReportMetric(warm.Seconds(), "s-warm-build")
		b.ReportMetric(bare.Seconds(), "s-bare-tar2sqfs")
	}
}

// BenchmarkBoot boots a copy of the shared image twice — the first boot
// formats /data and makes keys, the second is every later power-on — and
// prints systemd's own account of each: kernel and userspace time to the
// default target, the critical chain and the slowest units.
func BenchmarkBoot(b *testing.B) {
	for i := 0; i < b.N; i++ {
		img := filepath.Join(b.TempDir(), "boot.img")
		if out, err := exec.Command("cp", "--sparse=always", image, img).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v: %s", err, out)
		}
		var rows []row
		for _, which := range []string{"first", "second"} {
			t := bootTimes(b, img)
			rows = append(rows, row{which + " boot s", fmt.Sprintf("%.1f", t.kernel+t.userspace), fmt.Sprintf("kernel %.1f + userspace %.1f", t.kernel, t.userspace)})
			b.ReportMetric(t.kernel+t.userspace, "s-"+which+"-boot")
			b.Logf("%s boot: critical chain\n%s\nslowest units\n%s", which, t.chain, t.blame)
		}
		printTable(b, rows)
	}
}

type row struct{ figure, value, notes string }

func printTable(b *testing.B, rows []row) {
	var s strings.Builder
	s.WriteString("| figure | value | notes |\n| --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&s, "| %s | %s | %s |\n", r.figure, r.value, r.notes)
	}
	// Standard output, not b.Log: the table is what `make bench` is for.
	fmt.Print(s.String())
}

func mb(n int64) string           { return fmt.Sprintf("%.1f", float64(n)/1e6) }
func secs(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()) }
func size(b *testing.B, p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	return st.Size()
}

func allocated(b *testing.B, p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Blocks * 512
}

func partition(b *testing.B, info *disk.Info, name string) disk.PartitionInfo {
	for _, p := range info.Partitions {
		if p.Name == name {
			return p
		}
	}
	b.Fatalf("no partition %s", name)
	return disk.PartitionInfo{}
}

// copyRange copies n bytes at off of src into a new file dst.
func copyRange(b *testing.B, src, dst string, off, n int64) {
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, io.NewSectionReader(in, off, n)); err != nil {
		b.Fatal(err)
	}
}

// treeBytes sums the sizes of the regular files under dir in a squashfs,
// as unsquashfs lists them.
func treeBytes(b *testing.B, sqfs, dir string) int64 {
	out, err := exec.Command("unsquashfs", "-lls", "-d", "", sqfs, dir).Output()
	if err != nil {
		b.Fatalf("unsquashfs -lls: %v", err)
	}
	var n int64
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) >= 3 && strings.HasPrefix(f[0], "-") {
			v, _ := strconv.ParseInt(f[2], 10, 64)
			n += v
		}
	}
	return n
}

// bareTar2sqfs turns the image's root back into a tar (the same tree the
// build fed tar2sqfs) and times tar2sqfs alone on it, with the build's
// settings: the floor any build of this tree has.
func bareTar2sqfs(b *testing.B, dir, sqfs string) time.Duration {
	tarPath := filepath.Join(dir, "root.tar")
	if out, err := exec.Command("sqfs2tar", "--no-skip", "-o", tarPath, sqfs).CombinedOutput(); err != nil {
		b.Fatalf("sqfs2tar: %v: %s", err, out)
	}
	in, err := os.Open(tarPath)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	cmd := exec.Command("tar2sqfs", "--compressor", "zstd", "--comp-extra", "level="+strconv.Itoa(squashfs.Level),
		"--num-jobs", strconv.Itoa(runtime.NumCPU()), "--no-skip", "--quiet", "--force", filepath.Join(dir, "bare.sqfs"))
	cmd.Stdin = in
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("tar2sqfs: %v: %s", err, out)
	}
	return time.Since(start)
}

var (
	kernelTime    = regexp.MustCompile(`([0-9.]+(?:min [0-9.]+)?m?s) \(kernel\)`)
	userspaceTime = regexp.MustCompile(`([0-9.]+(?:min [0-9.]+)?m?s) \(userspace\)`)
)

type bootTime struct {
	kernel, userspace float64
	chain, blame      string
}

// bootTimes boots img (writes kept), waits for the boot to finish and
// reads systemd-analyze, then shuts the guest down.
func bootTimes(b *testing.B, img string) bootTime {
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	port, err := testvm.FreePort()
	if err != nil {
		b.Fatal(err)
	}
	vm, err := testvm.Start(ctx, qemu.Options{Image: img, Forwards: []qemu.Forward{{HostPort: port, GuestPort: 22}}})
	if err != nil {
		b.Fatal(err)
	}
	defer vm.Kill()
	c, err := guest.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", port), "admin", adminKey)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.Run("systemctl is-system-running --wait")
	out, err := c.Run("systemd-analyze")
	k, u := kernelTime.FindStringSubmatch(out), userspaceTime.FindStringSubmatch(out)
	if err != nil || k == nil || u == nil {
		b.Fatalf("systemd-analyze: %v %q", err, out)
	}
	var t bootTime
	t.kernel, t.userspace = seconds(b, k[1]), seconds(b, u[1])
	t.chain, _ = c.Run("systemd-analyze critical-chain --no-pager")
	t.blame, _ = c.Run("systemd-analyze blame --no-pager | head -n 12")
	c.Close()
	if err := vm.Stop(); err != nil {
		b.Fatal(err)
	}
	return t
}

// seconds reads systemd's time span: "7.123s", "912ms", "1min 2.5s".
func seconds(b *testing.B, s string) float64 {
	var total float64
	for _, f := range strings.Fields(s) {
		var unit float64
		var num string
		switch {
		case strings.HasSuffix(f, "min"):
			unit, num = 60, strings.TrimSuffix(f, "min")
		case strings.HasSuffix(f, "ms"):
			unit, num = 0.001, strings.TrimSuffix(f, "ms")
		case strings.HasSuffix(f, "s"):
			unit, num = 1, strings.TrimSuffix(f, "s")
		default:
			b.Fatalf("time span %q", s)
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil {
			b.Fatalf("time span %q: %v", s, err)
		}
		total += v * unit
	}
	return total
}

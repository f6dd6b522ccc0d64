//go:build qemu

package qemutests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/disk"
	"github.com/nodebake/nodebake/internal/qemu"
	"github.com/nodebake/nodebake/internal/testvm"
	"github.com/nodebake/nodebake/qemu-tests/internal/guest"
)

// BenchmarkImage prints the figures the README quotes: cold build (empty
// cache: mmdebstrap downloads), warm build, root squashfs, image and .zst
// sizes, and QEMU seconds from power-on to multi-user.target. Nothing is
// asserted; run it with `make bench`.
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
		b.ReportMetric(cold.Seconds(), "s-cold-build")
		b.ReportMetric(warm.Seconds(), "s-warm-build")

		info, err := disk.Inspect(img)
		if err != nil {
			b.Fatal(err)
		}
		slot, err := contract.Parse(info.ESP.Entries[0].Options)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(slot.Verity.HashOffset)/1e6, "MB-squashfs")
		b.ReportMetric(float64(size(b, img))/1e6, "MB-image")
		b.ReportMetric(float64(size(b, img+".zst"))/1e6, "MB-zst")

		boot, userspace := bootSeconds(b, img)
		b.ReportMetric(boot, "s-to-ssh")
		b.ReportMetric(userspace, "s-to-multi-user")
	}
}

func size(b *testing.B, p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	return st.Size()
}

var analyze = regexp.MustCompile(`= ([0-9.]+)s`)

// bootSeconds returns wall-clock seconds from QEMU start to an SSH login,
// and the guest's own count (systemd-analyze: firmware excluded) to the end
// of its boot.
func bootSeconds(b *testing.B, img string) (float64, float64) {
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	port, err := testvm.FreePort()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	vm, err := testvm.Start(ctx, qemu.Options{Image: img, Snapshot: true, Forwards: []qemu.Forward{{HostPort: port, GuestPort: 22}}})
	if err != nil {
		b.Fatal(err)
	}
	defer vm.Kill()
	c, err := guest.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", port), "admin", adminKey)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	toSSH := time.Since(start).Seconds()
	c.Run("systemctl is-system-running --wait")
	out, err := c.Run("systemd-analyze")
	m := analyze.FindStringSubmatch(out)
	if err != nil || m == nil {
		b.Fatalf("systemd-analyze: %v %q", err, out)
	}
	total, _ := strconv.ParseFloat(m[1], 64)
	return toSSH, total
}

package ballast

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func rssKiB(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// The memory is resident, not just mapped, and never given back.
func TestGrowTo(t *testing.T) {
	t.Setenv(SkipEnv, "0")
	b := New()
	before := rssKiB(t)
	if err := b.GrowTo(40*MiB + 1); err != nil {
		t.Fatal(err)
	}
	if grew := rssKiB(t) - before; b.Held() != 40*MiB+4096 || grew < 40*1024 {
		t.Errorf("held %d bytes, resident grew %d KiB, want 40 MiB + a page, all resident", b.Held(), grew)
	}
	if err := b.GrowTo(10 * MiB); err != nil || b.Held() != 40*MiB+4096 {
		t.Errorf("GrowTo a smaller size: %v, held %d", err, b.Held())
	}
}

func TestSkip(t *testing.T) {
	t.Setenv(SkipEnv, "1")
	b := New()
	before := rssKiB(t)
	if err := b.GrowTo(100 * MiB); err != nil || !b.Skipped() || b.Held() != 100*MiB {
		t.Errorf("skipping: %v, skipped %v, held %d", err, b.Skipped(), b.Held())
	}
	if grew := rssKiB(t) - before; grew > 10*1024 {
		t.Errorf("resident grew %d KiB while skipping", grew)
	}
}

//go:build qemu

package qemutests

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Two builds of the same inputs (cached userland, same SOURCE_DATE_EPOCH)
// give byte-identical images.
func TestReproducible(t *testing.T) {
	second := filepath.Join(work, "again", "minibolt.img")
	cmd := exec.Command(nodebakeBin, "build", "-q", "-f", specPath, "-o", second, "--src", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("second build: %v\n%s", err, out)
	}
	defer os.RemoveAll(filepath.Dir(second))
	a, err := exec.Command("cmp", image, second).CombinedOutput()
	if err != nil {
		t.Fatalf("images differ: %s", a)
	}
	sumA, _ := os.ReadFile(image + ".sha256")
	sumB, _ := os.ReadFile(second + ".sha256")
	if len(sumA) < 64 || !bytes.Equal(sumA[:64], sumB[:64]) {
		t.Fatalf("checksum files differ: %q vs %q", sumA, sumB)
	}
}

// Ctrl-C in the middle of a build leaves nothing at the output path: no
// image, no sidecar, no temporary file or work folder.
func TestInterruptLeavesNothing(t *testing.T) {
	dir := filepath.Join(work, "interrupted")
	out := filepath.Join(dir, "minibolt.img")
	cmd := exec.Command(nodebakeBin, "build", "-f", specPath, "-o", out, "--src", "..", "--compress", "zstd")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt once the disk is being written: the most to clean up.
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "==> disk") {
			time.Sleep(300 * time.Millisecond)
			cmd.Process.Signal(syscall.SIGINT)
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	err = cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 130 {
		t.Fatalf("interrupted build: %v, want exit status 130", err)
	}
	left, _ := os.ReadDir(dir)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if len(names) != 0 {
		t.Fatalf("an interrupted build left %v in %s", names, dir)
	}
}

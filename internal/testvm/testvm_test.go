package testvm

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/internal/qemu"
)

// TestWaitConsoleConsumes: a second wait for the same pattern needs a second
// occurrence; ctx ends the wait with the console in the error.
func TestWaitConsoleConsumes(t *testing.T) {
	c := &console{changed: make(chan struct{})}
	c.Write([]byte("\x1b[2J\x1b[01;01Hboot A: login: "))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	login := regexp.MustCompile(`boot (\w): login:`)
	if m, err := c.wait(ctx, login); err != nil || m != "boot A: login:" {
		t.Fatalf("first wait: %q, %v", m, err)
	}

	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	_, err := c.wait(short, login)
	if err == nil || !strings.Contains(err.Error(), "boot A: login:") || strings.Contains(err.Error(), "\x1b") {
		t.Fatalf("second wait before a second login: want a timeout showing the readable console, got %v", err)
	}

	go func() {
		time.Sleep(100 * time.Millisecond)
		c.Write([]byte("reboot\r\nboot B: login: "))
	}()
	if m, err := c.wait(ctx, login); err != nil || m != "boot B: login:" {
		t.Fatalf("wait across reboot: %q, %v", m, err)
	}
}

// TestWaitConsoleAfterExit: once QEMU has exited, waiting for more output
// fails at once instead of waiting for ctx. Real QEMU with an empty disk
// runs until it is killed.
func TestWaitConsoleAfterExit(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 1<<20); err != nil {
		t.Fatal(err)
	}
	vm, err := Start(ctx, qemu.Options{Image: img, Snapshot: true, MemoryMiB: 256, CPUs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := vm.Kill(); err != nil {
		t.Fatal(err)
	}
	_, err = vm.WaitConsole(ctx, regexp.MustCompile(`never printed`))
	if err == nil || !strings.Contains(err.Error(), "QEMU exited") || ctx.Err() != nil {
		t.Errorf("WaitConsole after exit: got %v", err)
	}
}

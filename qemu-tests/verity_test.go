//go:build qemu

package qemutests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/nodebake/nodebake/internal/qemu"
	"github.com/nodebake/nodebake/internal/testvm"
)

// A flipped byte in the root partition must stop the boot with a verity
// error from the kernel, not be read silently.
func TestCorruptRootStopsBoot(t *testing.T) {
	bad := filepath.Join(work, "corrupt.img")
	if out, err := exec.Command("cp", "--sparse=always", image, bad).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	defer os.Remove(bad)
	start := partitionStart(t, bad, "root-a")
	// Byte 100 lies in the squashfs superblock: the first block the kernel
	// reads when /init mounts the root.
	f, err := os.OpenFile(bad, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, start+100); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, start+100); err != nil {
		t.Fatal(err)
	}
	f.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	vm, err := testvm.Start(ctx, qemu.Options{Image: bad, Snapshot: true, NoReboot: true})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	// The kernel's dm-verity target reports the block it refused.
	if _, err := vm.WaitConsole(ctx, regexp.MustCompile(`device-mapper: verity: [0-9:]+: data block \d+ is corrupted`)); err != nil {
		t.Fatalf("no verity error on the console: %v\n%s", err, tail(vm.Console(), 80))
	}
	// /init must give up (and reboot, which -no-reboot turns into an exit)
	// without ever starting systemd from the corrupt root.
	if err := vm.Wait(); ctx.Err() != nil {
		t.Fatalf("VM still running after the verity error (%v):\n%s", err, tail(vm.Console(), 80))
	}
	if regexp.MustCompile(`systemd\[1\]|Welcome to`).MatchString(vm.Console()) {
		t.Fatalf("systemd started from a corrupt root:\n%s", tail(vm.Console(), 80))
	}
}

func partitionStart(t *testing.T, img, name string) int64 {
	t.Helper()
	d, err := diskfs.Open(img, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pt, err := d.GetPartitionTable()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pt.(*gpt.Table).Partitions {
		if p.Name == name {
			return int64(p.Start) * int64(d.LogicalBlocksize)
		}
	}
	t.Fatalf("%s: no partition %q", img, name)
	return 0
}

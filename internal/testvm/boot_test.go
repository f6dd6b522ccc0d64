//go:build qemu

package testvm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/internal/qemu"
)

// TestBootSystemdBoot boots the firmware from a disk holding nothing but
// systemd-boot at the removable-media path and no boot entries. systemd-boot
// then draws its menu on the serial console with its one built-in entry,
// "Reboot Into Firmware Interface", and picks it when the timeout runs out;
// under NoReboot that reset makes QEMU exit cleanly.
//
// Run with: go test -tags qemu ./internal/testvm/
// Needs: qemu-system-x86, ovmf, systemd-boot-efi, dosfstools, mtools.
func TestBootSystemdBoot(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	consolePath := filepath.Join(t.TempDir(), "console.log")
	consoleFile, err := os.Create(consolePath)
	if err != nil {
		t.Fatal(err)
	}
	defer consoleFile.Close()

	img := espImage(t)
	// QEMU's private temp dir goes here, to check that it is removed.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	vm, err := Start(ctx, qemu.Options{
		Image:     img,
		Snapshot:  true,
		MemoryMiB: 512,
		Console:   consoleFile,
		NoReboot:  true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()

	began := time.Now()
	m, err := vm.WaitConsole(ctx, regexp.MustCompile(`Reboot Into Firmware Interface`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("systemd-boot menu after %v: %q", time.Since(began).Round(time.Millisecond), m)

	// The menu's timeout (1 s, from loader.conf) boots the firmware entry:
	// a reset, which ends QEMU before anything else is printed.
	_, err = vm.WaitConsole(ctx, regexp.MustCompile(`never printed`))
	if err == nil || !strings.Contains(err.Error(), "QEMU exited (without error)") {
		t.Fatalf("WaitConsole once systemd-boot resets the machine: want an early failure, got %v", err)
	}
	t.Log(err)
	if ctx.Err() != nil {
		t.Fatal("WaitConsole waited for the context instead of noticing QEMU's exit")
	}
	if err := vm.Wait(); err != nil {
		t.Fatalf("QEMU should exit cleanly on reset with NoReboot: %v", err)
	}

	copied, err := os.ReadFile(consolePath)
	if err != nil {
		t.Fatal(err)
	}
	if string(copied) != vm.Console() {
		t.Errorf("console copy (%d bytes) differs from Console() (%d bytes)", len(copied), len(vm.Console()))
	}
	if left, err := os.ReadDir(tmp); err != nil || len(left) != 0 {
		t.Errorf("VM temp dir left behind in %s: %v (%v)", tmp, left, err)
	}
}

// espImage makes a FAT file system spanning the whole disk (UEFI reads such
// "superfloppies" like an ESP) holding \EFI\BOOT\BOOTX64.EFI = systemd-boot
// and a loader.conf that shortens its menu timeout.
func espImage(t *testing.T) string {
	t.Helper()
	const systemdBoot = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	if _, err := os.Stat(systemdBoot); err != nil {
		t.Fatalf("%v: apt-get install systemd-boot-efi", err)
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "esp.img")
	loaderConf := filepath.Join(dir, "loader.conf")
	if err := os.WriteFile(loaderConf, []byte("timeout 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{"mkfs.vfat", "-C", img, "32768"}, // KiB
		{"mmd", "-i", img, "::/EFI", "::/EFI/BOOT", "::/loader"},
		{"mcopy", "-i", img, systemdBoot, "::/EFI/BOOT/BOOTX64.EFI"},
		{"mcopy", "-i", img, loaderConf, "::/loader/loader.conf"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s(mkfs.vfat is in dosfstools, mmd and mcopy in mtools)", strings.Join(c, " "), err, out)
		}
	}
	return img
}

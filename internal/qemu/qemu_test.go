package qemu

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestArgs(t *testing.T) {
	o := Options{
		Image:     "/images/node,v1.img",
		Snapshot:  true,
		MemoryMiB: 3072,
		CPUs:      4,
		Forwards:  []Forward{{2222, 22}, {50001, 50001}},
		NoReboot:  true,
	}
	p := paths{code: "/fw/code.fd", vars: "/tmp/x/vars.fd", qmp: "/tmp/x/qmp.sock"}
	a := args(o, p, false)
	line := strings.Join(a, " ")

	for _, want := range [][]string{
		{"-machine", "q35"},
		{"-accel", "tcg"},
		{"-cpu", "max"},
		{"-m", "3072"},
		{"-smp", "4"},
		{"-display", "none"},
		{"-drive", "if=pflash,unit=0,format=raw,readonly=on,file=/fw/code.fd"},
		{"-drive", "if=pflash,unit=1,format=raw,file=/tmp/x/vars.fd"},
		// A comma in a path must be doubled, or QEMU reads the rest as options.
		{"-drive", "if=none,id=disk0,format=raw,file=/images/node,,v1.img,snapshot=on"},
		{"-device", "virtio-blk-pci,drive=disk0"},
		{"-device", "virtio-rng-pci"},
		{"-netdev", "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:50001-:50001"},
		{"-device", "virtio-net-pci,netdev=net0"},
		{"-chardev", "stdio,id=con0,signal=off"},
		{"-serial", "chardev:con0"},
	} {
		if !containsSeq(a, want) {
			t.Errorf("command line lacks %q:\n%s", want, line)
		}
	}
	if a[0] != "-nodefaults" {
		t.Errorf("command line should start with -nodefaults: %s", line)
	}
	if !slices.Contains(a, "-no-reboot") {
		t.Errorf("NoReboot not passed: %s", line)
	}
	if strings.Contains(line, "mux=on") {
		t.Errorf("captured console must not multiplex a monitor: %s", line)
	}

	o.Snapshot, o.NoReboot, o.Interactive = false, false, true
	a = args(o, p, true)
	line = strings.Join(a, " ")
	if !containsSeq(a, []string{"-accel", "kvm"}) {
		t.Errorf("KVM not used when usable: %s", line)
	}
	if strings.Contains(line, "snapshot") || slices.Contains(a, "-no-reboot") {
		t.Errorf("snapshot or -no-reboot passed without being asked for: %s", line)
	}
	if !containsSeq(a, []string{"-chardev", "stdio,id=con0,mux=on,signal=off"}) ||
		!containsSeq(a, []string{"-mon", "chardev=con0,mode=readline"}) {
		t.Errorf("interactive console lacks the multiplexed monitor: %s", line)
	}
}

func containsSeq(a, seq []string) bool {
	for i := range a {
		if slices.Equal(a[i:min(i+len(seq), len(a))], seq) {
			return true
		}
	}
	return false
}

func TestOptionsRejected(t *testing.T) {
	for name, o := range map[string]Options{
		"no image":                   {},
		"port zero":                  {Image: "x", Forwards: []Forward{{0, 22}}},
		"port too large":             {Image: "x", Forwards: []Forward{{2222, 70000}}},
		"host port twice":            {Image: "x", Forwards: []Forward{{2222, 22}, {2222, 23}}},
		"negative memory":            {Image: "x", MemoryMiB: -1},
		"negative cpus":              {Image: "x", CPUs: -2},
		"image is missing":           {Image: filepath.Join(t.TempDir(), "missing.img")},
		"cold reboots of a snapshot": {Image: "x", Snapshot: true, ColdReboot: true},
	} {
		if _, err := Start(t.Context(), o); err == nil {
			t.Errorf("%s: Start accepted %+v", name, o)
		}
	}
}

func TestDefaults(t *testing.T) {
	o, err := withDefaults(Options{Image: "x", Interactive: true})
	if err != nil {
		t.Fatal(err)
	}
	if o.MemoryMiB != 2048 || o.CPUs != 2 || o.StopGrace != 2*time.Minute || o.Console != os.Stdout {
		t.Errorf("defaults: %+v", o)
	}
}

func TestMissingTools(t *testing.T) {
	img := emptyImage(t)

	_, err := start(t.Context(), Options{Image: img}, firmware{code: "/nonexistent/OVMF_CODE_4M.fd", vars: debianOVMF.vars})
	if err == nil || !strings.Contains(err.Error(), "apt-get install ovmf") {
		t.Errorf("missing firmware: want a hint to install ovmf, got %v", err)
	}

	t.Setenv("PATH", t.TempDir())
	_, err = Start(t.Context(), Options{Image: img})
	if err == nil || !strings.Contains(err.Error(), "apt-get install qemu-system-x86") {
		t.Errorf("missing QEMU: want a hint to install qemu-system-x86, got %v", err)
	}
}

func TestCPUHasVirtualization(t *testing.T) {
	for cpuinfo, want := range map[string]bool{
		"processor\t: 0\nflags\t\t: fpu vme vmx sse2\n":  true,
		"processor\t: 0\nflags\t\t: fpu svm lm\n":        true,
		"processor\t: 0\nflags\t\t: fpu hypervisor lm\n": false,
		"vmx\n": false, // only the flags line counts
	} {
		if got := cpuHasVirtualization(cpuinfo); got != want {
			t.Errorf("cpuHasVirtualization(%q) = %v, want %v", cpuinfo, got, want)
		}
	}
}

// TestRealQEMU starts real QEMU with the real firmware and an empty disk:
// QEMU accepts the command line, answers QMP and forwards the port; the
// firmware ignores the ACPI power button (there is no OS to handle it), so
// Stop kills QEMU after the grace period and cleans up. Booting as far as the
// boot loader takes seconds, so that is left to the test tagged "qemu".
func TestRealQEMU(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	vm, err := Start(ctx, Options{
		Image:     emptyImage(t),
		Snapshot:  true,
		MemoryMiB: 256,
		CPUs:      1,
		Forwards:  []Forward{{port, 22}},
		StopGrace: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()

	status, err := vm.current().qmp.execute(ctx, "query-status")
	if err != nil {
		t.Fatal(err)
	}
	var s struct{ Status string }
	if err := json.Unmarshal(status, &s); err != nil || s.Status != "running" {
		t.Fatalf("query-status: %s (%v)", status, err)
	}

	// Pause and Resume stop and restart the guest's CPUs.
	for _, step := range []struct {
		do   func(context.Context) error
		want string
	}{{vm.Pause, "paused"}, {vm.Resume, "running"}} {
		if err := step.do(ctx); err != nil {
			t.Fatal(err)
		}
		status, err := vm.current().qmp.execute(ctx, "query-status")
		if err == nil {
			err = json.Unmarshal(status, &s)
		}
		if err != nil || s.Status != step.want {
			t.Errorf("query-status: %s (%v), want %s", status, err, step.want)
		}
	}

	// The forward listens on loopback only.
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("forwarded port %d: %v", port, err)
	}
	c.Close()

	err = vm.Stop()
	if err == nil || !strings.Contains(err.Error(), "did not power off") {
		t.Fatalf("Stop of firmware that ignores the power button: got %v", err)
	}
	if err := vm.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Wait after the kill: got %v", err)
	}
	if _, err := os.Stat(vm.dir); !os.IsNotExist(err) {
		t.Errorf("VM temp dir %s left behind (%v)", vm.dir, err)
	}
}

// TestPortTaken: QEMU's own complaint about a forwarded port that is in use
// reaches the caller of Start.
func TestPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	vm, err := Start(t.Context(), Options{Image: emptyImage(t), Snapshot: true, Forwards: []Forward{{port, 22}}})
	if err == nil {
		vm.Kill()
		t.Fatal("Start succeeded with the forwarded port taken")
	}
	if !strings.Contains(err.Error(), "hostfwd") && !strings.Contains(err.Error(), "forward") {
		t.Errorf("error does not name the forward: %v", err)
	}
}

func emptyImage(t *testing.T) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 1<<20); err != nil {
		t.Fatal(err)
	}
	return img
}

// TestColdReboot: under ColdReboot a reset of the machine (here QMP's
// system_reset, which QEMU handles like the guest's own reboot) ends the
// QEMU process and a new one takes its place, while the VM, its console
// and its firmware variables carry on; anything else that stops QEMU
// (here QMP's quit) ends the VM.
func TestColdReboot(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	vm, err := Start(ctx, Options{Image: emptyImage(t), MemoryMiB: 256, CPUs: 1, ColdReboot: true})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	first := vm.current()
	if _, err := first.qmp.execute(ctx, "system_reset"); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	if first.err != nil {
		t.Fatalf("the first QEMU after the reset: %v", first.err)
	}
	var second *process
	for second = vm.current(); second == first; second = vm.current() {
		select {
		case <-vm.done:
			t.Fatalf("the VM ended on the reset: %v", vm.Wait())
		case <-ctx.Done():
			t.Fatal("no new QEMU after the reset")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if second.cmd.Process.Pid == first.cmd.Process.Pid {
		t.Fatal("the same process")
	}
	status, err := second.qmp.execute(ctx, "query-status")
	if err != nil || !strings.Contains(string(status), `"running"`) {
		t.Fatalf("the new QEMU: query-status %s (%v)", status, err)
	}
	if _, err := os.Stat(vm.p.vars); err != nil {
		t.Errorf("the firmware variables: %v", err)
	}

	second.qmp.execute(ctx, "quit")
	if err := vm.Wait(); err != nil {
		t.Fatalf("quit: want a clean end of the VM, got %v", err)
	}
	if vm.current() != second {
		t.Error("a third QEMU started after quit")
	}
	if _, err := os.Stat(vm.dir); !os.IsNotExist(err) {
		t.Errorf("VM temp dir %s left behind (%v)", vm.dir, err)
	}
}

// TestColdRebootKill: Kill ends the VM for good, whichever process runs.
func TestColdRebootKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	vm, err := Start(ctx, Options{Image: emptyImage(t), MemoryMiB: 256, CPUs: 1, ColdReboot: true})
	if err != nil {
		t.Fatal(err)
	}
	// The reset and the kill race: either the first process or its
	// successor is killed, and no process outlives the VM.
	vm.current().qmp.execute(ctx, "system_reset")
	if err := vm.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-vm.done:
	default:
		t.Fatal("Kill returned before the VM ended")
	}
	p := vm.current()
	<-p.exited
	if err := p.cmd.Process.Signal(syscall.Signal(0)); err == nil {
		t.Errorf("QEMU pid %d still runs after Kill", p.cmd.Process.Pid)
	}
}

// Each bus attaches the one drive through its own controller; an unknown
// bus is refused before QEMU starts.
func TestDiskBus(t *testing.T) {
	for bus, want := range map[Bus]string{
		"":      "-device virtio-blk-pci,drive=disk0",
		BusNVMe: "-device nvme,drive=disk0,serial=nodebake0",
		BusAHCI: "-device ide-hd,drive=disk0,bus=ide.0",
		BusUSB:  "-device qemu-xhci,id=xhci -device usb-storage,drive=disk0,bus=xhci.0,removable=off",
	} {
		line := strings.Join(args(Options{Image: "x", Bus: bus}, paths{}, false), " ")
		if !strings.Contains(line, want) || strings.Count(line, "drive=disk0") != 1 {
			t.Errorf("bus %q: %s\nwant %s", bus, line, want)
		}
	}
	if _, err := withDefaults(Options{Image: "x", Bus: "scsi"}); err == nil || !strings.Contains(err.Error(), `disk bus "scsi"`) {
		t.Errorf("bus scsi: %v", err)
	}
}

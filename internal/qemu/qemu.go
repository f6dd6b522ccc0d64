// Package qemu boots a disk image in QEMU the way a user's PC would run it:
// x86_64, UEFI (OVMF), a virtio disk and network. It serves `nodebake qemu`
// and the boot tests, which drive the VM through its serial console and
// through TCP ports forwarded from 127.0.0.1.
//
// Without KVM (as on CI machines) QEMU emulates the CPU in software: Debian
// reaches systemd after ~10 s and finishes booting after ~20-30 s, the first
// boot longer. Nothing here waits on a fixed clock; callers bound every wait
// with a context.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Forward forwards TCP connections to 127.0.0.1:HostPort on the host to
// GuestPort in the guest.
type Forward struct{ HostPort, GuestPort int }

// GuestForward lets the guest reach a TCP service on the host, which
// restrict=on otherwise hides from it: connections the guest opens to
// GuestAddr:GuestPort reach 127.0.0.1:HostPort. GuestAddr is an unused
// address of QEMU's user network, 10.0.2.0/24 (e.g. 10.0.2.100). Each
// connection is relayed by socat: QEMU's own form, a character device,
// carries a single connection for the life of the VM.
type GuestForward struct {
	GuestAddr string
	GuestPort int
	HostPort  int
}

// Options describes one VM. Only Image is required.
type Options struct {
	Image    string // raw disk image
	Snapshot bool   // send writes to a temporary overlay; the image file is never modified
	// Bus is what the disk hangs on: BusVirtio (the default), BusNVMe,
	// BusAHCI (SATA) or BusUSB (USB mass storage behind an xHCI
	// controller), so tests can boot the image as PCs see their disks.
	Bus       Bus
	MemoryMiB int // default 2048
	CPUs      int // default 2
	Forwards  []Forward
	// GuestForwards open the way from the guest to services on the host,
	// such as an update server; nothing else on the host or beyond is
	// reachable from the guest.
	GuestForwards []GuestForward
	Console       io.Writer // receives a copy of the serial console; Interactive makes it default to os.Stdout
	NoReboot      bool      // exit QEMU when the guest reboots instead of rebooting it
	// ColdReboot turns the guest's reboots into power cycles: QEMU exits
	// when the guest resets, and a new QEMU process boots the same disk
	// with the same firmware variables, its console appended to the VM's.
	// Under software emulation a warm reset leaves the next boot up to
	// twice as slow (firmware, initramfs unpacking and page clearing all
	// crawl), so tests whose guests reboot use this. Ignored with NoReboot;
	// refused with Snapshot, whose writes would not outlive the process.
	ColdReboot bool
	// Interactive connects the serial console to the user's terminal: their
	// keys reach the guest (Ctrl-C included), Ctrl-A X quits QEMU and
	// Ctrl-A C switches to the QEMU monitor. Without it the console goes
	// only to Console, and Type sends it keys.
	Interactive bool
	// StopGrace is how long Stop lets the guest shut down after pressing the
	// ACPI power button before it kills QEMU. Default 2 minutes: systemd
	// stopping bitcoind under software emulation takes a while.
	StopGrace time.Duration
}

const (
	defaultMemoryMiB = 2048
	defaultCPUs      = 2
	defaultStopGrace = 2 * time.Minute

	qemuBinary = "qemu-system-x86_64"
	relay      = "socat"
)

// firmware is a pair of OVMF flash images: code is mapped read-only, vars is
// the template for each VM's private, writable variable store.
type firmware struct{ code, vars string }

// debianOVMF is where Debian's ovmf package installs the 4 MiB build, the one
// that matches current PCs (the 2 MiB build cannot hold enough variables).
var debianOVMF = firmware{
	code: "/usr/share/OVMF/OVMF_CODE_4M.fd",
	vars: "/usr/share/OVMF/OVMF_VARS_4M.fd",
}

// VM is a virtual machine: one QEMU process, or, under ColdReboot, one
// after another across the guest's reboots.
type VM struct {
	o         Options
	binary    string
	p         paths
	kvm       bool
	dir       string // private temp dir: OVMF variables, QMP socket
	stopGrace time.Duration
	stderr    lockedBuffer
	restore   func() // puts the terminal back after an interactive VM

	mu     sync.Mutex
	proc   *process // the QEMU process running now
	killed bool     // Kill was called: start no new process

	done    chan struct{} // closed once QEMU has exited for good and been cleaned up after
	exitErr error         // QEMU's exit result, valid after done
}

// process is one run of QEMU.
type process struct {
	cmd    *exec.Cmd
	keys   io.WriteCloser // QEMU's stdin: the serial console's keyboard
	qmp    *qmpConn
	exited chan struct{} // closed once QEMU has exited and its console output is read
	err    error         // cmd.Wait's result, valid after exited
}

// Start launches QEMU and returns once its control socket answers. ctx bounds
// the life of the VM, like exec.CommandContext: when ctx is done, QEMU is
// killed.
func Start(ctx context.Context, o Options) (*VM, error) {
	return start(ctx, o, debianOVMF)
}

func start(ctx context.Context, o Options, fw firmware) (*VM, error) {
	o, err := withDefaults(o)
	if err != nil {
		return nil, err
	}
	binary, err := exec.LookPath(qemuBinary)
	if err != nil {
		return nil, fmt.Errorf("%s not found: install it (Debian: apt-get install qemu-system-x86)", qemuBinary)
	}
	for _, f := range []string{fw.code, fw.vars} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("UEFI firmware %s is missing: install OVMF (Debian: apt-get install ovmf): %w", f, err)
		}
	}
	if _, err := os.Stat(o.Image); err != nil {
		return nil, fmt.Errorf("disk image: %w", err)
	}
	var relayPath string
	if len(o.GuestForwards) > 0 {
		if relayPath, err = exec.LookPath(relay); err != nil {
			return nil, fmt.Errorf("%s not found: install it (Debian: apt-get install socat); it relays the guest's connections to the host", relay)
		}
	}
	// QEMU would read a relative "name:rest" as a protocol.
	if o.Image, err = filepath.Abs(o.Image); err != nil {
		return nil, fmt.Errorf("disk image: %w", err)
	}

	dir, err := os.MkdirTemp("", "nodebake-qemu-")
	if err != nil {
		return nil, fmt.Errorf("temp dir for the VM: %w", err)
	}
	p := paths{
		code:  fw.code,
		vars:  filepath.Join(dir, "OVMF_VARS.fd"),
		qmp:   filepath.Join(dir, "qmp.sock"),
		relay: relayPath,
	}
	// Each VM gets fresh variables: what one boot stores (boot order, "boot
	// into firmware setup next time", systemd-boot's one-shot entries) must
	// not leak into the next.
	if err := copyFile(fw.vars, p.vars); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("copy UEFI variable store: %w", err)
	}

	vm := &VM{
		o:         o,
		binary:    binary,
		p:         p,
		kvm:       kvmUsable(),
		dir:       dir,
		stopGrace: o.StopGrace,
		done:      make(chan struct{}),
	}
	if o.Interactive {
		vm.restore = saveTerminal(os.Stdin)
	}
	first, err := vm.launch(ctx)
	if err != nil {
		if vm.restore != nil {
			vm.restore()
		}
		os.RemoveAll(dir)
		return nil, err
	}
	vm.proc = first
	go vm.supervise(first)
	go func() {
		select {
		case <-ctx.Done():
			vm.Kill()
		case <-vm.done:
		}
	}()
	return vm, nil
}

func withDefaults(o Options) (Options, error) {
	if o.Image == "" {
		return o, errors.New("qemu: no disk image given")
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = defaultMemoryMiB
	}
	if o.CPUs == 0 {
		o.CPUs = defaultCPUs
	}
	if o.StopGrace == 0 {
		o.StopGrace = defaultStopGrace
	}
	if o.Interactive && o.Console == nil {
		o.Console = os.Stdout
	}
	if _, err := diskDevices(o.Bus); err != nil {
		return o, err
	}
	if o.ColdReboot && o.Snapshot {
		// QEMU drops a snapshot's overlay when it exits: each power cycle
		// would boot the image as it was, losing what the guest wrote.
		return o, errors.New("qemu: ColdReboot with Snapshot would lose the guest's writes at every reboot: use a copy of the image instead")
	}
	if o.MemoryMiB < 0 || o.CPUs < 0 {
		return o, fmt.Errorf("qemu: memory %d MiB and %d CPUs: both must be positive", o.MemoryMiB, o.CPUs)
	}
	seen := map[int]bool{}
	for _, f := range o.Forwards {
		if !validPort(f.HostPort) || !validPort(f.GuestPort) {
			return o, fmt.Errorf("qemu: forward %d→%d: ports must be 1-65535", f.HostPort, f.GuestPort)
		}
		if seen[f.HostPort] {
			return o, fmt.Errorf("qemu: host port %d is forwarded twice", f.HostPort)
		}
		seen[f.HostPort] = true
	}
	guests := map[string]bool{}
	for _, g := range o.GuestForwards {
		if err := g.check(); err != nil {
			return o, err
		}
		key := fmt.Sprintf("%s:%d", g.GuestAddr, g.GuestPort)
		if guests[key] {
			return o, fmt.Errorf("qemu: guest address %s is forwarded twice", key)
		}
		guests[key] = true
	}
	return o, nil
}

// userNet is QEMU's user network; within it, the gateway (the host), the
// DNS server and the guest itself have fixed addresses.
var userNet = netip.MustParsePrefix("10.0.2.0/24")

func (g GuestForward) check() error {
	addr, err := netip.ParseAddr(g.GuestAddr)
	if err != nil || !userNet.Contains(addr) {
		return fmt.Errorf("qemu: guest forward to %q: want an address in QEMU's user network %s", g.GuestAddr, userNet)
	}
	switch last := addr.As4()[3]; last {
	case 0, 2, 3, 15, 255:
		return fmt.Errorf("qemu: guest forward to %s: that address is taken in QEMU's user network (network, host, DNS, guest, broadcast); use another, e.g. 10.0.2.100", addr)
	}
	if !validPort(g.GuestPort) || !validPort(g.HostPort) {
		return fmt.Errorf("qemu: guest forward %s:%d→%d: ports must be 1-65535", g.GuestAddr, g.GuestPort, g.HostPort)
	}
	return nil
}

func validPort(p int) bool { return p > 0 && p < 65536 }

// launch starts a QEMU process, the goroutines that read its console and
// reap it, and returns once its control socket answers.
func (vm *VM) launch(ctx context.Context) (*process, error) {
	// QEMU writes the serial console to its stdout. An *os.File (rather than
	// an io.Writer) keeps exec from adding a copying goroutine, so EOF on the
	// read end means QEMU has exited and all output has been read.
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("console pipe: %w", err)
	}
	cmd := exec.Command(vm.binary, args(vm.o, vm.p, vm.kvm)...)
	cmd.Stdout = pw
	cmd.Stderr = &vm.stderr
	// If this program dies, so does the VM; SIGTERM lets QEMU restore the
	// terminal of an interactive session.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	proc := &process{cmd: cmd, exited: make(chan struct{})}
	if vm.o.Interactive {
		cmd.Stdin = os.Stdin
	} else {
		// Type writes here: keys for the serial console.
		if proc.keys, err = cmd.StdinPipe(); err != nil {
			return nil, fmt.Errorf("console pipe: %w", err)
		}
	}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start %s: %w", vm.binary, err)
	}
	pw.Close()

	readDone := make(chan struct{})
	go func() {
		readConsole(pr, vm.o.Console)
		pr.Close()
		close(readDone)
	}()
	go func() {
		proc.err = cmd.Wait()
		<-readDone
		close(proc.exited)
	}()
	if proc.qmp, err = connectQMP(ctx, vm.p.qmp, proc.exited); err != nil {
		// Whatever went wrong, QEMU's own error output says why.
		cmd.Process.Kill()
		<-proc.exited
		return nil, fmt.Errorf("%s did not start: %w%s", qemuBinary, err, indent(vm.stderr.String()))
	}
	return proc, nil
}

// supervise waits for QEMU to exit, starts it again while ColdReboot
// turns the guest's resets into power cycles, and cleans up once it is
// gone for good.
func (vm *VM) supervise(proc *process) {
	var err error
	for {
		<-proc.exited
		err = proc.err
		if err != nil || !vm.o.ColdReboot || vm.o.NoReboot || !proc.qmp.reset() {
			break
		}
		vm.mu.Lock()
		killed := vm.killed
		vm.mu.Unlock()
		if killed {
			break
		}
		// Kill may come while the next process starts; it then finds
		// that process through vm.proc, or, if it came first, the check
		// below ends the new one.
		next, lerr := vm.launch(context.Background())
		if lerr != nil {
			err = fmt.Errorf("power cycle after the guest's reboot: %w", lerr)
			break
		}
		vm.mu.Lock()
		vm.proc, killed = next, vm.killed
		vm.mu.Unlock()
		if killed {
			next.cmd.Process.Kill()
		}
		proc = next
	}
	if vm.restore != nil {
		// QEMU puts the terminal in raw mode and restores it only when it
		// exits cleanly, not when killed.
		vm.restore()
	}
	os.RemoveAll(vm.dir)
	if err != nil {
		vm.exitErr = fmt.Errorf("%s: %w%s", qemuBinary, err, indent(vm.stderr.String()))
	}
	close(vm.done)
}

// current is the QEMU process running now.
func (vm *VM) current() *process {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.proc
}

// Bus is the controller the VM's disk is attached to.
type Bus string

// The disk buses args knows.
const (
	BusVirtio Bus = "virtio"
	BusNVMe   Bus = "nvme"
	BusAHCI   Bus = "ahci"
	BusUSB    Bus = "usb"
)

// diskDevices are the -device arguments that attach drive disk0.
func diskDevices(b Bus) ([]string, error) {
	switch b {
	case "", BusVirtio:
		return []string{"-device", "virtio-blk-pci,drive=disk0"}, nil
	case BusNVMe:
		return []string{"-device", "nvme,drive=disk0,serial=nodebake0"}, nil
	case BusAHCI:
		// q35's own ICH9 AHCI controller.
		return []string{"-device", "ide-hd,drive=disk0,bus=ide.0"}, nil
	case BusUSB:
		return []string{"-device", "qemu-xhci,id=xhci", "-device", "usb-storage,drive=disk0,bus=xhci.0,removable=off"}, nil
	}
	return nil, fmt.Errorf("qemu: disk bus %q: want virtio, nvme, ahci or usb", b)
}

// paths are the files a VM's command line refers to besides the image.
type paths struct {
	code  string // OVMF code, read-only
	vars  string // this VM's copy of the OVMF variable store
	qmp   string // QMP control socket
	relay string // socat, for GuestForwards
}

// args builds QEMU's command line.
func args(o Options, p paths, kvm bool) []string {
	accel := "tcg"
	if kvm {
		accel = "kvm"
	}
	disk, _ := diskDevices(o.Bus) // checked by withDefaults
	drive := "if=none,id=disk0,format=raw,file=" + escape(o.Image)
	if o.Snapshot {
		// Per drive, not the global -snapshot, which would also apply to the
		// firmware variable store.
		drive += ",snapshot=on"
	}
	// restrict=on: the guest must not reach anything beyond this machine
	// (it runs Tor, which would otherwise go out through the user-mode
	// network). Forwards into the guest still work.
	netdev := "user,id=net0,restrict=on"
	for _, f := range o.Forwards {
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", f.HostPort, f.GuestPort)
	}
	for _, g := range o.GuestForwards {
		// QEMU starts the command for each connection, its standard input
		// and output being the connection. socat's messages must not go
		// there: they would reach the guest as data.
		netdev += fmt.Sprintf(",guestfwd=tcp:%s:%d-cmd:%s -lf /dev/null STDIO TCP:127.0.0.1:%d", g.GuestAddr, g.GuestPort, escape(p.relay), g.HostPort)
	}
	a := []string{
		"-nodefaults",
		"-machine", "q35",
		"-accel", accel,
		"-cpu", "max",
		"-m", fmt.Sprint(o.MemoryMiB),
		"-smp", fmt.Sprint(o.CPUs),
		"-display", "none",
		"-drive", "if=pflash,unit=0,format=raw,readonly=on,file=" + escape(p.code),
		"-drive", "if=pflash,unit=1,format=raw,file=" + escape(p.vars),
		"-drive", drive,
	}
	a = append(a, disk...)
	a = append(a,
		// Without an entropy source early getrandom() in the guest blocks.
		"-device", "virtio-rng-pci",
		"-netdev", netdev,
		"-device", "virtio-net-pci,netdev=net0",
		"-chardev", "socket,id=qmp,path="+escape(p.qmp)+",server=on,wait=off",
		"-mon", "chardev=qmp,mode=control",
	)
	if o.Interactive {
		// signal=off passes Ctrl-C to the guest; the mux adds QEMU's
		// Ctrl-A escapes (X: quit, C: monitor).
		a = append(a,
			"-chardev", "stdio,id=con0,mux=on,signal=off",
			"-serial", "chardev:con0",
			"-mon", "chardev=con0,mode=readline")
	} else {
		a = append(a,
			"-chardev", "stdio,id=con0,signal=off",
			"-serial", "chardev:con0")
	}
	if o.NoReboot || o.ColdReboot {
		a = append(a, "-no-reboot")
	}
	return a
}

// escape quotes a value inside a QEMU option list, where a comma separates
// options and a doubled comma stands for a literal one.
func escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// kvmUsable reports whether QEMU can use KVM. /dev/kvm alone is not enough:
// some virtual machines expose it without virtualization extensions, and
// QEMU then aborts while setting up the vCPU.
func kvmUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	return err == nil && cpuHasVirtualization(string(cpuinfo))
}

// cpuHasVirtualization reports whether /proc/cpuinfo lists Intel VT-x (vmx)
// or AMD-V (svm).
func cpuHasVirtualization(cpuinfo string) bool {
	for line := range strings.Lines(cpuinfo) {
		key, value, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(key) != "flags" {
			continue
		}
		for _, flag := range strings.Fields(value) {
			if flag == "vmx" || flag == "svm" {
				return true
			}
		}
	}
	return false
}

// readConsole copies a QEMU process's serial output to w, if any, until
// that process exits. It reads on without w: QEMU stalls once the pipe of
// its console is full.
func readConsole(r io.Reader, w io.Writer) {
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 && w != nil {
			if _, werr := w.Write(buf[:n]); werr != nil {
				// A broken copy must not stall the VM or the tests.
				w = nil
			}
		}
		if err != nil {
			return
		}
	}
}

// Type sends text to the serial console, as if typed there (use "\r" for
// Enter). It is for VMs that are not Interactive.
func (vm *VM) Type(text string) error {
	keys := vm.current().keys
	if keys == nil {
		return errors.New("qemu: Type: the console of an interactive VM belongs to the terminal")
	}
	_, err := io.WriteString(keys, text)
	return err
}

// Stop presses the ACPI power button and waits for the guest to power off.
// If it has not after Options.StopGrace, Stop kills QEMU and says so. It
// returns QEMU's exit result; stopping a VM that has already exited just
// returns that.
func (vm *VM) Stop() error {
	select {
	case <-vm.done:
		return vm.exitErr
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), vm.stopGrace)
	defer cancel()
	// An error here means QEMU is already on its way out or hangs; waiting
	// below settles it either way.
	vm.current().qmp.execute(ctx, "system_powerdown")
	select {
	case <-vm.done:
		return vm.exitErr
	case <-ctx.Done():
		vm.Kill()
		return fmt.Errorf("guest did not power off within %v of the ACPI power button: killed QEMU", vm.stopGrace)
	}
}

// Pause stops the guest's CPUs (QMP "stop"). QEMU completes the disk
// requests the guest has issued and flushes them to the image file before
// it answers, so while the guest is paused the image file holds exactly
// what the guest had written to its disk: a copy taken then is what a
// power cut at that instant would leave, except that a real drive could
// also lose or reorder writes it had not been told to flush.
func (vm *VM) Pause(ctx context.Context) error {
	_, err := vm.current().qmp.execute(ctx, "stop")
	return err
}

// Resume lets a paused guest run on (QMP "cont").
func (vm *VM) Resume(ctx context.Context) error {
	_, err := vm.current().qmp.execute(ctx, "cont")
	return err
}

// Kill ends QEMU at once, as pulling the plug would, and waits until it has
// exited.
func (vm *VM) Kill() error {
	vm.mu.Lock()
	vm.killed = true
	proc := vm.proc
	vm.mu.Unlock()
	if err := proc.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", qemuBinary, err)
	}
	<-vm.done
	return nil
}

// Wait waits for QEMU to exit and returns its result: nil when the guest
// powered off (or rebooted under NoReboot), otherwise the exit status with
// QEMU's error output.
func (vm *VM) Wait() error {
	<-vm.done
	return vm.exitErr
}

// saveTerminal records the terminal settings of f, if it is a terminal, and
// returns a function that puts them back.
func saveTerminal(f *os.File) func() {
	fd := int(f.Fd())
	saved, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return func() {}
	}
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, saved) }
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// indent formats multi-line text to follow a colon in an error message.
func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "\n    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// lockedBuffer collects QEMU's error output while QEMU runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

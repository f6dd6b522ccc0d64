package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/nodebake/nodebake/internal/hosttools"
	"github.com/nodebake/nodebake/internal/qemu"
)

func cmdQemu(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("qemu", flag.ContinueOnError)
	mem := fs.Int("m", 2048, "guest memory in MiB")
	cpus := fs.Int("cpus", 2, "guest CPUs")
	sshPort := fs.Int("ssh-port", 2222, "host port forwarded to the guest's SSH (22)")
	persist := fs.Bool("persist", false, "write changes into the image (default: discard them at exit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("qemu: want one image, e.g. nodebake qemu out/minibolt-0.1.0.img")
	}
	if err := hosttools.Check(hosttools.Qemu); err != nil {
		return fmt.Errorf("qemu: %w\n  (or run: make qemu IMAGE=%s)", err, fs.Arg(0))
	}
	fwd := []qemu.Forward{{HostPort: *sshPort, GuestPort: 22}, {HostPort: 50001, GuestPort: 50001}, {HostPort: 50002, GuestPort: 50002}}
	fmt.Fprintf(os.Stderr, "nodebake: booting %s; ssh -p %d admin@127.0.0.1, Electrum on 127.0.0.1:50001/50002; Ctrl-A X quits\n", fs.Arg(0), *sshPort)
	vm, err := qemu.Start(ctx, qemu.Options{
		Image: fs.Arg(0), Snapshot: !*persist, MemoryMiB: *mem, CPUs: *cpus, Forwards: fwd, Interactive: true,
	})
	if err != nil {
		return err
	}
	return vm.Wait()
}

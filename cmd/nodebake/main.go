// Command nodebake builds immutable appliance images for a Bitcoin node from
// image.yaml, shows what is inside one, and boots one under QEMU.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `nodebake builds bootable appliance images for a Bitcoin node.

Usage:
  nodebake build   [-f image.yaml] [-o out/NAME-VERSION.img] [--compress zstd] [--mirror DIR|URL] [--offline] [-q]
  nodebake inspect IMAGE
  nodebake qemu    [-m MiB] [--cpus N] [--ssh-port 2222] [--persist] IMAGE

Run "nodebake COMMAND -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmds := map[string]func(context.Context, []string) error{
		"build":   cmdBuild,
		"inspect": cmdInspect,
		"qemu":    cmdQemu,
	}
	run, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "nodebake: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err := run(ctx, os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "nodebake: interrupted; nothing was written at the output path")
			os.Exit(130)
		}
		fmt.Fprintf(os.Stderr, "nodebake: %v\n", err)
		os.Exit(1)
	}
}

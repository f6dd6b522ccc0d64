// Command nodebake builds immutable appliance images for a Bitcoin node from
// image.yaml, shows what is inside one, boots one under QEMU, and makes and
// publishes the signed bundles devices update from.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `nodebake builds bootable appliance images for a Bitcoin node.

Usage:
  nodebake build   [-f image.yaml] [-o out/NAME-VERSION.img] [--compress zstd] [--mirror DIR|URL] [--offline] [-q]
  nodebake inspect IMAGE
  nodebake qemu    [-m MiB] [--cpus N] [--ssh-port 2222] [--persist] IMAGE
  nodebake flash   [--yes] IMAGE DEVICE
  nodebake keygen  [-o keys/update] [--rotate-from keys/OLD]
  nodebake bundle  -k KEY [-o BUNDLE.tar|DIR] IMAGE
  nodebake publish -k KEY [--expires 168h] BUNDLE oci://REGISTRY/REPOSITORY:TAG|DIR
  nodebake publish -k KEY [--expires 168h] --refresh oci://REGISTRY/REPOSITORY:TAG|DIR
  nodebake release -k KEY --to oci://REGISTRY/REPOSITORY:TAG|DIR [-f image.yaml] [--image IMAGE]

flash writes an image (.img or .img.zst) onto a disk and checks it;
keygen makes the key pair that signs updates; bundle makes a signed update
from a built image; publish pushes it to a registry, or writes it into a
folder for any web server; release does build, bundle and publish in one and
reads the result back as devices will see it.

Run "nodebake COMMAND -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

var commands = map[string]func(context.Context, []string) error{
	"build":   cmdBuild,
	"inspect": cmdInspect,
	"qemu":    cmdQemu,
	"flash":   cmdFlash,
	"keygen":  cmdKeygen,
	"bundle":  cmdBundle,
	"publish": cmdPublish,
	"release": cmdRelease,
}

// run is nodebake with its arguments (without the program name) and
// returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "nodebake: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err := cmd(ctx, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if ctx.Err() != nil {
			if args[0] == "flash" {
				fmt.Fprintln(stderr, "nodebake: interrupted; the disk holds no partition table now: flash it again")
			} else {
				fmt.Fprintln(stderr, "nodebake: interrupted; nothing was written at the output path")
			}
			return 130
		}
		fmt.Fprintf(stderr, "nodebake: %v\n", err)
		return 1
	}
	return 0
}

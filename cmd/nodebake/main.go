// Command nodebake builds immutable appliance images for a Bitcoin node from
// image.yaml, shows what is inside one, boots one under QEMU, and makes and
// publishes the signed bundles devices update from.
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
  nodebake keygen  [-o keys/update] [--rotate-from keys/OLD]
  nodebake bundle  -k KEY [-o BUNDLE.tar|DIR] IMAGE
  nodebake publish -k KEY [--expires 168h] BUNDLE oci://REGISTRY/REPOSITORY:TAG|DIR
  nodebake publish -k KEY [--expires 168h] --refresh oci://REGISTRY/REPOSITORY:TAG|DIR
  nodebake release -k KEY --to oci://REGISTRY/REPOSITORY:TAG|DIR [-f image.yaml] [--image IMAGE]

keygen makes the key pair that signs updates; bundle makes a signed update
from a built image; publish pushes it to a registry, or writes it into a
folder for any web server; release does build, bundle and publish in one and
reads the result back as devices will see it.

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
		"keygen":  cmdKeygen,
		"bundle":  cmdBundle,
		"publish": cmdPublish,
		"release": cmdRelease,
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

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nodebake/nodebake/internal/progress"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

func cmdPublish(ctx context.Context, args []string) error {
	return publish(ctx, args, os.Stdout)
}

func publish(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	quiet := fs.Bool("q", false, "print nothing but errors")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("publish: want a bundle and where to publish it: oci://REGISTRY/REPOSITORY:TAG or a folder")
	}
	if *quiet {
		stdout = nil
	}
	b, err := ota.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	dest := fs.Arg(1)
	m := &b.Manifest
	switch {
	case strings.HasPrefix(dest, "oci://"):
		// ParseSource checks the reference as a device will read it.
		if _, err := ota.ParseSource(dest); err != nil {
			return err
		}
		// The registry client reports one total that grows as it finds
		// the layers to send.
		c := progress.New(stdout, "push", 0)
		digest, err := bundler.Publish(ctx, b, strings.TrimPrefix(dest, "oci://"), func(_ string, done, total int64) {
			c.SetTotal(total)
			c.Set(done)
		})
		c.Done()
		if err != nil {
			return err
		}
		if stdout != nil {
			fmt.Fprintf(stdout, "pushed %s %s to %s (%s): devices whose update.source is %s find it\n", m.Name, m.Version, dest, digest, dest)
		}
	case strings.Contains(dest, "://"):
		return fmt.Errorf("publish: %s: want oci://REGISTRY/REPOSITORY:TAG, or a folder that a web server serves (upload it yourself)", dest)
	default:
		if err := bundler.PublishDir(ctx, b, dest, progress.Steps(stdout)); err != nil {
			return err
		}
		if stdout != nil {
			fmt.Fprintf(stdout, "wrote %s %s into %s: serve that folder over http(s) and name its URL as update.source\n", m.Name, m.Version, dest)
		}
	}
	return nil
}

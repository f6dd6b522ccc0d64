package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nodebake/nodebake/internal/progress"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

func cmdPublish(ctx context.Context, args []string) error {
	return publish(ctx, args, os.Stdout)
}

func publish(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	key := fs.String("k", "", "the update key (as for bundle): it signs the channel statement that names the bundle")
	expires := fs.Duration("expires", ota.DefaultExpiry, "how long the channel statement stays valid: devices refuse it after that, so refresh it before (--refresh, e.g. daily from cron)")
	refresh := fs.Bool("refresh", false, "re-sign the channel's statement with a new expiry, for the bundle it names; takes only the destination")
	quiet := fs.Bool("q", false, "print nothing but errors")
	if err := fs.Parse(args); err != nil {
		return err
	}
	want := 2
	if *refresh {
		want = 1
	}
	if *key == "" || fs.NArg() != want {
		return fmt.Errorf("publish: want -k KEY, a bundle and where to publish it (oci://REGISTRY/REPOSITORY:TAG or a folder), or -k KEY --refresh and where it is published")
	}
	if *expires <= 0 {
		return fmt.Errorf("publish: --expires %v: want a positive duration, e.g. 168h", *expires)
	}
	if *quiet {
		stdout = nil
	}
	priv, err := ota.LoadPrivateKey(*key)
	if err != nil {
		return err
	}
	rotations, err := ota.LoadRotations(rotationFile(*key))
	if err != nil {
		return err
	}
	signer := bundler.Signer{Key: priv, Rotations: rotations, Expiry: *expires}
	dest := fs.Arg(fs.NArg() - 1)
	oci := strings.HasPrefix(dest, "oci://")
	if !oci && strings.Contains(dest, "://") {
		return fmt.Errorf("publish: %s: want oci://REGISTRY/REPOSITORY:TAG, or a folder that a web server serves (upload it yourself)", dest)
	}
	if oci {
		// ParseSource checks the reference as a device will read it.
		if _, err := ota.ParseSource(dest, true); err != nil {
			return err
		}
	}
	if *refresh {
		var c ota.Channel
		if oci {
			c, err = bundler.Refresh(ctx, strings.TrimPrefix(dest, "oci://"), signer)
		} else {
			c, err = bundler.RefreshDir(dest, signer)
		}
		if err != nil {
			return err
		}
		if stdout != nil {
			fmt.Fprintf(stdout, "refreshed %s: %s %s, counter %d, expires %s\n", dest, c.Name, c.Version, c.Counter, c.Expires.Format(time.RFC3339))
		}
		return nil
	}

	b, err := ota.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	m := &b.Manifest
	until := time.Now().Add(*expires).UTC().Format(time.RFC3339)
	if oci {
		// The registry client reports one total that grows as it finds
		// the layers to send.
		c := progress.New(stdout, "push", 0)
		digest, err := bundler.Publish(ctx, b, strings.TrimPrefix(dest, "oci://"), signer, func(_ string, done, total int64) {
			c.SetTotal(total)
			c.Set(done)
		})
		c.Done()
		if err != nil {
			return err
		}
		if stdout != nil {
			fmt.Fprintf(stdout, "pushed %s %s to %s (%s): devices whose update.source is %s find it until %s; refresh before then (nodebake publish -k %s --refresh %s)\n",
				m.Name, m.Version, dest, digest, dest, until, *key, dest)
		}
		return nil
	}
	if err := bundler.PublishDir(ctx, b, dest, signer, progress.Steps(stdout)); err != nil {
		return err
	}
	if stdout != nil {
		fmt.Fprintf(stdout, "wrote %s %s into %s: serve that folder over https and name its URL as update.source; devices take it until %s; refresh before then (nodebake publish -k %s --refresh %s)\n",
			m.Name, m.Version, dest, until, *key, dest)
	}
	return nil
}

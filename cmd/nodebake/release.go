package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodebake/nodebake/internal/progress"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/spec"
)

func cmdRelease(ctx context.Context, args []string) error {
	return release(ctx, args, os.Stdout, os.Stderr)
}

// release is build, bundle and publish in one, then a look at the
// destination as a device sees it: what a release puts out is read back
// and checked with the key's public half before the command says it is
// done.
func release(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	key := fs.String("k", "", "the update-signing key (nodebake keygen)")
	to := fs.String("to", "", "where devices look: oci://REGISTRY/REPOSITORY:TAG, or a folder a web server serves")
	file := fs.String("f", "image.yaml", "the image spec")
	image := fs.String("image", "", "release this built image instead of building one")
	expires := fs.Duration("expires", ota.DefaultExpiry, "how long the channel statement stays valid (refresh with nodebake publish --refresh)")
	src := fs.String("src", "", "as for build: nodebake source tree for the device binaries")
	cache := fs.String("cache", "", "as for build: cache folder")
	mirror := fs.String("mirror", "", "as for build: release files without internet")
	offline := fs.Bool("offline", false, "as for build: never download")
	quiet := fs.Bool("q", false, "print only what devices will see, warnings and errors")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" || *to == "" || fs.NArg() > 0 {
		return fmt.Errorf("release: want -k KEY and --to oci://REGISTRY/REPOSITORY:TAG|DIR, e.g. nodebake release -k keys/update --to oci://ghcr.io/me/minibolt:stable")
	}
	priv, err := ota.LoadPrivateKey(*key)
	if err != nil {
		return err
	}
	step := stdout
	if *quiet {
		step = io.Discard
	}
	img := *image
	if img == "" {
		s, err := spec.Load(*file)
		if err != nil {
			return err
		}
		if s.Update == nil || s.Update.Source == "" {
			fmt.Fprintf(stderr, "warning: %s names no update.source: devices running this image will not look at %s by themselves\n", *file, *to)
		} else if s.Update.Source != *to {
			fmt.Fprintf(stderr, "warning: %s names update.source %s, not %s: devices running this image look there\n", *file, s.Update.Source, *to)
		}
		img = filepath.Join("out", s.Name+"-"+s.Version+".img")
		if _, err := os.Stat(img); err == nil {
			return fmt.Errorf("release: %s already exists: a version is released once (raise version in %s), or release it with --image %s", img, *file, img)
		}
		buildArgs := []string{"-f", *file, "-o", img, "--src", *src, "--cache", *cache, "--mirror", *mirror}
		if *offline {
			buildArgs = append(buildArgs, "--offline")
		}
		if *quiet {
			buildArgs = append(buildArgs, "-q")
		}
		fmt.Fprintf(step, "==> release: build %s\n", img)
		if err := cmdBuild(ctx, buildArgs); err != nil {
			return err
		}
	}

	tmp, err := os.MkdirTemp("", "nodebake-release-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bundle := filepath.Join(tmp, "bundle")
	fmt.Fprintf(step, "==> release: bundle %s\n", img)
	if err := makeBundle(ctx, []string{"-k", *key, "-o", bundle, "-q", img}, step, stderr); err != nil {
		return err
	}
	fmt.Fprintf(step, "==> release: publish to %s\n", *to)
	pubArgs := []string{"-k", *key, "--expires", expires.String(), bundle, *to}
	if *quiet {
		pubArgs = append([]string{"-q"}, pubArgs...)
	}
	if err := publish(ctx, pubArgs, step); err != nil {
		return err
	}
	return seenByDevices(ctx, *to, priv.Public().(ed25519.PublicKey), stdout)
}

// seenByDevices fetches what dest offers as a device does (a folder is
// served on loopback for the purpose) and prints it.
func seenByDevices(ctx context.Context, dest string, key ed25519.PublicKey, stdout io.Writer) error {
	ref := dest
	if !strings.HasPrefix(dest, "oci://") {
		srv := httptest.NewServer(http.FileServer(http.Dir(dest)))
		defer srv.Close()
		ref = srv.URL + "/"
	}
	// The publisher reads back over whatever the destination speaks:
	// the signatures, not the transport, are what is checked.
	src, err := ota.ParseSource(ref, true)
	if err != nil {
		return err
	}
	offer, err := src.Fetch(ctx)
	if err != nil {
		return fmt.Errorf("release: reading back %s: %w", dest, err)
	}
	c, err := ota.VerifyChannel(offer, key, nil, time.Now())
	if err != nil {
		return fmt.Errorf("release: reading back %s: %w", dest, err)
	}
	m := &offer.Bundle.Manifest
	if err := ota.VerifyManifest(offer.Bundle, ota.Policy{Key: c.Key, AllowDowngrade: true, Running: ota.Identity{Name: m.Name}}); err != nil {
		return fmt.Errorf("release: reading back %s: %w", dest, err)
	}
	ch := &c.Channel
	fmt.Fprintf(stdout, "devices looking at %s now see %s %s (channel counter %d, valid until %s, signed by key %s): "+
		"those running an older %s download %s, install it into their other slot and boot it on trial\n",
		dest, m.Name, m.Version, ch.Counter, ch.Expires.Format(time.RFC3339), ota.KeyID(c.Key), m.Name,
		progress.MB(m.Root.Size+m.Kernel.Size+m.Initrd.Size))
	return nil
}

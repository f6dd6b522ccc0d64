package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/disk"
	"github.com/nodebake/nodebake/internal/progress"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

func cmdBundle(ctx context.Context, args []string) error {
	return makeBundle(ctx, args, os.Stdout, os.Stderr)
}

func makeBundle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bundle", flag.ContinueOnError)
	keyFile := fs.String("k", "", "the update-signing key (nodebake keygen)")
	out := fs.String("o", "", "the bundle: a .tar file, or a folder for any other name (default IMAGE without .img + .bundle.tar)")
	quiet := fs.Bool("q", false, "print nothing but errors and warnings")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *keyFile == "" {
		return fmt.Errorf("bundle: want -k KEY and one image, e.g. nodebake bundle -k keys/update out/minibolt-0.2.0.img")
	}
	image := fs.Arg(0)
	if *out == "" {
		*out = strings.TrimSuffix(image, ".img") + ".bundle.tar"
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("bundle: %s already exists: choose another -o", *out)
	}
	key, err := ota.LoadPrivateKey(*keyFile)
	if err != nil {
		return err
	}
	if err := checkImageKey(image, key.Public().(ed25519.PublicKey), stderr); err != nil {
		return err
	}
	if *quiet {
		stdout = nil
	}
	show := progress.Steps(stdout)

	dir := *out
	tarFile := strings.HasSuffix(*out, ".tar")
	if tarFile {
		// The folder is only a step on the way to the tar file.
		tmp, err := os.MkdirTemp(filepath.Dir(*out), ".nodebake-bundle-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = filepath.Join(tmp, "bundle")
	}
	b, err := bundler.Create(ctx, image, key, dir, show)
	if err != nil {
		return err
	}
	if tarFile {
		if err := bundler.WriteTar(b, *out); err != nil {
			return err
		}
	}
	m := &b.Manifest
	if stdout != nil {
		fmt.Fprintf(stdout, "bundle %s: %s %s for %q devices, signed by key %s; root %s, kernel %s, initramfs %s\n",
			*out, m.Name, m.Version, m.Compatible, ota.KeyID(key.Public().(ed25519.PublicKey)),
			progress.MB(m.Root.Size), progress.MB(m.Kernel.Size), progress.MB(m.Initrd.Size))
	}
	return nil
}

// checkImageKey warns when the image inside the bundle would not accept
// later bundles signed with the same key: a device that installs it trusts
// the key that image names, from then on.
func checkImageKey(image string, signer ed25519.PublicKey, stderr io.Writer) error {
	info, err := disk.Inspect(image)
	if err != nil {
		return err
	}
	for _, p := range info.Partitions {
		if p.Name != contract.RootA || p.Manifest == nil {
			continue
		}
		m, err := contract.ParseManifest(p.Manifest)
		if err != nil {
			return fmt.Errorf("%s: root-a's manifest: %w", image, err)
		}
		switch {
		case m.Update == nil:
			fmt.Fprintf(stderr, "warning: %s names no update key (no update: in its image.yaml): devices that install this bundle will accept no later update\n", image)
		default:
			named, err := ota.ParsePublicKey(m.Update.PublicKey)
			if err != nil {
				return fmt.Errorf("%s: %w", image, err)
			}
			if !bytes.Equal(named, signer) {
				fmt.Fprintf(stderr, "warning: %s names update key %s but the bundle is signed with key %s: devices that install it will afterwards accept only bundles signed with %s\n",
					image, ota.KeyID(named), ota.KeyID(signer), ota.KeyID(named))
			}
		}
	}
	return nil
}

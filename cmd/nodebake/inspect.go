package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/disk"
)

func cmdInspect(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	packages := fs.Bool("packages", false, "list every Debian package of each slot")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("inspect: want one image, e.g. nodebake inspect out/minibolt-0.1.0.img")
	}
	info, err := disk.Inspect(fs.Arg(0))
	if err != nil {
		return err
	}
	if err := info.Print(os.Stdout); err != nil {
		return err
	}
	for _, p := range info.Partitions {
		if p.Manifest == nil || !*packages {
			continue
		}
		m, err := contract.ParseManifest(p.Manifest)
		if err != nil {
			return fmt.Errorf("inspect: %s: manifest: %w", p.Name, err)
		}
		fmt.Printf("\n%s packages (%s %s)\n", p.Name, m.Name, m.Version)
		for _, pkg := range m.Packages {
			fmt.Printf("  %-40s %s\n", pkg.Name, pkg.Version)
		}
	}
	return nil
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/nodebake/nodebake/build"
	"github.com/nodebake/nodebake/internal/hosttools"
	"github.com/nodebake/nodebake/spec"
)

func cmdBuild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	file := fs.String("f", "image.yaml", "the image spec")
	out := fs.String("o", "", "output image (default out/NAME-VERSION.img)")
	compress := fs.String("compress", "", `"zstd" also writes IMAGE.zst`)
	quiet := fs.Bool("q", false, "print nothing but errors")
	src := fs.String("src", "", "nodebake source tree for the device binaries, development builds only (default: found at or above the working folder or the spec's)")
	cache := fs.String("cache", "", "cache folder (default: the user cache dir + /nodebake)")
	mirror := fs.String("mirror", "", "folder or URL holding the release files and signer keys, for building without internet")
	offline := fs.Bool("offline", false, "never download: releases come from --mirror or the cache")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("build: unexpected argument %q (the spec is given with -f)", fs.Arg(0))
	}
	if *compress != "" && *compress != "zstd" {
		return fmt.Errorf("build: --compress %q: only zstd is supported", *compress)
	}
	s, err := spec.Load(*file)
	if err != nil {
		return err
	}
	var log io.Writer = os.Stdout
	if *quiet {
		log = nil
	}
	if err := hosttools.Check(hosttools.Build); err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join("out", s.Name+"-"+s.Version+".img")
	}
	bi, _ := debug.ReadBuildInfo()
	release, tree, err := build.DeviceSource(bi, *src, ".", s.Dir)
	if err != nil {
		return err
	}
	if *cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("build: no cache folder (%v): pass --cache", err)
		}
		*cache = filepath.Join(dir, "nodebake")
	}
	if err := defaultKeys(s, log); err != nil {
		return err
	}
	_, err = build.Build(ctx, build.Options{
		Spec: s, Output: *out, CacheDir: *cache, Source: tree, Release: release, Compress: *compress == "zstd",
		Mirror: *mirror, Offline: *offline, Log: log,
	})
	return err
}

// defaultKeys gives login users without keys in the spec the SSH keys of
// whoever runs the build (~/.ssh/*.pub; the invoking user's under sudo), and
// says so: baking keys into an image is a decision the builder must see.
func defaultKeys(s *spec.Spec, log io.Writer) error {
	var keys []string
	var from []string
	for i := range s.Users {
		u := &s.Users[i]
		if len(u.SSHAuthorizedKeys) > 0 || strings.HasSuffix(u.Shell, "nologin") {
			continue
		}
		if keys == nil {
			var err error
			if keys, from, err = builderKeys(); err != nil {
				return err
			}
		}
		if len(keys) == 0 {
			if log != nil {
				fmt.Fprintf(log, "==> ssh keys       %s has none (not in %s, no ~/.ssh/*.pub): each device shows a one-time console password at first boot\n", u.Name, s.File)
			}
			continue
		}
		u.SSHAuthorizedKeys = keys
		if log != nil {
			fmt.Fprintf(log, "==> ssh keys       %s may log in with %s\n", u.Name, strings.Join(from, ", "))
		}
	}
	return nil
}

func builderKeys() ([]string, []string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, nil, err
	}
	// Under sudo the keys to bake in are the invoking user's, not root's.
	if name := os.Getenv("SUDO_USER"); name != "" && os.Geteuid() == 0 {
		if u, err := user.Lookup(name); err == nil {
			home = u.HomeDir
		}
	}
	files, _ := filepath.Glob(filepath.Join(home, ".ssh", "*.pub"))
	var keys, from []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				keys = append(keys, line)
			}
		}
		from = append(from, f)
	}
	return keys, from, nil
}

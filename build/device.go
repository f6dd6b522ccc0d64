package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Module is nodebake's Go module path; device binaries are built from it.
const Module = "github.com/nodebake/nodebake"

// FindSource returns the nodebake source tree: the first folder at or above
// one of dirs whose go.mod declares Module.
func FindSource(dirs ...string) (string, error) {
	for _, d := range dirs {
		d, err := filepath.Abs(d)
		if err != nil {
			continue
		}
		for {
			b, err := os.ReadFile(filepath.Join(d, "go.mod"))
			if err == nil && bytes.HasPrefix(b, []byte("module "+Module+"\n")) {
				return d, nil
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return "", fmt.Errorf("cannot find the nodebake source tree (a go.mod declaring %s) at or above %s: run nodebake from its repository or pass --src", Module, strings.Join(dirs, ", "))
}

// deviceBinaries cross-compiles commands of this module for the device:
// static, stripped, with paths and build ids removed so that the same
// source gives the same bytes. The result is keyed by package.
func deviceBinaries(ctx context.Context, src, work string, pkgs ...string) (map[string][]byte, error) {
	if src == "" {
		return nil, errors.New("device binaries: no source tree given")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, errors.New("device binaries: the go toolchain is not on PATH (it builds /init and nodectl)")
	}
	dir := filepath.Join(work, "bin")
	args := append([]string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", dir + "/"}, pkgs...)
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("device binaries: go build %s: %v\n%s", strings.Join(pkgs, " "), err, msg)
	}
	out := map[string][]byte{}
	for _, p := range pkgs {
		b, err := os.ReadFile(filepath.Join(dir, filepath.Base(p)))
		if err != nil {
			return nil, fmt.Errorf("device binaries: %w", err)
		}
		out[p] = b
	}
	return out, nil
}

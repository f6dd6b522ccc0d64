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

// deviceBinary cross-compiles a command of this module for the device:
// static, stripped, with paths and build ids removed so that the same
// source gives the same bytes.
func deviceBinary(ctx context.Context, src, pkg, work string) ([]byte, error) {
	if src == "" {
		return nil, errors.New("device binaries: no source tree given")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, errors.New("device binaries: the go toolchain is not on PATH (it builds the initramfs /init)")
	}
	out := filepath.Join(work, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, pkg)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("device binaries: go build %s: %v\n%s", pkg, err, msg)
	}
	return os.ReadFile(out)
}

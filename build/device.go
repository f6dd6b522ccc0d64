package build

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"
)

// Module is nodebake's Go module path; device binaries are built from it.
const Module = "github.com/nodebake/nodebake"

// deviceCommands are the commands of Module that run on the device: /init
// of the initramfs and /usr/bin/nodectl.
var deviceCommands = []string{"cmd/nodebake-init", "cmd/nodectl"}

// deviceModule is the throwaway main module a released nodebake builds the
// device binaries in.
const deviceModule = "nodebake-device-build"

// DeviceSource decides where the device binaries come from, so that they
// are always the same nodebake as the one building the image. bi is the
// running nodebake's debug.ReadBuildInfo.
//
// A released nodebake (go install github.com/nodebake/nodebake/cmd/nodebake@VERSION:
// a module version and no VCS stamp) builds them from that module version:
// release is bi. It never uses a source tree, not even a checkout it happens
// to run inside, because that checkout may hold any other version; an
// explicit src is an error for the same reason.
//
// Any other nodebake is a development build: "(devel)" (go run, go build
// without VCS stamping), or built in a checkout with VCS stamping (its
// version, with or without +dirty, may name a commit no proxy has). It
// builds them from the source tree src, or else the one at or above the
// first of dirs that has one: tree is that folder.
func DeviceSource(bi *debug.BuildInfo, src string, dirs ...string) (release *debug.BuildInfo, tree string, err error) {
	if isRelease(bi) {
		if src != "" {
			return nil, "", fmt.Errorf("--src %s: this nodebake is the release %s@%s and builds /init and nodectl from that version only; drop --src, or use a development build (go run ./cmd/nodebake in the checkout) to build them from a source tree",
				src, Module, bi.Main.Version)
		}
		return bi, "", nil
	}
	if src != "" {
		abs, err := filepath.Abs(src)
		return nil, abs, err
	}
	tree, err = FindSource(dirs...)
	return nil, tree, err
}

// isRelease says whether bi is a nodebake built from a published module
// version. A build in a checkout carries vcs.* settings (and its +dirty
// versions always do), a build from a module download never does.
func isRelease(bi *debug.BuildInfo) bool {
	if bi == nil || bi.Main.Path != Module || !semver.IsValid(bi.Main.Version) {
		return false
	}
	for _, s := range bi.Settings {
		if strings.HasPrefix(s.Key, "vcs") {
			return false
		}
	}
	return true
}

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
	return "", fmt.Errorf("cannot find the nodebake source tree (a go.mod declaring %s) at or above %s, and this development build of nodebake builds /init and nodectl from one: run it inside the nodebake checkout, pass --src DIR, or install a release (go install %s/cmd/nodebake@VERSION), which builds them from its own version",
		Module, strings.Join(dirs, ", "), Module)
}

// nodebakeVersion is what the manifest records about the nodebake that
// built the image and its device binaries. A development build records no
// path or revision: its tree's state is unknown here, and a checkout's
// path would make the image depend on where the checkout is.
func nodebakeVersion(o Options) string {
	if o.Release != nil {
		return Module + "@" + o.Release.Main.Version
	}
	return Module + " (devel): device binaries from a source tree"
}

// deviceFrom says, for the progress line, what the device binaries are
// built from.
func deviceFrom(o Options) string {
	if o.Release != nil {
		return "module " + Module + "@" + o.Release.Main.Version
	}
	return "source tree " + o.Source
}

// deviceBinaries cross-compiles deviceCommands for the device, from
// o.Release's module version or else the source tree o.Source: static,
// stripped, with paths and build ids removed so that the same source gives
// the same bytes. The result is keyed by command name (nodectl).
func deviceBinaries(ctx context.Context, o Options, work string) (map[string][]byte, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, errors.New("device binaries: the go toolchain is not on PATH (it builds /init and nodectl)")
	}
	// The go command runs in another folder: a relative work folder
	// (from a relative output path) would name another place there.
	if work, err = filepath.Abs(work); err != nil {
		return nil, err
	}
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	args := []string{"build"}
	var dir string
	var pkgs []string
	switch {
	case o.Release != nil:
		dir = filepath.Join(work, "device-module")
		if err := prepareDeviceModule(ctx, goBin, dir, o.Release); err != nil {
			return nil, fmt.Errorf("device binaries: %s@%s: %w", Module, o.Release.Main.Version, err)
		}
		// The requirements written hold nodebake's own build list, but
		// not necessarily every module the device commands import:
		// -mod=mod lets the go command add those, at the versions
		// nodebake's go.mod selects (their sums are in nodebake's go.sum).
		// GOWORK=off: a go.work of the user's must not change the build.
		args = append(args, "-mod=mod")
		env = append(env, "GOWORK=off")
		for _, c := range deviceCommands {
			pkgs = append(pkgs, Module+"/"+c)
		}
	case o.Source != "":
		dir = o.Source
		for _, c := range deviceCommands {
			pkgs = append(pkgs, "./"+c)
		}
	default:
		return nil, errors.New("device binaries: neither a release nor a source tree given (see build.DeviceSource)")
	}
	out := filepath.Join(work, "bin")
	args = append(args, "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out+"/")
	cmd := exec.CommandContext(ctx, goBin, append(args, pkgs...)...)
	cmd.Dir = dir
	cmd.Env = env
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("device binaries: go build %s in %s: %v\n%s", strings.Join(pkgs, " "), dir, err, msg)
	}
	bins := map[string][]byte{}
	for _, c := range deviceCommands {
		name := filepath.Base(c)
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			return nil, fmt.Errorf("device binaries: %w", err)
		}
		bins[name] = b
	}
	return bins, nil
}

// prepareDeviceModule makes dir a throwaway main module that requires
// nodebake at the released version bi names (as gokrazy builds its
// packages), so that the go command fetches, verifies and builds exactly
// that version wherever nodebake runs. The go command runs with the
// user's environment: GOPROXY, GOFLAGS, GONOSUMDB, GOPRIVATE apply.
func prepareDeviceModule(ctx context.Context, goBin, dir string, bi *debug.BuildInfo) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// The module line alone makes dir a main module of its own, so no
	// go.mod above the work folder applies; with no requirements yet,
	// the download needs nothing but nodebake's own files, checked
	// against the checksum database like any go install.
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+deviceModule+"\n"), 0o644); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, goBin, "mod", "download", "-json", Module+"@"+bi.Main.Version)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, runErr := cmd.Output()
	var dl struct{ Dir, GoMod, Sum, GoModSum, Error string }
	err := json.Unmarshal(stdout, &dl)
	switch {
	case dl.Error != "":
		err = errors.New(dl.Error)
	case runErr != nil:
		err = fmt.Errorf("%v: %s", runErr, bytes.TrimSpace(stderr.Bytes()))
	}
	if err != nil {
		return fmt.Errorf("go mod download: %w (GOPROXY must name a module proxy that has this version)", err)
	}
	goModFile, err := os.ReadFile(dl.GoMod)
	if err != nil {
		return err
	}
	mf, err := modfile.ParseLax(dl.GoMod, goModFile, nil)
	if err != nil {
		return err
	}
	if mf.Go == nil {
		return fmt.Errorf("%s has no go line", dl.GoMod)
	}
	// nodebake's go.sum holds the sums of every module its build can
	// use, so nothing else needs the checksum database.
	sums, err := os.ReadFile(filepath.Join(dl.Dir, "go.sum"))
	if err != nil {
		return err
	}
	sums = fmt.Appendf(sums, "%s %s %s\n%s %s/go.mod %s\n", Module, bi.Main.Version, dl.Sum, Module, bi.Main.Version, dl.GoModSum)
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sums, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "go.mod"), deviceGoMod(bi, mf.Go.Version), 0o644)
}

// deviceGoMod is the throwaway module's go.mod: nodebake at bi's version,
// and every module nodebake itself was built with pinned at the version
// it was built with, so the device binaries share nodebake's dependencies.
// goVersion is nodebake's go line: the toolchain it needs, no newer.
func deviceGoMod(bi *debug.BuildInfo, goVersion string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "module %s\n\ngo %s\n\nrequire %s %s\n", deviceModule, goVersion, Module, bi.Main.Version)
	if len(bi.Deps) > 0 {
		b.WriteString("\n// The versions nodebake was built with (its debug.BuildInfo).\nrequire (\n")
		for _, d := range bi.Deps {
			fmt.Fprintf(&b, "\t%s %s\n", d.Path, d.Version)
		}
		b.WriteString(")\n")
	}
	return []byte(b.String())
}

// Command demo builds a DEMO image: the given image.yaml with its Bitcoin
// Core and Fulcrum replaced by STAND-IN releases (package standin) that it
// builds, signs and serves on 127.0.0.1 for the length of the build. Such
// an image says "DEMO — stand-in binaries, not for real use" everywhere
// (the spec gets demo: true) and is for trying nodebake and for the QEMU
// tests on machines that cannot download the real releases. make
// demo-image runs it:
//
//	go run ./qemu-tests/standin/demo -spec image.yaml -o out/ [-- NODEBAKE-BUILD-FLAGS...]
//
// It writes out/NAME-VERSION-demo.img. Run it from the nodebake source
// tree: it compiles the stand-ins and runs `go run ./cmd/nodebake build`.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nodebake/nodebake/qemu-tests/standin"
	"github.com/nodebake/nodebake/spec"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			os.Exit(exit.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// nodebakeBuild is the one place the demo calls the image builder. The
// demo spec's base URLs point at the local server, so no mirror is needed.
func nodebakeBuild(spec, image string, extra []string) *exec.Cmd {
	args := append([]string{"run", "./cmd/nodebake", "build", "-f", spec, "-o", image}, extra...)
	return exec.Command("go", args...)
}

func run(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	specPath := fs.String("spec", "image.yaml", "the image spec to build a demo of")
	outDir := fs.String("o", "out", "output folder")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: go run ./qemu-tests/standin/demo [-spec image.yaml] [-o out/] [-- nodebake build flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	in, err := os.ReadFile(*specPath)
	if err != nil {
		return err
	}
	// A syntax error is reported as nodebake build would (file:LINE:)
	// before the stand-ins take their time to build.
	if err := spec.CheckSyntax(in, *specPath); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "nodebake-standin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	t0 := time.Now()
	releases, err := standin.Build(tmp)
	if err != nil {
		return err
	}
	base, stop := standin.Serve(tmp)
	defer stop()
	out, name, version, err := releases.DemoSpec(in, base)
	if err != nil {
		return fmt.Errorf("%s: %v", *specPath, err)
	}
	fmt.Printf("==> stand-ins      Bitcoin Core %s and Fulcrum %s built, signed with new keys and served at %s (%.1fs)\n",
		standin.BitcoinCoreVersion, strings.Join(standin.FulcrumVersions, ", Fulcrum "), base, time.Since(t0).Seconds())

	// The demo spec sits next to the original so that its relative paths
	// (overlays, key files) resolve the same.
	f, err := os.CreateTemp(filepath.Dir(*specPath), "."+strings.TrimSuffix(filepath.Base(*specPath), filepath.Ext(*specPath))+"-demo-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(out); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	image := filepath.Join(*outDir, name+"-"+version+"-demo.img")
	fmt.Printf("==> demo spec      %s (removed afterwards): %s with stand-in artifacts and demo: true\n", f.Name(), *specPath)
	cmd := nodebakeBuild(f.Name(), image, fs.Args())
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// The builder runs in its own process group and gets the signals the
	// demo gets, passed to the whole group as a terminal would: `go run`
	// ignores SIGINT itself, so signalling only it would not reach nodebake.
	// The demo waits for it, then stops the server and removes its files.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() {
		for s := range sig {
			syscall.Kill(-cmd.Process.Pid, s.(syscall.Signal))
		}
	}()
	if err := cmd.Wait(); err != nil {
		return err
	}
	nextSteps(os.Stdout, image)
	return nil
}

// nextSteps tells a newcomer what to do with the image just built: boot it
// here, or write it to an SSD (the .zst when the build made one).
func nextSteps(w io.Writer, image string) {
	flashing := image
	if _, err := os.Stat(image + ".zst"); err == nil {
		flashing = image + ".zst"
	}
	fmt.Fprintf(w, `==> next
  Boot it here under QEMU (installs qemu-system-x86 and ovmf; Ctrl-A X quits):
    make qemu IMAGE=%s
  Or write it to an SSD (lsblk names the disk; flash asks before writing):
    go build -o nodebake ./cmd/nodebake && sudo ./nodebake flash %s /dev/sdX
`, image, flashing)
}

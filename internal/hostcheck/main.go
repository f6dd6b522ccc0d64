// Command hostcheck fails when code or tests of this module run a host
// program that a fresh Debian machine would lack after `make deps-test`.
//
// It type-checks every package, tests included, with and without the qemu
// build tag, and finds the program named at each exec.Command,
// exec.CommandContext and exec.LookPath call: a string constant, or a
// constant passed to a function that hands its parameter on to one of
// those (followed through as many such functions as there are). Then:
//   - every program found must be in hosttools.Programs;
//   - every package there must be in the Makefile's TEST_PACKAGES (and
//     hosttools.Build's in BUILD_PACKAGES), or be on every Debian machine
//     (Essential, or Priority required);
//   - where a program is installed here, dpkg must agree on its package.
//
// A program argument that is no constant is an error too, unless it is in
// allowed below. Run by `make check`:
//
//	go run ./internal/hostcheck -build "$(BUILD_PACKAGES)" -test "$(TEST_PACKAGES)"
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nodebake/nodebake/internal/hosttools"
)

// deviceOnly are programs that only the device runs, from its own root:
// no test runs the code that calls them, so the build host needs none.
var deviceOnly = map[string]string{
	"systemctl":          "nodectl's sync watch restarts bitcoind, nodectl restore the services (cmd/nodectl)",
	"/sbin/agetty":       "nodectl connect --publish has the login prompts show the new notice (cmd/nodectl)",
	"/sbin/mkfs.ext4":    "/init formats the data partition (cmd/nodebake-init)",
	"/usr/sbin/chpasswd": "the first-boot agent sets the one-time password (firstboot)",
	"/usr/bin/chage":     "the first-boot agent expires the one-time password (firstboot)",
}

// allowed are program arguments that are no constant on purpose, by file
// and argument as written, with why they need no entry of their own.
var allowed = map[allowKey]string{
	{"internal/qemu/qemu.go", "vm.binary"}:                     "qemu-system-x86_64, as exec.LookPath(qemuBinary) found it",
	{"internal/qemu/guestfwd_test.go", "argv[0]"}:              "the relay command QEMU would run: socat, as exec.LookPath(relay) found it",
	{"qemu-tests/main_test.go", "nodebakeBin"}:                 "the nodebake binary the QEMU tests build",
	{"qemu-tests/bench_test.go", "nodebakeBin"}:                "the nodebake binary the QEMU tests build",
	{"qemu-tests/build_test.go", "nodebakeBin"}:                "the nodebake binary the QEMU tests build",
	{"qemu-tests/ota_test.go", "nodebakeBin"}:                  "the nodebake binary the QEMU tests build",
	{"qemu-tests/node_test.go", "nodebakeBin"}:                 "the nodebake binary the QEMU tests build",
	{"qemu-tests/boot_test.go", "nodebakeBin"}:                 "the nodebake binary the QEMU tests build",
	{"qemu-tests/password_test.go", "nodebakeBin"}:             "the nodebake binary the QEMU tests build",
	{"qemu-tests/standin/standin_test.go", "filepath.Join(…)"}: "a stand-in binary the test built",
	{"qemu-tests/standin/standin_test.go", "bin(…)"}:           "a stand-in binary the test built",
	{"qemu-tests/install_test.go", "installed"}:                "the nodebake that the test installed with go install",
	{"qemu-tests/install_test.go", "installed"}:                "the nodebake that the test installed with go install",
	{"internal/hosttools/hosttools.go", "t.Name"}:              "hosttools.Check looks for the tools of a list taken from hosttools.Programs",
}

func main() {
	build := flag.String("build", "", "the Makefile's BUILD_PACKAGES, space-separated")
	test := flag.String("test", "", "the Makefile's TEST_PACKAGES, space-separated (BUILD_PACKAGES included)")
	flag.Parse()
	if *build == "" || *test == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, `usage: go run ./internal/hostcheck -build "$(BUILD_PACKAGES)" -test "$(TEST_PACKAGES)"  (from the module root; make check does this)`)
		os.Exit(2)
	}
	s, err := analyse(".", allowed)
	if err == nil {
		found, open := s.programs(), s.problems()
		msgs := check(found, open, hosttools.Programs, hosttools.Build, deviceOnly,
			lists{strings.Fields(*build), strings.Fields(*test)}, dpkg{})
		if len(msgs) == 0 {
			fmt.Printf("hostcheck: %d host programs, each from a package the Makefile installs\n", len(found))
			return
		}
		err = fmt.Errorf("%d problems: a fresh Debian machine would fail:\n  %s", len(msgs), joinLines(msgs))
	}
	fmt.Fprintln(os.Stderr, "hostcheck:", err)
	os.Exit(1)
}

// analyse scans the module in dir, built without and with the qemu tag.
func analyse(dir string, allowed map[allowKey]string) (*scanner, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	s := newScanner(root, allowed)
	var queue []site
	for _, tags := range []string{"", "qemu"} {
		pkgs, err := load(root, tags)
		if err != nil {
			return nil, err
		}
		queue = append(queue, s.add(pkgs)...)
	}
	s.run(queue)
	return s, nil
}

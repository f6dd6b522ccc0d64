// Package rootfs makes the root filesystem of an image: Debian's userland
// from mmdebstrap (cached by a hash of its inputs), then nodebake's own
// configuration applied to it as a tree.
package rootfs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/bytesize"
	"github.com/nodebake/nodebake/spec"
)

// BasePackages are in every nodebake image: what boots it (kernel, systemd,
// systemd-boot for boot counting), what the guide's node runs on (tor,
// nftables, zram, ssh), and networking as a user expects it (DHCP and mDNS
// through networkd/resolved, time sync, firmware for common mini-PC NICs).
var BasePackages = []string{
	"systemd", "systemd-sysv", "udev", "kmod", "dbus", "linux-image-amd64",
	"systemd-boot", "systemd-boot-efi", "systemd-timesyncd", "systemd-resolved",
	"systemd-zram-generator", "e2fsprogs", "dmsetup", "openssh-server", "sudo",
	"tor", "nftables", "iproute2", "netbase", "procps", "ca-certificates", "libssl3",
	"firmware-realtek", "firmware-misc-nonfree",
}

// userlandFormat is bumped whenever the mmdebstrap invocation changes in a way
// its inputs below do not show, so old cache entries are not reused.
const userlandFormat = "1"

// Userland returns the path of a tarball of the Debian userland for d,
// building it with mmdebstrap unless an identical build is cached in
// cacheDir. Output lines of mmdebstrap go to log (nil: discarded, but the
// tail is kept for the error).
func Userland(ctx context.Context, d spec.Debian, epoch time.Time, cacheDir string, log io.Writer) (string, error) {
	if err := oneArgument(d); err != nil {
		return "", err
	}
	mm, err := exec.LookPath("mmdebstrap")
	if err != nil {
		return "", errors.New("userland: mmdebstrap not found: install the Debian package mmdebstrap (make image does it)")
	}
	version, err := exec.CommandContext(ctx, mm, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("userland: %s --version: %w", mm, err)
	}
	pkgs := append(append([]string{}, BasePackages...), d.Packages...)
	sort.Strings(pkgs)
	pkgs = dedupe(pkgs)
	key, _ := json.Marshal(map[string]any{
		"format": userlandFormat, "mmdebstrap": strings.TrimSpace(string(version)),
		"suite": d.Suite, "mirror": d.Mirror, "components": d.Components,
		"packages": pkgs, "epoch": epoch.Unix(),
	})
	sum := sha256.Sum256(key)
	dir := filepath.Join(cacheDir, "userland")
	out := filepath.Join(dir, hex.EncodeToString(sum[:16])+".tar")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("userland cache: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".partial-*.tar")
	if err != nil {
		return "", fmt.Errorf("userland cache: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())

	args := []string{
		"--variant=essential",
		"--components=" + strings.Join(d.Components, ","),
		"--include=" + strings.Join(pkgs, ","),
		"--format=tar",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--mode=root")
	} else {
		args = append(args, "--mode=unshare")
	}
	args = append(args, d.Suite, tmp.Name(), d.Mirror)
	cmd := exec.CommandContext(ctx, mm, args...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch.Unix()))
	tail := &lineTail{w: log}
	cmd.Stdout, cmd.Stderr = tail, tail
	if err := cmd.Run(); err != nil {
		hint := ""
		if os.Geteuid() != 0 {
			hint = " (as a plain user mmdebstrap needs /etc/subuid and /etc/subgid entries; or run as root)"
		}
		return "", fmt.Errorf("userland: mmdebstrap %s from %s failed: %v%s\n%s", d.Suite, d.Mirror, err, hint, tail.String())
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", fmt.Errorf("userland cache: %w", err)
	}
	return out, nil
}

// oneArgument refuses a value that mmdebstrap would read as more than it
// is: with a space or line break, the mirror argument is a sources.list
// line of its own (a [trusted=yes] repository whose package scripts run
// here), and a comma splits a list. spec.Load has checked the spec; this
// holds for a Spec built by other code too.
func oneArgument(d spec.Debian) error {
	check := func(what, v, bad string) error {
		if v == "" || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || strings.ContainsRune(bad, r) }) {
			return fmt.Errorf("userland: debian.%s %q is empty or holds a space, line break or one of %q: check the spec with spec.Load", what, v, bad)
		}
		return nil
	}
	errs := []error{check("suite", d.Suite, ","), check("mirror", d.Mirror, "")}
	for _, c := range d.Components {
		errs = append(errs, check("components", c, ","))
	}
	for _, p := range d.Packages {
		errs = append(errs, check("packages", p, ","))
	}
	return errors.Join(errs...)
}

func dedupe(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// lineTail forwards output line by line, prefixed, and keeps the last lines
// for error messages.
type lineTail struct {
	w     io.Writer
	buf   bytes.Buffer
	lines []string
}

func (l *lineTail) Write(p []byte) (int, error) {
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.WriteString(line)
			return len(p), nil
		}
		line = strings.TrimRight(line, "\n")
		if l.w != nil {
			fmt.Fprintf(l.w, "  mmdebstrap: %s\n", line)
		}
		l.lines = append(l.lines, line)
		if len(l.lines) > 20 {
			l.lines = l.lines[1:]
		}
	}
}

func (l *lineTail) String() string { return strings.Join(l.lines, "\n") }

// ParseStatus reads dpkg's status file and returns the installed packages,
// sorted by name.
func ParseStatus(status []byte) ([]contract.Package, error) {
	var out []contract.Package
	sc := bufio.NewScanner(bytes.NewReader(status))
	sc.Buffer(make([]byte, bytesize.MiB), bytesize.MiB)
	var cur contract.Package
	var installed bool
	flush := func() {
		if cur.Name != "" && installed {
			out = append(out, cur)
		}
		cur, installed = contract.Package{}, false
	}
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		switch k {
		case "Package":
			cur.Name = v
		case "Version":
			cur.Version = v
		case "Architecture":
			cur.Architecture = v
		case "Status":
			installed = strings.HasSuffix(v, " installed")
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dpkg status: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("dpkg status: no installed packages (is this a Debian userland?)")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

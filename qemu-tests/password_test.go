//go:build qemu

package qemutests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nodebake/nodebake/internal/qemu"
	"github.com/nodebake/nodebake/internal/testvm"
)

// An image built without any SSH key (none in the spec, none with the
// builder) gives each device a one-time password for admin, shown on the
// local console; the first login must replace it, and the chosen one
// survives a reboot while the notice goes away.
func TestOneTimeConsolePassword(t *testing.T) {
	// The repository's spec as it is (no keys), without the release
	// binaries: this test is about the login, and a smaller system boots
	// and reboots faster under emulation.
	repo, err := os.ReadFile("../image.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(repo, &doc); err != nil {
		t.Fatal(err)
	}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "artifacts" {
			top.Content = append(top.Content[:i], top.Content[i+2:]...)
			break
		}
	}
	spec, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	if spec, err = withStrace(spec); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	specFile, img := filepath.Join(dir, "image.yaml"), filepath.Join(dir, "nokeys.img")
	if err := os.WriteFile(specFile, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	// The shared cache: with HOME elsewhere, the build would otherwise
	// make the Debian userland anew.
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nodebakeBin, "build", "-q", "-f", specFile, "-o", img, "--src", "..", "--cache", filepath.Join(cache, "nodebake"))
	// A builder with no ~/.ssh/*.pub.
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "SUDO_USER=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build without keys: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	console, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer console.Close()
	// The image file is this test's own: it is written, as a device's disk.
	start := time.Now()
	var vm *testvm.VM
	power := func() {
		t.Helper()
		if vm, err = testvm.Start(ctx, qemu.Options{Image: img, Console: console}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { vm.Kill() })
	}
	power()
	expect := func(re string) []string {
		t.Helper()
		m, err := vm.WaitConsole(ctx, regexp.MustCompile(re))
		if err != nil {
			t.Fatalf("console never showed %q: %v", re, err)
		}
		t.Logf("%5.1fs %s", time.Since(start).Seconds(), re)
		return regexp.MustCompile(re).FindStringSubmatch(m)
	}
	typ := func(s string) {
		t.Helper()
		if err := vm.Type(s); err != nil {
			t.Fatal(err)
		}
	}

	otp := expect(`First login on this console: admin / (\S+)`)[1]
	expect(`login: `)
	typ("admin\r")
	expect(`Password: `)
	typ(otp + "\r")
	expect(`You are required to change your password immediately`)
	const chosen = "Chosen-by-Admin-7q2"
	for done := false; !done; {
		switch expect(`(Current password|New password|Retype new password): |admin@minibolt:~\$ `)[1] {
		case "Current password":
			typ(otp + "\r")
		case "New password", "Retype new password":
			typ(chosen + "\r")
		default:
			done = true
		}
	}
	typ("sudo -n true && echo SUDO-$((40+2))\r")
	expect(`SUDO-42`)

	// The password survives a power cycle; the one-time notice does not.
	// (A fresh VM boots faster under emulation than OVMF's warm reset.)
	typ("sudo systemctl poweroff\r")
	if err := vm.Wait(); err != nil {
		t.Fatalf("power off: %v", err)
	}
	power()
	if after := expect(`(?s)Linux version .*?login: `)[0]; regexp.MustCompile(`First login on this console`).MatchString(after) {
		t.Fatal("the one-time password is still shown after it was changed")
	}
	typ("admin\r")
	expect(`Password: `)
	typ(chosen + "\r")
	expect(`admin@minibolt:~\$ `)
}

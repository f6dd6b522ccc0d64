//go:build qemu

package qemutests

import (
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"
	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"

	"github.com/nodebake/nodebake/build"
	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/disk"
)

// installVersion is the made-up version this checkout is published at, in
// a module proxy folder of the test's own.
const installVersion = "v0.99.0-installtest"

// A nodebake installed with go install …@VERSION builds an image from a
// folder outside the checkout; the manifest records that version, and the
// nodectl in the image was built from that same module version, with the
// dependency versions nodebake itself was built with. Offline: the module
// proxy is a folder holding this checkout and the module cache's download
// folder, and a fresh GOMODCACHE keeps the made-up version out of the
// shared one.
func TestInstalled(t *testing.T) {
	tmp := t.TempDir()
	proxy := filepath.Join(tmp, "proxy")
	if err := publishCheckout(proxy, installVersion); err != nil {
		t.Fatal(err)
	}
	sharedCache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	modCache := filepath.Join(tmp, "modcache")
	env := append(os.Environ(),
		"GOPROXY=file://"+proxy+",file://"+filepath.Join(strings.TrimSpace(string(sharedCache)), "cache", "download"),
		"GOMODCACHE="+modCache,
		"GOSUMDB=off", // the made-up version is in no checksum database, and nothing may go online
		"GOTOOLCHAIN=local",
		"GOWORK=off",
	)
	t.Cleanup(func() {
		// The module cache's files are read-only: go clean removes them.
		clean := exec.Command("go", "clean", "-modcache")
		clean.Env = env
		if out, err := clean.CombinedOutput(); err != nil {
			t.Errorf("go clean -modcache: %v\n%s", err, out)
		}
	})

	// Installed from a folder that is no module, as a user would.
	gobin := filepath.Join(tmp, "bin")
	elsewhere := filepath.Join(tmp, "elsewhere")
	specDir := filepath.Join(tmp, "spec")
	for _, d := range []string{elsewhere, specDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	install := exec.Command("go", "install", build.Module+"/cmd/nodebake@"+installVersion)
	install.Dir = elsewhere
	install.Env = append(env, "GOBIN="+gobin)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("go install: %v\n%s", err, out)
	}
	t.Logf("go install took %s", time.Since(start).Round(time.Second))
	installed := filepath.Join(gobin, "nodebake")

	spec, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	specFile := filepath.Join(specDir, "image.yaml")
	if err := os.WriteFile(specFile, spec, 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("refuses a source tree", func(t *testing.T) {
		checkout, err := filepath.Abs("..")
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(installed, "build", "-q", "-f", specFile, "-o", "out/x.img", "--src", checkout)
		cmd.Dir = elsewhere
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "this nodebake is the release "+build.Module+"@"+installVersion) {
			t.Fatalf("build --src with an installed nodebake: %v\n%s", err, out)
		}
	})

	start = time.Now()
	cmd := exec.Command(installed, "build", "-f", specFile, "-o", "out/x.img")
	cmd.Dir = elsewhere
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("installed nodebake build: %v\n%s", err, out)
	}
	t.Logf("installed nodebake build took %s", time.Since(start).Round(time.Second))
	if want := "device binaries  module " + build.Module + "@" + installVersion; !strings.Contains(string(out), want) {
		t.Errorf("the build did not say %q:\n%s", want, out)
	}

	want := build.Module + "@" + installVersion
	img := filepath.Join(elsewhere, "out", "x.img")
	var beside contract.Manifest
	if err := readJSON(build.ManifestPath(img), &beside); err != nil {
		t.Fatal(err)
	}
	if beside.Nodebake != want {
		t.Errorf("%s records nodebake %q, want %q", build.ManifestPath(img), beside.Nodebake, want)
	}

	info, err := disk.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	var root *disk.PartitionInfo
	for i, p := range info.Partitions {
		if p.Manifest != nil {
			root = &info.Partitions[i]
			break
		}
	}
	if root == nil {
		t.Fatal("no partition of the image holds a manifest")
	}
	var inside contract.Manifest
	if err := json.Unmarshal(root.Manifest, &inside); err != nil {
		t.Fatal(err)
	}
	if inside.Nodebake != want {
		t.Errorf("%s %s records nodebake %q, want %q", root.Name, contract.ManifestPath, inside.Nodebake, want)
	}

	nodectl, err := readSquashfsFile(img, root.Start, root.Size, "usr/bin/nodectl")
	if err != nil {
		t.Fatalf("%s: %v", root.Name, err)
	}
	device, err := buildinfo.Read(bytes.NewReader(nodectl))
	if err != nil {
		t.Fatalf("/usr/bin/nodectl in %s: %v", root.Name, err)
	}
	if device.Main.Path != build.Module || device.Main.Version != installVersion {
		t.Errorf("/usr/bin/nodectl was built from %s@%s, want %s", device.Main.Path, device.Main.Version, want)
	}
	host, err := buildinfo.ReadFile(installed)
	if err != nil {
		t.Fatal(err)
	}
	versions := map[string]string{}
	for _, d := range host.Deps {
		versions[d.Path] = d.Version
	}
	shared := 0
	for _, d := range device.Deps {
		if v, ok := versions[d.Path]; ok {
			shared++
			if v != d.Version {
				t.Errorf("/usr/bin/nodectl has %s %s, the installed nodebake %s", d.Path, d.Version, v)
			}
		}
	}
	if shared == 0 {
		t.Errorf("/usr/bin/nodectl shares no module with the installed nodebake: nothing was compared")
	}
}

// publishCheckout writes this checkout into dir, a GOPROXY folder, as
// module build.Module at version: its working tree as git sees it (tracked
// and untracked files, without ignored ones such as built images).
func publishCheckout(dir, version string) error {
	root, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	list, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	var files []modzip.File
	for _, name := range strings.Split(strings.TrimRight(string(list), "\x00"), "\x00") {
		// Tracked files deleted in the working tree are not part of it.
		if _, err := os.Lstat(filepath.Join(root, name)); err == nil {
			files = append(files, checkoutFile{root: root, name: name})
		}
	}
	escPath, err := module.EscapePath(build.Module)
	if err != nil {
		return err
	}
	escVersion, err := module.EscapeVersion(version)
	if err != nil {
		return err
	}
	at := filepath.Join(dir, escPath, "@v")
	if err := os.MkdirAll(at, 0o755); err != nil {
		return err
	}
	z, err := os.Create(filepath.Join(at, escVersion+".zip"))
	if err != nil {
		return err
	}
	defer z.Close()
	if err := modzip.Create(z, module.Version{Path: build.Module, Version: version}, files); err != nil {
		return err
	}
	if err := z.Close(); err != nil {
		return err
	}
	goMod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(at, escVersion+".mod"), goMod, 0o644); err != nil {
		return err
	}
	info := fmt.Sprintf(`{"Version":%q,"Time":%q}`, version, time.Now().UTC().Format(time.RFC3339))
	if err := os.WriteFile(filepath.Join(at, escVersion+".info"), []byte(info), 0o644); err != nil {
		return err
	}
	// go install looks up the latest version for deprecation notices.
	return os.WriteFile(filepath.Join(at, "list"), []byte(version+"\n"), 0o644)
}

// checkoutFile is a file of the checkout as golang.org/x/mod/zip takes it.
type checkoutFile struct{ root, name string }

func (f checkoutFile) Path() string                 { return f.name }
func (f checkoutFile) Lstat() (os.FileInfo, error)  { return os.Lstat(filepath.Join(f.root, f.name)) }
func (f checkoutFile) Open() (io.ReadCloser, error) { return os.Open(filepath.Join(f.root, f.name)) }

// readSquashfsFile reads one file out of the squashfs at start in img.
func readSquashfsFile(img string, start, size int64, name string) ([]byte, error) {
	f, err := os.Open(img)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fs, err := squashfs.Read(file.New(f, true), size, start, 0)
	if err != nil {
		return nil, fmt.Errorf("reading squashfs: %w", err)
	}
	b, err := fs.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return b, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

package build

import (
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// Which source the device binaries come from, for each way nodebake can
// have been built. The test runs inside the checkout, so a source tree is
// always there to be found: a release must still not use it.
func TestDeviceSource(t *testing.T) {
	checkout, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.modified", Value: modified}}
	}
	info := func(path, version string, settings []debug.BuildSetting) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Path: path, Version: version}, Settings: settings}
	}
	elsewhere := t.TempDir()
	for _, c := range []struct {
		name      string
		bi        *debug.BuildInfo
		src       string
		dirs      []string
		release   bool
		tree      string
		errSubstr string // non-empty: DeviceSource fails with this in the message
	}{
		{name: "go install @tag, run in a checkout", bi: info(Module, "v0.3.0", nil), dirs: []string{"."}, release: true},
		{name: "go install @pseudo-version, run anywhere", bi: info(Module, "v0.0.0-20261202000000-0123456789ab", nil), dirs: []string{elsewhere}, release: true},
		{name: "release with --src", bi: info(Module, "v0.3.0", nil), src: "..", errSubstr: "this nodebake is the release " + Module + "@v0.3.0"},
		{name: "go run in the checkout", bi: info(Module, "(devel)", nil), dirs: []string{".", "../spec"}, tree: checkout},
		{name: "development build, tree above the spec", bi: info(Module, "(devel)", nil), dirs: []string{elsewhere, "../spec"}, tree: checkout},
		{name: "development build, --src", bi: info(Module, "(devel)", nil), src: "../spec", dirs: []string{elsewhere}, tree: filepath.Join(checkout, "spec")},
		{name: "VCS-stamped +dirty build", bi: info(Module, "v0.3.1-0.20261202000000-0123456789ab+dirty", vcs("true")), dirs: []string{"."}, tree: checkout},
		{name: "VCS-stamped clean build", bi: info(Module, "v0.3.0", vcs("false")), dirs: []string{"."}, tree: checkout},
		{name: "nodebake as another program's library", bi: info("example.com/wrapper", "v1.0.0", nil), dirs: []string{"."}, tree: checkout},
		{name: "no build info", dirs: []string{"."}, tree: checkout},
		{name: "development build, no tree", bi: info(Module, "(devel)", nil), dirs: []string{elsewhere}, errSubstr: "go install " + Module + "/cmd/nodebake@VERSION"},
	} {
		t.Run(c.name, func(t *testing.T) {
			release, tree, err := DeviceSource(c.bi, c.src, c.dirs...)
			if c.errSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), c.errSubstr) {
					t.Fatalf("err = %v, want one saying %q", err, c.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (release != nil) != c.release || (release != nil && release != c.bi) {
				t.Errorf("release = %v, want it %v", release, c.release)
			}
			if tree != c.tree {
				t.Errorf("tree = %q, want %q", tree, c.tree)
			}
		})
	}
}

// The throwaway module requires nodebake at the running version and pins
// every module nodebake was built with.
func TestDeviceGoMod(t *testing.T) {
	for _, c := range []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{
			name: "with dependencies",
			bi: &debug.BuildInfo{
				Main: debug.Module{Path: Module, Version: "v0.3.0"},
				Deps: []*debug.Module{
					{Path: "github.com/google/uuid", Version: "v1.6.0"},
					{Path: "golang.org/x/sys", Version: "v0.49.0"},
				},
			},
			want: `module nodebake-device-build

go 1.26.8

require github.com/nodebake/nodebake v0.3.0

// The versions nodebake was built with (its debug.BuildInfo).
require (
	github.com/google/uuid v1.6.0
	golang.org/x/sys v0.49.0
)
`,
		},
		{
			name: "no dependencies",
			bi:   &debug.BuildInfo{Main: debug.Module{Path: Module, Version: "v0.0.0-20261202000000-0123456789ab"}},
			want: `module nodebake-device-build

go 1.26.8

require github.com/nodebake/nodebake v0.0.0-20261202000000-0123456789ab
`,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := string(deviceGoMod(c.bi, "1.26.8")); got != c.want {
				t.Errorf("go.mod:\n%s\nwant:\n%s", got, c.want)
			}
		})
	}
}

// The manifest and the progress line name the version a release builds
// from; a development build says it is one, without the checkout's path
// (which would make the image depend on where the checkout is).
func TestNodebakeVersion(t *testing.T) {
	rel := Options{Release: &debug.BuildInfo{Main: debug.Module{Path: Module, Version: "v0.3.0"}}}
	if got, want := nodebakeVersion(rel), Module+"@v0.3.0"; got != want {
		t.Errorf("release: manifest says %q, want %q", got, want)
	}
	if got, want := deviceFrom(rel), "module "+Module+"@v0.3.0"; got != want {
		t.Errorf("release: progress says %q, want %q", got, want)
	}
	dev := Options{Source: "/home/me/nodebake"}
	if got := nodebakeVersion(dev); !strings.Contains(got, "(devel)") || strings.Contains(got, dev.Source) {
		t.Errorf("development build: manifest says %q, want (devel) and no path", got)
	}
	if got, want := deviceFrom(dev), "source tree /home/me/nodebake"; got != want {
		t.Errorf("development build: progress says %q, want %q", got, want)
	}
}

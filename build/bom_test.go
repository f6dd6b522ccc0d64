package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/artifact"
	"github.com/nodebake/nodebake/internal/tree"
	"github.com/nodebake/nodebake/spec"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdxlib"
)

// The bill of materials beside the image lists what the root's dpkg status
// says is installed (not what is merely unpacked) and the verified
// releases at the URL the spec downloads them from.
func TestWriteSBOM(t *testing.T) {
	tr := tree.New()
	tr.WriteFile("var/lib/dpkg/status", []byte(
		"Package: tor\nStatus: install ok installed\nArchitecture: amd64\nVersion: 0.4.9.11-0+deb12u1\n\n"+
			"Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n\n"+
			"Package: libstdc++6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.2.0-14+deb12u1\n"), 0o644, tree.Root)
	s := &spec.Spec{Name: "minibolt", Version: "0.1.0"}
	s.Debian.Suite = "bookworm"
	s.Artifacts.BitcoinCore = &artifact.Config{BaseURL: "https://bitcoincore.org/bin/bitcoin-core-30.2"}
	releases := []verified{{kind: contract.BitcoinCore, rel: &artifact.Release{
		Version: "30.2", TarballName: "bitcoin-30.2-x86_64-linux-gnu.tar.gz", SHA256: strings.Repeat("cd", 32)}}}
	image := filepath.Join(t.TempDir(), "minibolt-0.1.0.img")
	out := SBOMPath(image)
	if filepath.Base(out) != "minibolt-0.1.0.spdx.json" {
		t.Errorf("SBOMPath = %s", out)
	}
	if err := writeSBOM(out, tr, s, image, strings.Repeat("ab", 32), "nodebake-devel", time.Unix(0, 0), releases); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := spdxjson.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range doc.Packages {
		got[p.PackageName] = p.PackageVersion + " " + p.PackageDownloadLocation
	}
	want := map[string]string{
		"minibolt":     "0.1.0 NOASSERTION",
		"tor":          "0.4.9.11-0+deb12u1 NOASSERTION",
		"libstdc++6":   "12.2.0-14+deb12u1 NOASSERTION",
		"bitcoin-core": "30.2 https://bitcoincore.org/bin/bitcoin-core-30.2/bitcoin-30.2-x86_64-linux-gnu.tar.gz",
	}
	if len(got) != len(want) {
		t.Errorf("packages %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
}

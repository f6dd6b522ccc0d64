package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/qemu-tests/standin"
	"github.com/nodebake/nodebake/spec"
)

// releases as Build describes them; the demo spec needs only the description.
var releases = &standin.Releases{
	BitcoinCore: standin.Release{
		Kind: "bitcoin-core", Version: "30.2", Folder: "bitcoin-core-30.2", Tarball: "bitcoin-30.2-x86_64-linux-gnu.tar.gz",
		Sums: "SHA256SUMS", Signature: "SHA256SUMS.asc", SHA256: strings.Repeat("ab", 32), MinSignatures: 3,
		Signers: []standin.Signer{
			{Name: "standin-builder-1", Fingerprint: strings.Repeat("A1", 20), KeyFile: "keys/standin-builder-1.asc"},
			{Name: "standin-builder-2", Fingerprint: strings.Repeat("B2", 20), KeyFile: "keys/standin-builder-2.asc"},
			{Name: "standin-builder-3", Fingerprint: strings.Repeat("C3", 20), KeyFile: "keys/standin-builder-3.asc"},
		},
	},
	Fulcrum: map[string]standin.Release{},
}

func init() {
	for _, v := range standin.FulcrumVersions {
		releases.Fulcrum[v] = standin.Release{
			Kind: "fulcrum", Version: v, Folder: "fulcrum-" + v, Tarball: "Fulcrum-" + v + "-x86_64-linux.tar.gz",
			Sums: "Fulcrum-" + v + "-shasums.txt", Signature: "Fulcrum-" + v + "-shasums.txt.asc", SHA256: strings.Repeat("cd", 32), MinSignatures: 1,
			Signers: []standin.Signer{{Name: "standin-calin", Fingerprint: strings.Repeat("D4", 20), KeyFile: "keys/standin-calin.asc"}},
		}
	}
}

// The repository's own image.yaml becomes a demo spec nodebake accepts,
// with the stand-ins pinned and everything else (comments too) kept.
func TestDemoSpecOfTheDefaultImage(t *testing.T) {
	in, err := os.ReadFile("../../../image.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, name, version, err := releases.DemoSpec(in, "http://127.0.0.1:4242/")
	if err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs("../../..")
	s, err := spec.Parse(out, "image.yaml", root)
	if err != nil {
		t.Fatalf("nodebake rejects the demo spec: %v\n%s", err, out)
	}
	if !s.Demo || s.Name != name || s.Version != version {
		t.Errorf("demo %v, name %s %s, version %s %s", s.Demo, s.Name, name, s.Version, version)
	}
	bc, f := s.Artifacts.BitcoinCore, s.Artifacts.Fulcrum
	if bc == nil || f == nil {
		t.Fatalf("artifacts %+v", s.Artifacts)
	}
	if bc.BaseURL != "http://127.0.0.1:4242/bitcoin-core-30.2/" || bc.MinSignatures != 3 || len(bc.Signers) != 3 ||
		bc.Signers[0].Key != "http://127.0.0.1:4242/keys/standin-builder-1.asc" || bc.SHA256 != strings.Repeat("ab", 32) {
		t.Errorf("bitcoin-core: %+v", bc)
	}
	if f.Version != standin.DefaultFulcrumVersion || f.BaseURL != "http://127.0.0.1:4242/fulcrum-2.1.1/" || len(f.Signers) != 1 || f.Signers[0].Fingerprint != strings.Repeat("D4", 20) {
		t.Errorf("fulcrum: %+v", f)
	}
	if !strings.Contains(string(out), "# Inbound is denied except these") {
		t.Error("comments were lost")
	}
}

func TestDemoSpecKeepsChoices(t *testing.T) {
	const head = "name: n\nversion: 1.0.0\n"
	out, _, _, err := releases.DemoSpec([]byte(head+"demo: false\nartifacts:\n  fulcrum:\n    version: 1.11.1\n"), "http://h/")
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	if !strings.Contains(got, "demo: true") || strings.Contains(got, "demo: false") || strings.Contains(got, "bitcoin-core") ||
		!strings.Contains(got, `base_url: "http://h/fulcrum-1.11.1/"`) {
		t.Errorf("demo spec:\n%s", got)
	}
	for y, want := range map[string]string{
		head + "artifacts:\n  fulcrum:\n    version: 1.9.0\n":         "the stand-ins are Fulcrum 2.1.1, 1.11.1 only",
		head + "artifacts:\n  bitcoin-core:\n    version: \"29.0\"\n": "the stand-ins are Bitcoin Core 30.2 only",
		head + "artifacts:\n  electrs: {}\n":                          "artifacts.electrs: no stand-in for it",
		"version: 1.0.0\n":                                            "no name or version",
	} {
		if _, _, _, err := releases.DemoSpec([]byte(y), "http://h/"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", y, err, want)
		}
	}
}

// make demo-image ends with the commands that come next: boot the image
// (make qemu) and write it to an SSD (nodebake flash, the .zst if made).
func TestNextSteps(t *testing.T) {
	img := filepath.Join(t.TempDir(), "minibolt-0.1.0-demo.img")
	var b strings.Builder
	nextSteps(&b, img)
	if !strings.Contains(b.String(), "make qemu IMAGE="+img+"\n") || !strings.Contains(b.String(), "nodebake flash "+img+" /dev/sdX") {
		t.Errorf("without a .zst:\n%s", b.String())
	}
	os.WriteFile(img+".zst", nil, 0o644)
	b.Reset()
	nextSteps(&b, img)
	if !strings.Contains(b.String(), "nodebake flash "+img+".zst /dev/sdX") {
		t.Errorf("with a .zst:\n%s", b.String())
	}
}

//go:build qemu

// Package qemutests builds the default image with the real pipeline — with
// STAND-IN Bitcoin Core and Fulcrum releases (package standin), built,
// signed and served on 127.0.0.1 by the tests, because the official ones
// cannot be downloaded here — and boots it under QEMU with OVMF. Every assertion is made from inside the
// guest (over SSH) or on what the guest's kernel prints, never on lines the
// builder printed itself. Run with: go test -tags qemu ./qemu-tests/
// (make test does). Building needs root (mmdebstrap) and Debian's archive.
package qemutests

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"github.com/nodebake/nodebake/qemu-tests/standin"
)

// Shared by the tests: one image build is minutes of work.
var (
	image       string     // the built default image
	adminKey    ssh.Signer // the key baked in for admin
	specPorts   = []int{22, 50001, 50002}
	work        string
	specPath    string // the demo image.yaml with the test key
	nodebakeBin string
	baseURL     string // where the stand-in releases are served
	stopServer  func()
	releases    *standin.Releases
	keyedSpec   string // the repository's image.yaml with the test key
)

func TestMain(m *testing.M) {
	code, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "qemu-tests setup:", err)
		os.Exit(1)
	}
	if code == 0 {
		code = m.Run()
	}
	if stopServer != nil {
		stopServer()
	}
	os.RemoveAll(work)
	os.Exit(code)
}

// setup builds nodebake and, with it, the repository's image.yaml with a
// key made for this run as admin's only SSH key.
func setup() (int, error) {
	var err error
	if work, err = os.MkdirTemp("", "nodebake-qemu-tests-"); err != nil {
		return 1, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return 1, err
	}
	if adminKey, err = ssh.NewSignerFromKey(priv); err != nil {
		return 1, err
	}
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(adminKey.PublicKey()))) + " qemu-tests"

	yaml, err := os.ReadFile("../image.yaml")
	if err != nil {
		return 1, err
	}
	withKey := strings.Replace(string(yaml), "ssh_authorized_keys: []", fmt.Sprintf("ssh_authorized_keys: [%q]", pub), 1)
	if withKey == string(yaml) {
		return 1, fmt.Errorf("../image.yaml: no empty ssh_authorized_keys for admin to put the test key in")
	}
	keyedSpec = withKey
	releases, err = standin.Build(filepath.Join(work, "standin"))
	if err != nil {
		return 1, err
	}
	baseURL, stopServer = standin.Serve(releases.Dir)
	demo, err := demoSpec([]byte(withKey))
	if err != nil {
		return 1, err
	}
	specPath = filepath.Join(work, "image.yaml")
	if err := os.WriteFile(specPath, demo, 0o644); err != nil {
		return 1, err
	}

	nodebakeBin = filepath.Join(work, "nodebake")
	if out, err := exec.Command("go", "build", "-o", nodebakeBin, "../cmd/nodebake").CombinedOutput(); err != nil {
		return 1, fmt.Errorf("go build nodebake: %v\n%s", err, out)
	}
	image = filepath.Join(work, "out", "minibolt.img")
	cmd := exec.Command(nodebakeBin, "build", "-f", specPath, "-o", image, "--src", "..")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return 1, fmt.Errorf("nodebake build: %v", err)
	}
	return 0, nil
}

// demoSpec is spec with the stand-in releases served here (DemoSpec) and
// strace (withStrace).
func demoSpec(spec []byte) ([]byte, error) {
	demo, _, _, err := releases.DemoSpec(spec, baseURL)
	if err != nil {
		return nil, err
	}
	return withStrace(demo)
}

// withStrace adds the Debian package strace to a spec: TestPowerCutESP
// stops nodectl and systemd-bless-boot with it at each change to the ESP.
// Every image the tests build starts from this spec, so all of them share
// one Debian userland, which mmdebstrap makes once (minutes) and the build
// cache keeps by package list.
func withStrace(spec []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(spec, &doc); err != nil {
		return nil, err
	}
	debian := standin.YAMLValue(doc.Content[0], "debian")
	if debian == nil {
		return nil, fmt.Errorf("the spec has no debian section to add strace to")
	}
	packages := standin.YAMLValue(debian, "packages")
	if packages == nil {
		packages = &yaml.Node{Kind: yaml.SequenceNode}
	}
	packages.Content = append(packages.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "strace"})
	standin.YAMLSet(debian, "packages", packages)
	return yaml.Marshal(&doc)
}

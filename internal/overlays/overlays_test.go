package overlays_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	. "github.com/nodebake/nodebake/internal/overlays"
	"github.com/nodebake/nodebake/internal/tree"
	"github.com/nodebake/nodebake/spec"
)

func TestApplyDirKeepsModesAndRenders(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "usr/local/bin"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "usr/local/bin/hello"), []byte("#!/bin/sh\n"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "etc-motd.tmpl"), []byte("Welcome to {{.Name}}: {{join .Ports \", \"}}\n"), 0o644))

	tr := tree.New()
	data := struct {
		Name  string
		Ports []int
	}{"node", []int{1, 2}}
	must(Apply(tr, Dir(dir), "extra", data))
	if e, ok := tr.Get("usr/local/bin/hello"); !ok || e.Mode.Perm() != 0o755 {
		t.Fatalf("executable lost its mode: %+v", e)
	}
	b, err := tr.ReadFile("etc-motd")
	if err != nil || string(b) != "Welcome to node: 1, 2\n" {
		t.Fatalf("rendered %q, %v", b, err)
	}
	if _, ok := tr.Get("etc-motd.tmpl"); ok {
		t.Fatal("template copied verbatim")
	}
}

func TestTemplateErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.tmpl"), []byte("{{.Missing}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Apply(tree.New(), Dir(dir), "extra", map[string]string{})
	if err == nil || !strings.Contains(err.Error(), "overlay extra: template x.tmpl") {
		t.Fatalf("err = %v", err)
	}
}

func TestBaseOverlayHasSudoersMode(t *testing.T) {
	s, err := spec.Parse([]byte("apiVersion: nodebake/v1\nname: n\nversion: \"1\"\n"), "image.yaml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tr := tree.New()
	if err := Apply(tr, Base(), "base", s); err != nil {
		t.Fatal(err)
	}
	if e, _ := tr.Get("etc/sudoers.d/nodebake"); e == nil || e.Mode.Perm() != 0o440 {
		t.Fatalf("sudoers mode: %+v", e)
	}
	if e, _ := tr.Get("etc/nftables.conf"); e == nil || e.Mode.Perm() != 0o644 {
		t.Fatalf("nftables.conf mode: %+v", e)
	}
}

// Apply refuses, at build time too, what the spec's overlay rule refuses:
// a symlink, a file that is not plain, a private key.
func TestApplyRefusesHostFiles(t *testing.T) {
	for name, c := range map[string]struct {
		setup func(dir string) error
		want  string
	}{
		"symlink": {func(dir string) error { return os.Symlink("/etc/shadow", filepath.Join(dir, "shadow")) },
			"overlay extra: shadow is a symlink: overlays hold plain files"},
		"fifo": {func(dir string) error { return syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644) },
			"overlay extra: pipe is a p---------, not a plain file"},
		"ssh key": {func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "id_ed25519"), []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----\n"), 0o600)
		}, "overlay extra: id_ed25519 holds a private key"},
		"pgp key": {func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "key.asc"), []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----\n"), 0o600)
		}, "overlay extra: key.asc holds a private key"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := c.setup(dir); err != nil {
				t.Fatal(err)
			}
			err := Apply(tree.New(), Dir(dir), "extra", nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Apply: %v, want an error containing %q", err, c.want)
			}
			if err := Check(dir); err == nil || !strings.Contains("overlay extra: "+err.Error(), c.want) {
				t.Fatalf("Check: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// fulcrum.service stops Fulcrum with SIGINT, which works at any time, and
// not with FulcrumAdmin, whose port opens only after the first index; it
// starts only when the first-boot agent's memory plan lets it.
func TestFulcrumUnit(t *testing.T) {
	b, err := fs.ReadFile(Fulcrum(), "etc/systemd/system/fulcrum.service")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, want := range []string{"KillSignal=SIGINT", "TimeoutStopSec=300", "ConditionPathExists=/run/nodebake/fulcrum-may-start", "Requires=bitcoind.service"} {
		if !lines[want] {
			t.Errorf("fulcrum.service lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(string(b), "ExecStop=") || strings.Contains(string(b), "FulcrumAdmin -p") {
		t.Errorf("fulcrum.service must not stop Fulcrum through FulcrumAdmin:\n%s", b)
	}
}

package artifact

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// released writes a tarball to disk as a verified Release.
func released(t *testing.T, name string, files map[string]string) *Release {
	t.Helper()
	tb := tarGz(t, files)
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, tb, 0o644); err != nil {
		t.Fatal(err)
	}
	return &Release{TarballName: name, Tarball: p, SHA256: sha(tb)}
}

func TestFilesFindsBaseNamesInAnyLayout(t *testing.T) {
	for _, tc := range []struct {
		tarball string
		files   map[string]string
		want    map[string]string // base name → path in the tarball
	}{{
		tarball: "Fulcrum-1.11.1-x86_64-linux.tar.gz",
		files: map[string]string{
			"Fulcrum-1.11.1-amd64-linux/Fulcrum":       "\x7fELF 1.11.1",
			"Fulcrum-1.11.1-amd64-linux/FulcrumAdmin":  "#!/usr/bin/env python3\n",
			"Fulcrum-1.11.1-amd64-linux/man/Fulcrum.1": "man page",
		},
		want: map[string]string{"Fulcrum": "Fulcrum-1.11.1-amd64-linux/Fulcrum", "FulcrumAdmin": "Fulcrum-1.11.1-amd64-linux/FulcrumAdmin"},
	}, {
		tarball: "Fulcrum-2.1.1-x86_64-linux.tar.gz",
		files: map[string]string{
			"Fulcrum-2.1.1-x86_64-linux/Fulcrum":      "\x7fELF 2.1.1",
			"Fulcrum-2.1.1-x86_64-linux/FulcrumAdmin": "#!/usr/bin/env python3\n",
		},
		want: map[string]string{"Fulcrum": "Fulcrum-2.1.1-x86_64-linux/Fulcrum", "FulcrumAdmin": "Fulcrum-2.1.1-x86_64-linux/FulcrumAdmin"},
	}, {
		tarball: "bitcoin-30.2-x86_64-linux-gnu.tar.gz",
		files: map[string]string{
			"bitcoin-30.2/bin/bitcoind":         "\x7fELF bitcoind",
			"bitcoin-30.2/bin/bitcoin-cli":      "\x7fELF bitcoin-cli",
			"bitcoin-30.2/libexec/bitcoin-node": "\x7fELF node",
			"bitcoin-30.2/README.md":            "readme",
		},
		want: map[string]string{"bitcoind": "bitcoin-30.2/bin/bitcoind", "bitcoin-cli": "bitcoin-30.2/bin/bitcoin-cli"},
	}} {
		rel := released(t, tc.tarball, tc.files)
		var names []string
		for n := range tc.want {
			names = append(names, n)
		}
		got, err := rel.Files(names)
		if err != nil {
			t.Fatalf("%s: %v", tc.tarball, err)
		}
		for n, p := range tc.want {
			f := got[n]
			if f.Path != p || f.Mode != 0o755 || string(f.Data) != tc.files[p] {
				t.Errorf("%s: %s = %s %v %q, want %s 0755 %q", tc.tarball, n, f.Path, f.Mode, f.Data, p, tc.files[p])
			}
		}
	}
}

func TestFilesRefuses(t *testing.T) {
	rel := released(t, "Fulcrum-2.1.1-x86_64-linux.tar.gz", map[string]string{
		"Fulcrum-2.1.1-x86_64-linux/Fulcrum":         "\x7fELF",
		"Fulcrum-2.1.1-x86_64-linux/extra/Fulcrum":   "\x7fELF other",
		"Fulcrum-2.1.1-x86_64-linux/FulcrumAdmin":    "#!/usr/bin/env python3\n",
		"Fulcrum-2.1.1-x86_64-linux/LICENSE.txt":     "license",
		"Fulcrum-2.1.1-x86_64-linux/FulcrumAdmin.md": "doc",
	})
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"Fulcrum"}, "Fulcrum-2.1.1-x86_64-linux.tar.gz: two files named Fulcrum (Fulcrum-2.1.1-x86_64-linux/Fulcrum and Fulcrum-2.1.1-x86_64-linux/extra/Fulcrum): cannot tell which to install"},
		{[]string{"FulcrumAdmin", "bitcoind", "Fulcrum-2.1.1-x86_64-linux"}, "Fulcrum-2.1.1-x86_64-linux.tar.gz: no regular file named Fulcrum-2.1.1-x86_64-linux, bitcoind in the tarball"},
	} {
		if _, err := rel.Files(tc.names); err == nil || err.Error() != tc.want {
			t.Errorf("Files(%v):\ngot  %v\nwant %s", tc.names, err, tc.want)
		}
	}

	// An optional name may be missing; a required one may not.
	got, err := rel.Files([]string{"LICENSE.txt"}, "FulcrumAdmin", "FulcrumAdmin.exe")
	if err != nil || got["FulcrumAdmin"].Path != "Fulcrum-2.1.1-x86_64-linux/FulcrumAdmin" || len(got) != 2 {
		t.Errorf("optional FulcrumAdmin: %v, %v", got, err)
	}
	if _, err := rel.Files([]string{"FulcrumAdmin.exe"}, "FulcrumAdmin"); err == nil || !strings.Contains(err.Error(), "no regular file named FulcrumAdmin.exe") {
		t.Errorf("a missing required name beside an optional one: %v", err)
	}

	// Swapped after verification: refused, though it is a good tarball.
	other := released(t, "x.tar.gz", map[string]string{"d/FulcrumAdmin": "#!/bin/sh\n"})
	rel.Tarball = other.Tarball
	_, err = rel.Files([]string{"FulcrumAdmin"})
	if err == nil || !strings.Contains(err.Error(), "Fulcrum-2.1.1-x86_64-linux.tar.gz: changed since it was verified (sha256 "+other.SHA256) {
		t.Errorf("swapped tarball: %v", err)
	}
}

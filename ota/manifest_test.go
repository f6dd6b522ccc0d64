package ota

import (
	"strings"
	"testing"
)

// goodManifest is a manifest that validate accepts.
func goodManifest() Manifest {
	sum := strings.Repeat("ab", 32)
	return Manifest{
		Format: Format, Name: "node", Version: "2.0.0", Compatible: "node", KernelArgs: "console=ttyS0 quiet",
		Partitions: Partitions{
			RootA: "0b7c9a52-2c0e-4d7e-9a39-7f6b0c1e2d3a",
			RootB: "1b7c9a52-2c0e-4d7e-9a39-7f6b0c1e2d3a",
			Data:  "5f1d7c2e-8a44-4b0b-b6c1-0d2e3f4a5b6c",
		},
		Verity:     Verity{RootHash: sum, Salt: "00", DataBlocks: 2, HashOffset: 8192},
		Root:       File{Size: 12288, SHA256: sum},
		RootFS:     File{Size: 8192, SHA256: sum},
		VerityData: File{Size: 4096, SHA256: sum},
		Kernel:     File{Size: 1, SHA256: sum},
		Initrd:     File{Size: 1, SHA256: sum},
		RootIndex:  &File{Size: 1, SHA256: sum},
	}
}

// A signed manifest's name, version and compatibility id become lines of
// the boot entry: a line break in one would add lines of the signer's
// choosing (options init=/bin/sh), so validate refuses anything but the
// characters the image spec allows.
func TestManifestIdentity(t *testing.T) {
	if m := goodManifest(); m.validate() != nil {
		t.Fatalf("the good manifest: %v", m.validate())
	}
	for name, c := range map[string]struct {
		edit func(m *Manifest)
		want string
	}{
		"version line break":    {func(m *Manifest) { m.Version = "2.0.0\noptions init=/bin/sh" }, `manifest: version "2.0.0\noptions init=/bin/sh": want a version`},
		"version carriage ret.": {func(m *Manifest) { m.Version = "2.0.0\r" }, "manifest: version "},
		"version space":         {func(m *Manifest) { m.Version = "2.0 beta" }, "manifest: version "},
		"name line break":       {func(m *Manifest) { m.Name = "node\nlinux /evil" }, `manifest: name "node\nlinux /evil": want 1–63 lower-case letters`},
		"compatible slash":      {func(m *Manifest) { m.Compatible = "node/x" }, "manifest: compatible "},
		"name upper case":       {func(m *Manifest) { m.Name = "Node" }, "manifest: name "},
	} {
		t.Run(name, func(t *testing.T) {
			m := goodManifest()
			c.edit(&m)
			if err := m.validate(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("validate() = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

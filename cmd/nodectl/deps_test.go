package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The device agent carries none of the builder's machinery: no FAT or
// squashfs writer, no image assembly, no bundle making. Those packages are
// only what the builder needs, and on a device they would be dead weight
// and attack surface in a root-run program.
func TestNoBuilderCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	banned := []string{
		"github.com/diskfs/go-diskfs/filesystem", // FAT32, squashfs, ext4, ISO writers
		"github.com/nodebake/nodebake/internal/disk",
		"github.com/nodebake/nodebake/ota/bundler",
		"github.com/nodebake/nodebake/build",
		"github.com/nodebake/nodebake/internal/squashfs",
		"github.com/nodebake/nodebake/internal/rootfs",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, b := range banned {
			if dep == b || strings.HasPrefix(dep, b+"/") {
				t.Errorf("nodectl depends on %s", dep)
			}
		}
	}
}

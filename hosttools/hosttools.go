// Package hosttools checks, before any work starts, that the programs a
// command runs are installed, and names the Debian package of each one
// that is missing.
package hosttools

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Tool is a program (or file) and the Debian package that provides it.
type Tool struct {
	Name    string // looked up on PATH, or a path if it starts with "/"
	Package string
}

// Build is what `nodebake build` runs.
var Build = []Tool{
	{"mmdebstrap", "mmdebstrap"},
	{"tar2sqfs", "squashfs-tools-ng"},
	{"go", "golang (or Go from go.dev)"},
}

// Check returns an error naming every missing tool and the apt-get line
// that installs them.
func Check(tools []Tool) error {
	var missing, pkgs []string
	for _, t := range tools {
		var err error
		if strings.HasPrefix(t.Name, "/") {
			_, err = os.Stat(t.Name)
		} else {
			_, err = exec.LookPath(t.Name)
		}
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s (package %s)", t.Name, t.Package))
			pkgs = append(pkgs, t.Package)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("missing host tools: %s\n  install them with: sudo apt-get install %s", strings.Join(missing, ", "), strings.Join(pkgs, " "))
}

package spec

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nodebake/nodebake/internal/overlays"
)

// checkOverlay applies the overlay rule: an overlay is a subfolder of the
// folder image.yaml is in, after resolving symlinks, holding only plain
// files and folders and no private key. A spec names folders by path, and
// a spec from elsewhere (a cloned repository) could otherwise copy ~/.ssh
// or the update-signing key into an image that is then published. The spec's
// folder itself is refused too: it holds image.yaml and, as the README
// suggests, keys/.
func (s *Spec) checkOverlay(o string) error {
	dir := o
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(s.Dir, dir)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	home, err := filepath.EvalSymlinks(s.Dir)
	if err != nil {
		return fmt.Errorf("resolving the spec's folder: %w", err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("resolving %s: %w", dir, err)
	}
	rel, err := filepath.Rel(home, real)
	switch {
	case err == nil && rel == ".":
		return fmt.Errorf("%s is the spec's own folder, which holds image.yaml and often keys/: name a subfolder of it", dir)
	case err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)):
		return fmt.Errorf("%s is outside %s: an overlay must be a subfolder of the folder image.yaml is in (after resolving symlinks), so that nothing else on this machine (~/.ssh, signing keys) ends up in an image", dir, home)
	}
	if err := overlays.Check(real); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	return nil
}

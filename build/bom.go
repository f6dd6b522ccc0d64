package build

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodebake/nodebake/internal/artifact"
	"github.com/nodebake/nodebake/internal/rootfs"
	"github.com/nodebake/nodebake/internal/sbom"
	"github.com/nodebake/nodebake/internal/tree"
	"github.com/nodebake/nodebake/spec"
)

// sbomCreator is the nodebake that made the image, as an SPDX tool name.
func sbomCreator(o Options) string {
	if o.Release != nil {
		return "nodebake-" + o.Release.Main.Version
	}
	return "nodebake-devel"
}

// SBOMPath is where the bill of materials is written beside an image.
func SBOMPath(image string) string {
	return strings.TrimSuffix(image, ".img") + ".spdx.json"
}

// writeSBOM writes the image's bill of materials to out: the Debian
// packages as the root's dpkg status has them, and the verified releases.
//
// creator names the tool as SPDX asks ("nodebake-VERSION").
func writeSBOM(out string, t *tree.Tree, s *spec.Spec, image, sum, creator string, epoch time.Time, releases []verified) error {
	status, err := t.ReadFile("var/lib/dpkg/status")
	if err != nil {
		return fmt.Errorf("bill of materials: %w", err)
	}
	pkgs, err := rootfs.ParseStatus(status)
	if err != nil {
		return fmt.Errorf("bill of materials: %w", err)
	}
	img := sbom.Image{
		File: filepath.Base(image), Name: s.Name, Version: s.Version, SHA256: sum, Suite: s.Debian.Suite,
		Created: epoch, Packages: pkgs,
	}
	base := map[string]string{}
	s.Artifacts.Each(func(kind string, c *artifact.Config) { base[kind] = strings.TrimSuffix(c.BaseURL, "/") + "/" })
	for _, v := range releases {
		img.Releases = append(img.Releases, sbom.Release{
			Kind: v.kind, Version: v.rel.Version, URL: base[v.kind] + v.rel.TarballName, SHA256: v.rel.SHA256,
		})
	}
	var b bytes.Buffer
	if err := sbom.Write(&b, sbom.Document(img, creator)); err != nil {
		return fmt.Errorf("bill of materials: %w", err)
	}
	return os.WriteFile(out, b.Bytes(), 0o644)
}

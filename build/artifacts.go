package build

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/artifact"
	"github.com/nodebake/nodebake/internal/rootfs"
	"github.com/nodebake/nodebake/internal/tree"
	"github.com/nodebake/nodebake/spec"
)

// binaries are the files each release contributes to /usr/local/bin, found
// by name wherever the tarball keeps them.
var binaries = map[string][]string{
	contract.BitcoinCore: {"bitcoind", "bitcoin-cli"},
	contract.Fulcrum:     {"Fulcrum"},
}

// optionalBinaries are installed when the tarball has them. Nothing on the
// image needs FulcrumAdmin (fulcrum.service stops Fulcrum with SIGINT); it
// is there for the admin, as in the guide.
var optionalBinaries = map[string][]string{
	contract.Fulcrum: {"FulcrumAdmin"},
}

// FulcrumVersionPath tells the first-boot agent which Fulcrum the image
// carries: 1.x and 2.x take different memory settings.
const FulcrumVersionPath = "usr/share/nodebake/fulcrum-version"

// verified is a release whose signatures and hash checked out, with the
// files it contributes.
type verified struct {
	kind  string
	rel   *artifact.Release
	files map[string]artifact.File
}

// fetchArtifacts fetches and verifies every release the spec pins. It runs
// before anything else so that a bad or unreachable release stops the
// build at once.
func fetchArtifacts(ctx context.Context, s *spec.Spec, o Options, progress io.Writer) ([]verified, error) {
	var all []verified
	var err error
	s.Artifacts.Each(func(kind string, c *artifact.Config) {
		if err != nil {
			return
		}
		var rel *artifact.Release
		rel, err = artifact.Fetch(ctx, *c, artifact.FetchOptions{
			CacheDir: o.CacheDir, Mirror: o.Mirror, Offline: o.Offline, KeyDir: s.Dir, Progress: progress,
		})
		if err != nil {
			return
		}
		var files map[string]artifact.File
		if files, err = rel.Files(binaries[kind], optionalBinaries[kind]...); err != nil {
			return
		}
		if progress != nil {
			fmt.Fprintf(progress, "  %s %s: sha256 %s, signed by %v\n", kind, rel.Version, rel.SHA256, rel.Signers)
		}
		all = append(all, verified{kind, rel, files})
	})
	return all, err
}

// FulcrumBanner is the banner the first-boot agent gives Fulcrum.
const FulcrumBanner = "usr/share/nodebake/fulcrum-banner.txt"

// installArtifacts puts verified binaries into the tree and describes them
// for the manifest. A demo image's Fulcrum banner says what it is.
func installArtifacts(t *tree.Tree, s *spec.Spec, all []verified) ([]contract.Artifact, error) {
	if s.Demo && s.Artifacts.Fulcrum != nil {
		banner, err := t.ReadFile(FulcrumBanner)
		if err != nil {
			return nil, fmt.Errorf("demo banner: %w", err)
		}
		t.WriteFile(FulcrumBanner, append([]byte("*** "+rootfs.DemoNotice+" ***\n"), banner...), 0o644, tree.Root)
	}
	var out []contract.Artifact
	for _, v := range all {
		a := contract.Artifact{Kind: v.kind, Version: v.rel.Version, Tarball: v.rel.TarballName, SHA256: v.rel.SHA256, Signers: v.rel.Signers}
		for name, f := range v.files {
			t.WriteFile("usr/local/bin/"+name, f.Data, 0o755, tree.Root)
			a.Files = append(a.Files, "/usr/local/bin/"+name)
		}
		sort.Strings(a.Files)
		if v.kind == contract.Fulcrum {
			t.WriteFile(FulcrumVersionPath, []byte(v.rel.Version+"\n"), 0o644, tree.Root)
		}
		out = append(out, a)
	}
	return out, nil
}

// dataFormats is what the manifest records of the formats the image's
// programs write on /data (contract.Manifest.DataFormats). Bitcoin Core's
// is left out: no single number says which releases read its chainstate
// and blocks (each upgrades them as it sees fit), and nodebake does not
// guard them.
func dataFormats(artifacts []contract.Artifact) (map[string]int, error) {
	out := map[string]int{}
	for _, a := range artifacts {
		if a.Kind != contract.Fulcrum {
			continue
		}
		f, err := contract.FulcrumDBFormat(a.Version)
		if err != nil {
			return nil, err
		}
		out[contract.FulcrumDB] = f
	}
	return out, nil
}

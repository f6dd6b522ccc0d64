//go:build qemu

package qemutests

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/chunkindex"
	"github.com/nodebake/nodebake/internal/disk"
	"github.com/nodebake/nodebake/internal/squashfs"
	"github.com/nodebake/nodebake/internal/tree"
	"github.com/nodebake/nodebake/internal/verity"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

// BenchmarkDelta prints how much of a bundle a device that runs the
// shared image fetches for three kinds of update (issue #14's goals: a
// config change ≤ 2%, one Debian package upgraded ≤ 10%, a Fulcrum
// version bump printed).
//
// The updates are made from the real image: its root squashfs is
// unpacked (sqfs2tar), changed, and packed again by squashfs.Build, the
// builder's own code, with the version in the root's manifest raised and
// the verity data remade with a salt of the new version, as a release
// does. The baseline is the same tree packed the same way in this run
// (and the table says whether that rebuild is byte for byte the image's
// root). Building a second image instead would also need Debian's archive
// to hold an upgrade, which it does not offline; the package "upgrade"
// therefore changes a byte in every 4 KiB of each file of one package
// (every squashfs block of it differs, its size stays) and its version in
// dpkg's status, and the Fulcrum bump does the same to the stand-in
// Fulcrum's files. Kernel and initramfs are unchanged in all three, so a
// device copies them from its ESP; the full bundle counts them.
func BenchmarkDelta(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchDelta(b)
	}
}

func benchDelta(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	_, key := ota.GenerateKey()
	bun, err := bundler.Create(ctx, image, key, filepath.Join(dir, "bundle"), nil)
	if err != nil {
		b.Fatal(err)
	}
	m := &bun.Manifest
	info, err := disk.Inspect(image)
	if err != nil {
		b.Fatal(err)
	}
	var rootA disk.PartitionInfo
	for _, p := range info.Partitions {
		if p.Name == contract.RootA {
			rootA = p
		}
	}
	id, err := contract.ParseManifest(rootA.Manifest)
	if err != nil {
		b.Fatal(err)
	}
	// A device seeds from its running slot up to this size.
	if n := ota.RootSize(m.Slot("a").Verity); n != m.Root.Size {
		b.Errorf("ota.RootSize of the image's verity parameters is %d, its root.img %d bytes", n, m.Root.Size)
	}

	// The image's squashfs, as a file, and as a tar stream to rebuild from.
	sqfs := filepath.Join(dir, "image.sqfs")
	img, err := os.Open(image)
	if err != nil {
		b.Fatal(err)
	}
	out, err := os.Create(sqfs)
	if err != nil {
		b.Fatal(err)
	}
	_, err = io.Copy(out, io.NewSectionReader(img, rootA.Start, int64(m.Verity.HashOffset)))
	img.Close()
	out.Close()
	if err != nil {
		b.Fatal(err)
	}
	tarball := filepath.Join(dir, "root.tar")
	tf, err := os.Create(tarball)
	if err != nil {
		b.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("sqfs2tar", "--no-skip", "--root-becomes", ".", sqfs)
	cmd.Stdout, cmd.Stderr = tf, &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("sqfs2tar: %v\n%s", err, stderr.Bytes())
	}
	tf.Close()
	epoch := time.Unix(id.Epoch, 0).UTC()

	// root packs a changed copy of the tree as version v and returns its
	// root.img's chunk index.
	root := func(name, version string, change func(t *tree.Tree)) (string, *chunkindex.Index) {
		t, err := tree.FromTar(tarball)
		if err != nil {
			b.Fatal(err)
		}
		defer t.Close()
		if version != id.Version {
			mj, err := t.ReadFile(strings.TrimPrefix(contract.ManifestPath, "/"))
			if err != nil {
				b.Fatal(err)
			}
			t.WriteFile(strings.TrimPrefix(contract.ManifestPath, "/"), bytes.Replace(mj, []byte(`"version": "`+id.Version+`"`), []byte(`"version": "`+version+`"`), 1), 0o644, tree.Root)
		}
		if change != nil {
			change(t)
		}
		p := filepath.Join(dir, name+".img")
		if err := squashfs.Build(ctx, t, p, epoch, nil); err != nil {
			b.Fatal(err)
		}
		salt := sha256.Sum256([]byte(version))
		var uuid [16]byte
		if _, err := verity.FormatFile(p, salt[:], uuid); err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		st, _ := f.Stat()
		x, err := chunkindex.Build(ctx, f, st.Size(), chunkindex.Default, nil)
		if err != nil {
			b.Fatal(err)
		}
		return p, x
	}

	basePath, base := root("base", id.Version, nil)
	same := sameFS(b, basePath, sqfs, int64(m.Verity.HashOffset))
	have := map[[sha256.Size]byte]bool{}
	for _, c := range base.Chunks {
		have[c.Sum] = true
	}

	pkg, pkgFiles := upgradeable(b, tarball)
	var fulcrum []string
	for _, a := range id.Artifacts {
		if a.Kind == contract.Fulcrum {
			fulcrum = a.Files
		}
	}
	cases := []struct {
		name, goal string
		change     func(t *tree.Tree)
	}{
		{"(a) config only: one sysctl", "≤ 2%", func(t *tree.Tree) { changeSysctl(b, t) }},
		{"(b) one Debian package upgraded: " + pkg, "≤ 10%", func(t *tree.Tree) {
			touch(b, t, pkgFiles)
			bumpPackage(b, t, pkg)
		}},
		{"(c) Fulcrum version bump", "printed", func(t *tree.Tree) { touch(b, t, fulcrum) }},
	}
	fmt.Printf("\ndelta updates of the shared image (root.img %s MB, kernel %s MB, initramfs %s MB; chunks %d–%d KiB, %d KiB average; baseline rebuilt in this run, identical to the image's root: %v)\n",
		mb(m.Root.Size), mb(m.Kernel.Size), mb(m.Initrd.Size), chunkindex.Default.Min>>10, chunkindex.Default.Max>>10, 1<<(chunkindex.Default.AverageBits-10), same)
	fmt.Printf("%-48s %10s %10s %8s %8s %8s\n", "change", "full MB", "fetch MB", "fetched", "goal", "chunks")
	for n, c := range cases {
		_, x := root(fmt.Sprintf("case%d", n), id.Version+"+delta"+fmt.Sprint(n), c.change)
		var missing int64
		var chunks int
		for _, ch := range x.Chunks {
			if !have[ch.Sum] {
				missing += ch.Size
				chunks++
			}
		}
		index := int64(len(x.Encode()))
		full := x.Size() + m.Kernel.Size + m.Initrd.Size + index
		fetch := missing + index
		pct := 100 * float64(fetch) / float64(full)
		fmt.Printf("%-48s %10s %10.2f %7.2f%% %8s %4d/%d\n", c.name, mb(full), float64(fetch)/1e6, pct, c.goal, chunks, len(x.Chunks))
		b.ReportMetric(pct, fmt.Sprintf("%%-fetched-%c", 'a'+n))
	}
}

// sameFS reports whether the rebuilt root's squashfs is the image's.
func sameFS(b *testing.B, rebuilt, orig string, n int64) bool {
	x, err := os.ReadFile(rebuilt)
	if err != nil {
		b.Fatal(err)
	}
	y, err := os.ReadFile(orig)
	if err != nil {
		b.Fatal(err)
	}
	return int64(len(x)) >= n && bytes.Equal(x[:n], y[:n])
}

// changeSysctl changes one setting in the image's own sysctl.d file.
func changeSysctl(b *testing.B, t *tree.Tree) {
	ps := t.Glob("etc/sysctl.d/*.conf")
	if len(ps) == 0 {
		b.Fatal("the image has no etc/sysctl.d/*.conf")
	}
	c, err := t.ReadFile(ps[0])
	if err != nil {
		b.Fatal(err)
	}
	t.WriteFile(ps[0], append(c, []byte("vm.swappiness = 20\n")...), 0o644, tree.Root)
}

// upgradeable picks a package of the image that security updates often
// touch and lists its regular files.
func upgradeable(b *testing.B, tarball string) (string, []string) {
	t, err := tree.FromTar(tarball)
	if err != nil {
		b.Fatal(err)
	}
	defer t.Close()
	for _, pkg := range []string{"libssl3", "openssl", "libsystemd0", "tor", "curl"} {
		list, err := t.ReadFile("var/lib/dpkg/info/" + pkg + ".list")
		if err != nil {
			if l, err2 := t.ReadFile("var/lib/dpkg/info/" + pkg + ":amd64.list"); err2 == nil {
				list, err = l, nil
			}
		}
		if err != nil {
			continue
		}
		var files []string
		for _, p := range strings.Split(string(list), "\n") {
			if e, ok := t.Get(strings.TrimPrefix(p, "/")); ok && e.Type == tar.TypeReg && e.Size() > 0 {
				files = append(files, p)
			}
		}
		if len(files) > 0 {
			return pkg, files
		}
	}
	b.Fatal("none of the packages the benchmark upgrades is in the image (or dpkg's lists were removed)")
	return "", nil
}

// touch changes one byte in every 4 KiB of each file: every squashfs
// block of them differs, and their size stays.
func touch(b *testing.B, t *tree.Tree, files []string) {
	if len(files) == 0 {
		b.Fatal("no files to change")
	}
	for _, p := range files {
		p = strings.TrimPrefix(path.Clean(p), "/")
		e, ok := t.Get(p)
		if !ok {
			b.Fatalf("%s is not in the image", p)
		}
		c, err := t.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < len(c); i += 4096 {
			c[i] ^= 0x5a
		}
		t.WriteFile(p, c, e.Mode, tree.Owner{UID: e.UID, GID: e.GID})
	}
}

var versionLine = regexp.MustCompile(`(?m)^Version: (.*)$`)

// bumpPackage raises pkg's version in dpkg's status, as an upgrade does.
func bumpPackage(b *testing.B, t *tree.Tree, pkg string) {
	const status = "var/lib/dpkg/status"
	s, err := t.ReadFile(status)
	if err != nil {
		b.Fatal(err)
	}
	name := pkg
	if i := strings.Index(name, ":"); i >= 0 {
		name = name[:i]
	}
	start := bytes.Index(s, []byte("Package: "+name+"\n"))
	if start < 0 {
		b.Fatalf("dpkg status has no %s", name)
	}
	end := bytes.Index(s[start:], []byte("\n\n"))
	if end < 0 {
		end = len(s) - start
	}
	stanza := versionLine.ReplaceAll(s[start:start+end], []byte("Version: ${1}+deb12u99"))
	s = append(append(append([]byte{}, s[:start]...), stanza...), s[start+end:]...)
	t.WriteFile(status, s, 0o644, tree.Root)
}

package squashfs

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/internal/chunkindex"
	"github.com/nodebake/nodebake/internal/tree"
)

// words makes compressible text of about n bytes that depends only on
// seed, like the configuration, scripts and documentation of a root.
func words(seed uint64, n int) []byte {
	vocab := strings.Fields("the node bitcoin fulcrum electrum server block index sync peer wallet config option value true false port listen rpc user data path log level debug info warn error systemd unit service timer socket network tor onion")
	r := rand.New(rand.NewPCG(seed, seed))
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(vocab[r.IntN(len(vocab))])
		if r.IntN(12) == 0 {
			b.WriteString("\n")
		} else {
			b.WriteString(" ")
		}
	}
	return []byte(b.String())
}

// sampleTree is a root-like tree: many small files (packed into
// fragments), some larger than a squashfs block, in a few directories,
// half of them text and half incompressible.
// edit, if set, changes the file that sorts early in the root
// (etc/sysctl.d/…): every later block is the same data at a new offset.
func sampleTree(edit string) *tree.Tree {
	t := tree.New()
	for i := 0; i < 1200; i++ {
		size := 200 + (i*7919)%6000
		if i%20 == 0 {
			size = 300 << 10
		}
		dir := []string{"etc/default", "usr/lib/python3", "usr/share/doc", "usr/share/locale", "var/lib/dpkg/info"}[i%5]
		content := words(uint64(i), size)
		if i%2 == 1 {
			// Binaries and compressed documentation barely compress.
			rand.NewChaCha8([32]byte{byte(i), byte(i >> 8)}).Read(content)
		}
		t.WriteFile(fmt.Sprintf("%s/f%04d", dir, i), content, 0o644, tree.Root)
	}
	sysctl := "vm.swappiness = 10\n"
	if edit != "" {
		sysctl = edit
	}
	t.WriteFile("etc/sysctl.d/90-nodebake.conf", []byte(sysctl), 0o644, tree.Root)
	return t
}

func index(t *testing.T, path string) *chunkindex.Index {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	x, err := chunkindex.Build(context.Background(), f, st.Size(), chunkindex.Default, nil)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// The squashfs build keeps what did not change byte for byte: the same
// tree gives the same image, and two trees that differ in one small file
// (of another length, so that everything after it moves) give images
// that share nearly all their content-defined chunks — what a delta
// update does not fetch. This holds because the tar stream is sorted with
// clamped times (tree.WriteTar), the compressor and its level are fixed,
// and tar2sqfs writes blocks in stream order whatever its thread count.
func TestBuildsShareChunks(t *testing.T) {
	dir := t.TempDir()
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	build := func(name, edit string) string {
		out := filepath.Join(dir, name)
		if err := Build(context.Background(), sampleTree(edit), out, epoch, nil); err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, again := build("a.sqfs", ""), build("again.sqfs", "")
	if x, y := index(t, a), index(t, again); fmt.Sprint(x.Chunks) != fmt.Sprint(y.Chunks) {
		t.Fatal("two builds of the same tree differ")
	}
	b := build("b.sqfs", "vm.swappiness = 1\nnet.core.somaxconn = 4096\n")
	old, upd := index(t, a), index(t, b)
	have := map[[32]byte]bool{}
	for _, c := range old.Chunks {
		have[c.Sum] = true
	}
	var missing int64
	for _, c := range upd.Chunks {
		if !have[c.Sum] {
			missing += c.Size
		}
	}
	share := float64(missing) / float64(upd.Size())
	t.Logf("one changed file: %d of %d bytes (%.1f%%) in new chunks", missing, upd.Size(), 100*share)
	if share > 0.10 {
		t.Errorf("one changed file puts %.1f%% of the image in new chunks, want at most 10%%", 100*share)
	}
}

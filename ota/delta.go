package ota

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/atomicfile"
	"github.com/nodebake/nodebake/internal/chunkindex"
)

// Seed is what a device already holds of an update: the running slot's
// root and its kernel and initramfs on the ESP. A delta download takes
// from it every chunk of the new root.img (and the kernel or initramfs
// whole) whose sha256 the signed manifest and index name, and fetches
// only the rest.
//
// The running root is cut into chunks afresh, with the parameters the
// index was cut with, rather than looked up in an index recorded when the
// slot was written: that works on the first update after flashing, after
// a rollback and after any update made from a bundle file, and nothing on
// /data can go stale. It costs one read of the running root (a few
// seconds). Nothing read from the seed is trusted: each chunk is checked
// against the signed index as it is copied, and the whole root.img
// against the manifest afterwards.
type Seed struct {
	// Root is the running slot's partition (or, in tests, a file), Offset
	// where the root starts in it and Size the bytes of root it holds
	// (RootSize of the running slot's verity parameters).
	Root         string
	Offset, Size int64
	// ESP and Slot find the running kernel and initramfs; a zero ESP: none.
	ESP  ESP
	Slot string
}

// RootSize is the size of a root.img with verity parameters v: the
// squashfs up to the hash offset, then dm-verity's 4 KiB superblock and
// its sha256 hash tree of 4 KiB blocks (128 hashes a block), level by
// level up to a single block.
func RootSize(v contract.Verity) int64 {
	n, blocks := v.DataBlocks, uint64(1)
	for {
		n = (n + 127) / 128
		blocks += n
		if n <= 1 {
			break
		}
	}
	return int64(v.HashOffset + blocks*4096)
}

// Plan is what downloading a bundle will fetch; Source.Plan makes it.
type Plan struct {
	Full  int64 // bytes of the bundle's files: a full download
	Fetch int64 // bytes this download fetches (the index included)
	// Delta reports whether root.img is assembled from the seed and
	// fetched chunks; Why says why not, when it is not.
	Delta bool
	Why   string
	// Chunks and Missing count root.img's chunks, and those fetched.
	Chunks, Missing int

	index    *chunkindex.Index
	rawIndex []byte
	seed     Seed
	have     map[[sha256.Size]byte]int64 // chunk sum → offset in the seed root
	reuse    map[string]bool             // kernel or initramfs identical to the running one
}

// deltaLimit is the share of root.img above which a delta is not worth
// it: fetching that much in ranges, with the running root read besides,
// gains little over one stream.
const deltaLimit = 0.8

// Plan decides how to download the bundle whose manifest is head (as
// VerifyManifest accepted it): it fetches root.idx (checked against the
// signed manifest), cuts the seed's root the same way and counts what is
// missing. Without an index (a bundle older than format 3), with an index
// cut another way, or when the seed cannot be read, the plan is a full
// download and Why says why.
func (s Source) Plan(ctx context.Context, head *Bundle, seed Seed, progress Progress) (*Plan, error) {
	if s.f == nil {
		return nil, fmt.Errorf("no update source")
	}
	if head.parseErr != nil {
		return nil, fmt.Errorf("%s: %w", s, head.parseErr)
	}
	m := &head.Manifest
	p := &Plan{seed: seed, reuse: map[string]bool{}}
	for _, f := range m.Files() {
		p.Full += m.File(f).Size
	}
	p.Fetch = p.Full
	if m.RootIndex == nil {
		p.Why = fmt.Sprintf("the bundle (format %d) has no chunk index", m.Format)
		return p, nil
	}
	want := *m.RootIndex
	body, err := s.f.open(ctx, RootIndexFile, want)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", s, RootIndexFile, err)
	}
	var buf bytes.Buffer
	err = copyN(ctx, &buf, body, want.Size, RootIndexFile, progress)
	body.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", s, RootIndexFile, err)
	}
	sum := sha256.Sum256(buf.Bytes())
	if err := checkFile(RootIndexFile, File{int64(buf.Len()), hex.EncodeToString(sum[:])}, want); err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	p.rawIndex = buf.Bytes()
	if p.index, err = chunkindex.Decode(p.rawIndex, m.Root.Size); err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	p.Chunks = len(p.index.Chunks)
	if p.index.Params != chunkindex.Default {
		p.Why = "the bundle's chunk index is cut with parameters this device does not use"
		return p, nil
	}
	p.have, err = seedChunks(ctx, seed, p.index.Params, progress)
	if err != nil {
		p.Why = fmt.Sprintf("the running root could not be read (%v)", err)
		return p, nil
	}
	var missing int64
	for _, c := range p.index.Chunks {
		if _, ok := p.have[c.Sum]; !ok {
			missing += c.Size
			p.Missing++
		}
	}
	if float64(missing) > deltaLimit*float64(m.Root.Size) {
		p.Why = fmt.Sprintf("%d of %d chunks of %s changed", p.Missing, p.Chunks, RootFile)
		return p, nil
	}
	p.Delta = true
	p.Fetch += missing - m.Root.Size
	if seed.ESP != nil {
		for _, f := range []struct{ name, dest string }{{KernelFile, contract.KernelFile}, {InitrdFile, contract.InitrdFile}} {
			if sameFile(ctx, seed.ESP, contract.SlotDir(seed.Slot)+"/"+f.dest, m.File(f.name)) {
				p.reuse[f.name] = true
				p.Fetch -= m.File(f.name).Size
			}
		}
	}
	return p, nil
}

// sameFile reports whether the file name on esp has the size and sha256
// of want.
func sameFile(ctx context.Context, esp ESP, name string, want File) bool {
	r, err := esp.Open(name)
	if err != nil {
		return false
	}
	defer r.Close()
	hw := newHashWriter(io.Discard)
	if copyN(ctx, hw, io.LimitReader(r, want.Size+1), want.Size, name, nil) != nil {
		return false
	}
	if n, _ := r.Read(make([]byte, 1)); n != 0 {
		return false
	}
	return hw.sum() == want.SHA256
}

// seedChunks cuts the seed's root and maps each chunk's sum to its offset.
func seedChunks(ctx context.Context, seed Seed, params chunkindex.Params, progress Progress) (map[[sha256.Size]byte]int64, error) {
	f, err := os.Open(seed.Root)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	x, err := chunkindex.Build(ctx, io.NewSectionReader(f, seed.Offset, seed.Size), seed.Size, params,
		func(done int64) { progress.Report("read running root", done, seed.Size) })
	if err != nil {
		return nil, err
	}
	have := make(map[[sha256.Size]byte]int64, len(x.Chunks))
	for _, c := range x.Chunks {
		have[c.Sum] = c.Offset
	}
	return have, nil
}

// errNoRanges means the server answered a range request with the whole
// file: it does not serve ranges, and a full download is the way.
var errNoRanges = errors.New("the server does not answer range requests")

// maxRun bounds the bytes asked for in one range request.
const maxRun = 8 << 20

// DownloadPlan is Download along plan (from Plan with the same head): the
// kernel and initramfs that the running slot already has are copied from
// it, and root.img is assembled from the seed's chunks and the missing
// ones, each checked against the signed index, fetched by range. A server
// that does not serve ranges gets a full download; one that sends a chunk
// that is not what the index says gets an error, and nothing is left in
// dir.
func (s Source) DownloadPlan(ctx context.Context, head *Bundle, dir string, plan *Plan, progress Progress) (*Bundle, error) {
	if !plan.Delta {
		return s.Download(ctx, head, dir, progress)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	m := &head.Manifest
	for _, f := range []string{KernelFile, InitrdFile} {
		want := m.File(f)
		var body io.ReadCloser
		var err error
		if plan.reuse[f] {
			dest := contract.KernelFile
			if f == InitrdFile {
				dest = contract.InitrdFile
			}
			body, err = plan.seed.ESP.Open(contract.SlotDir(plan.seed.Slot) + "/" + dest)
		} else {
			body, err = s.f.open(ctx, f, want)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", s, f, err)
		}
		_, err = SaveFile(ctx, dir, f, body, want.Size, func(got File) error { return checkFile(f, got, want) }, progress)
		body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", s, f, err)
		}
	}
	if err := atomicfile.Write(filepath.Join(dir, RootIndexFile), plan.rawIndex, 0o644); err != nil {
		return nil, err
	}
	err := s.assemble(ctx, m, dir, plan, progress)
	if errors.Is(err, errNoRanges) {
		return s.Download(ctx, head, dir, progress)
	}
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(dir, SignatureFile), head.sig, 0o644); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(dir, ManifestFile), head.raw, 0o644); err != nil {
		return nil, err
	}
	return Open(dir)
}

// assemble writes dir/root.img from the seed and fetched chunks, through
// a temporary file that is renamed only when every chunk and then the
// whole file matched the signed records.
func (s Source) assemble(ctx context.Context, m *Manifest, dir string, plan *Plan, progress Progress) error {
	seed, err := os.Open(plan.seed.Root)
	if err != nil {
		return err
	}
	defer seed.Close()
	out, err := os.CreateTemp(dir, "."+RootFile+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	h := newRootHash(int64(m.Verity.HashOffset))
	w := io.MultiWriter(out, h)
	chunks := plan.index.Chunks
	buf := make([]byte, plan.index.Params.Max)
	var done int64
	for i := 0; i < len(chunks); {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := chunks[i]
		if off, ok := plan.have[c.Sum]; ok {
			b := buf[:c.Size]
			if _, err := seed.ReadAt(b, plan.seed.Offset+off); err != nil {
				return fmt.Errorf("reading the running root: %w", err)
			}
			if sha256.Sum256(b) != c.Sum {
				return fmt.Errorf("the running root changed while it was read (chunk at %d): try again", off)
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
			done += c.Size
			progress.Report("assemble "+RootFile, done, m.Root.Size)
			i++
			continue
		}
		// A run of missing chunks, fetched in one range request.
		j, n := i, int64(0)
		for j < len(chunks) && n+chunks[j].Size <= maxRun {
			if _, ok := plan.have[chunks[j].Sum]; ok {
				break
			}
			n += chunks[j].Size
			j++
		}
		body, err := s.f.openRange(ctx, RootFile, m.Root, c.Offset, n)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", s, RootFile, err)
		}
		for _, rc := range chunks[i:j] {
			b := buf[:rc.Size]
			if _, err := io.ReadFull(body, b); err != nil {
				body.Close()
				return fmt.Errorf("%s: %s: bytes %d to %d: %w", s, RootFile, rc.Offset, rc.Offset+rc.Size, err)
			}
			if sum := sha256.Sum256(b); sum != rc.Sum {
				body.Close()
				return fmt.Errorf("%s: %s: the chunk at bytes %d to %d has sha256 %x, the signed chunk index says %x: the published bundle is damaged or was changed; nothing was installed",
					s, RootFile, rc.Offset, rc.Offset+rc.Size, sum, rc.Sum)
			}
			if _, err := w.Write(b); err != nil {
				body.Close()
				return err
			}
			done += rc.Size
			progress.Report("assemble "+RootFile, done, m.Root.Size)
		}
		body.Close()
		i = j
	}
	if err := h.check(m); err != nil {
		return err
	}
	if err := out.Chmod(0o644); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(out.Name(), filepath.Join(dir, RootFile))
}

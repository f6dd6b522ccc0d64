package ota_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/disk"
	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

// deltaFixture is a device running v1 (its image file stands in for the
// disk: root-a is the seed, a folder for the ESP holds slot a's kernel
// and initramfs) and a bundle of v2 that shares v1's payload, kernel and
// initramfs.
type deltaFixture struct {
	seed   ota.Seed
	b1, b2 *ota.Bundle
}

func newDeltaFixture(t *testing.T) *deltaFixture {
	t.Helper()
	dir := t.TempDir()
	img := otatest.Image{Name: testName, Version: "1.0.0", Shared: "base"}.Build(t, dir)
	img2 := otatest.Image{Name: testName, Version: "2.0.0", Shared: "base"}.Build(t, dir)
	f := &deltaFixture{}
	var err error
	for _, c := range []struct {
		img string
		b   **ota.Bundle
	}{{img, &f.b1}, {img2, &f.b2}} {
		if *c.b, err = bundler.Create(context.Background(), c.img, testPriv, filepath.Join(t.TempDir(), "bundle"), nil); err != nil {
			t.Fatal(err)
		}
	}
	info, err := disk.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	slot, err := contract.Parse(info.ESP.Entries[0].Options)
	if err != nil {
		t.Fatal(err)
	}
	esp := t.TempDir()
	for _, c := range []struct{ name, dest string }{{ota.KernelFile, contract.KernelFile}, {ota.InitrdFile, contract.InitrdFile}} {
		r, _, err := f.b1.OpenFile(c.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ota.SaveFile(context.Background(), mkdir(t, filepath.Join(esp, contract.SlotDir("a"))), c.dest, r, f.b1.Manifest.File(c.name).Size, nil, nil); err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	rootA := otatest.Part(t, info, contract.RootA)
	f.seed = ota.Seed{Root: img, Offset: rootA.Start, Size: ota.RootSize(slot.Verity), ESP: ota.ESPDir(esp), Slot: "a"}
	if f.seed.Size != f.b1.Manifest.Root.Size {
		t.Fatalf("RootSize of v1's verity parameters is %d, its root.img is %d bytes", f.seed.Size, f.b1.Manifest.Root.Size)
	}
	return f
}

func mkdir(t *testing.T, p string) string {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// byteCounter wraps a handler and counts the body bytes it sends, by the
// last element of the request path (root.img, or a registry's blob
// digest).
type byteCounter struct {
	next http.Handler
	mu   sync.Mutex
	sent map[string]int64
	// noRanges drops requests' Range header, as a server that does not
	// serve ranges.
	noRanges bool
}

func (c *byteCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c.noRanges {
		r.Header.Del("Range")
	}
	cw := &countingWriter{ResponseWriter: w}
	c.next.ServeHTTP(cw, r)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent[filepath.Base(r.URL.Path)] += cw.n
}

func (c *byteCounter) total(names ...string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, name := range names {
		n += c.sent[name]
	}
	return n
}

func (c *byteCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = map[string]int64{}
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

// bulk lists the names under which the byteCounter sees a bundle's large
// files: the web folder's file names and the registry's blob digests.
func bulk(b *ota.Bundle) []string {
	names := []string{ota.KernelFile, ota.InitrdFile, ota.RootIndexFile, ota.RootFile}
	for _, f := range b.Manifest.Files() {
		names = append(names, "sha256:"+b.Manifest.File(f).SHA256)
	}
	return names
}

// A device that runs v1 fetches only the chunks of v2's root it lacks,
// from a web folder by range requests and from a registry by range
// requests on the blob, and reuses its kernel and initramfs; what it
// assembles is v2's bundle byte for byte.
func TestDeltaDownload(t *testing.T) {
	t.Parallel()
	f := newDeltaFixture(t)
	www := t.TempDir()
	c := &byteCounter{next: otatest.Handler(www), sent: map[string]int64{}}
	srv := httptestServer(t, c)
	ctx := context.Background()
	if err := bundler.PublishDir(ctx, f.b2, filepath.Join(www, "bundles", "v2"), testSigner, nil); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	if _, err := bundler.Publish(ctx, f.b2, host+"/node/stable:v2", testSigner, nil); err != nil {
		t.Fatal(err)
	}
	policy := ota.Policy{Key: testPub, Running: ota.Identity{Name: testName, Version: "1.0.0"}}
	full := f.b2.Manifest.Root.Size + f.b2.Manifest.Kernel.Size + f.b2.Manifest.Initrd.Size + f.b2.Manifest.RootIndex.Size

	for _, src := range []string{srv.URL + "/bundles/v2/", "oci://" + host + "/node/stable:v2"} {
		t.Run(src, func(t *testing.T) {
			s := source(t, src)
			head, err := fetchManifest(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			if err := ota.VerifyManifest(head, policy); err != nil {
				t.Fatal(err)
			}
			c.reset()
			plan, err := s.Plan(ctx, head, f.seed, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !plan.Delta || plan.Full != full || plan.Missing == 0 || plan.Missing >= plan.Chunks {
				t.Fatalf("plan: %+v", plan)
			}
			got, err := s.DownloadPlan(ctx, head, filepath.Join(t.TempDir(), "download"), plan, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := ota.Verify(ctx, got, policy, nil); err != nil {
				t.Fatalf("assembled bundle: %v", err)
			}
			otatest.SameFiles(t, f.b2, got)
			sent := c.total(bulk(f.b2)...)
			if sent != plan.Fetch {
				t.Errorf("the server sent %d bytes of the bundle's files, the plan said %d", sent, plan.Fetch)
			}
			// Only v2's manifest, verity data and the squashfs blocks
			// around them differ from v1: far less than the 3 MiB payload.
			if sent > full/5 {
				t.Errorf("the server sent %d of %d bytes: not a delta", sent, full)
			}
			t.Logf("%s: fetched %d of %d bytes (%d of %d chunks)", src, sent, full, plan.Missing, plan.Chunks)
		})
	}
}

// A server that answers range requests with the whole file gets a full
// download, which still ends in the right bundle.
func TestDeltaWithoutRanges(t *testing.T) {
	t.Parallel()
	f := newDeltaFixture(t)
	www := t.TempDir()
	c := &byteCounter{next: otatest.Handler(www), sent: map[string]int64{}, noRanges: true}
	srv := httptestServer(t, c)
	ctx := context.Background()
	if err := bundler.PublishDir(ctx, f.b2, filepath.Join(www, "bundles", "v2"), testSigner, nil); err != nil {
		t.Fatal(err)
	}
	s := source(t, srv.URL+"/bundles/v2/")
	head, err := fetchManifest(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := s.Plan(ctx, head, f.seed, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.DownloadPlan(ctx, head, filepath.Join(t.TempDir(), "download"), plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	otatest.SameFiles(t, f.b2, got)
	if n := c.sent[ota.RootFile]; n < f.b2.Manifest.Root.Size {
		t.Errorf("root.img: %d bytes sent, want the whole %d", n, f.b2.Manifest.Root.Size)
	}
}

// A bundle without a chunk index (format 2) and a device that cannot read
// its running root both plan a full download, and say why.
func TestDeltaFallbackPlans(t *testing.T) {
	t.Parallel()
	f := newDeltaFixture(t)
	www := t.TempDir()
	srv := httptestServer(t, otatest.Handler(www))
	ctx := context.Background()
	if err := bundler.PublishDir(ctx, f.b2, filepath.Join(www, "bundles", "v2"), testSigner, nil); err != nil {
		t.Fatal(err)
	}
	s := source(t, srv.URL+"/bundles/v2/")
	head, err := fetchManifest(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	seed := f.seed
	seed.Root = filepath.Join(t.TempDir(), "no-such-partition")
	plan, err := s.Plan(ctx, head, seed, nil)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Delta || plan.Fetch != plan.Full || !strings.Contains(plan.Why, "the running root could not be read") {
		t.Errorf("plan without a seed: %+v", plan)
	}

	old := f.b2.Manifest
	old.Format, old.RootIndex = 2, nil
	raw, sig, err := ota.Seal(&old, testPriv)
	if err != nil {
		t.Fatal(err)
	}
	head = ota.ManifestOnly(raw, sig)
	if plan, err = s.Plan(ctx, head, f.seed, nil); err != nil {
		t.Fatal(err)
	}
	if plan.Delta || !strings.Contains(plan.Why, "format 2) has no chunk index") {
		t.Errorf("plan for a format 2 bundle: %+v", plan)
	}
}

// A hostile or broken server: a chunk that is not what the signed index
// says is refused, and nothing is left in the download folder; a range
// answer for other bytes than asked is refused before its body is read.
func TestDeltaHostileServer(t *testing.T) {
	t.Parallel()
	f := newDeltaFixture(t)
	www := t.TempDir()
	var swap bool
	var mu sync.Mutex
	srv := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		s := swap
		mu.Unlock()
		if s && r.Header.Get("Range") != "" {
			w.Header().Set("Content-Range", "bytes 0-99/100")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(make([]byte, 100))
			return
		}
		otatest.Handler(www).ServeHTTP(w, r)
	}))
	ctx := context.Background()
	folder := filepath.Join(www, "bundles", "v2")
	if err := bundler.PublishDir(ctx, f.b2, folder, testSigner, nil); err != nil {
		t.Fatal(err)
	}
	s := source(t, srv.URL+"/bundles/v2/")
	head, err := fetchManifest(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := s.Plan(ctx, head, f.seed, nil)
	if err != nil || !plan.Delta {
		t.Fatalf("plan: %+v, %v", plan, err)
	}

	// Where v2's root first differs from v1's lies in a chunk the device
	// must fetch.
	rootImg := filepath.Join(folder, ota.RootFile)
	good := otatest.ReadFile(t, rootImg)
	r1, _, err := f.b1.OpenFile(ota.RootFile)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := io.ReadAll(r1)
	r1.Close()
	at := 0
	for at < len(old) && old[at] == good[at] {
		at++
	}
	bad := append([]byte(nil), good...)
	bad[at] ^= 0xff
	if err := os.WriteFile(rootImg, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "download")
	_, err = s.DownloadPlan(ctx, head, dir, plan, nil)
	if err == nil || !strings.Contains(err.Error(), "the signed chunk index says") {
		t.Fatalf("damaged chunk: %v", err)
	}
	for _, name := range []string{ota.RootFile, ota.ManifestFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("a refused download left %s", name)
		}
	}

	mu.Lock()
	swap = true
	mu.Unlock()
	if err := os.WriteFile(rootImg, good, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = s.DownloadPlan(ctx, head, filepath.Join(t.TempDir(), "download"), plan, nil)
	if err == nil || !strings.Contains(err.Error(), `the server sends "bytes 0-99/100"`) {
		t.Fatalf("swapped range: %v", err)
	}

	mu.Lock()
	swap = false
	mu.Unlock()
	got, err := s.DownloadPlan(ctx, head, filepath.Join(t.TempDir(), "download"), plan, nil)
	if err != nil {
		t.Fatalf("after the server was repaired: %v", err)
	}
	otatest.SameFiles(t, f.b2, got)
}

// httptestServer serves h on 127.0.0.1 until the test ends.
func httptestServer(t *testing.T, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

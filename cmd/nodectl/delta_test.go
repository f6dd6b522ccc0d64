package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/disk"
	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

// runningSlot gives a fake device running img from slot a what a real
// one has: slot a's partition (under dev/disk/by-partuuid) and its kernel
// and initramfs on the ESP, from img.
func runningSlot(t *testing.T, root, img string, b *ota.Bundle) {
	t.Helper()
	info, err := disk.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	p := otatest.Part(t, info, contract.RootA)
	write(t, root, "/dev/disk/by-partuuid/"+p.UUID, string(otatest.ReadRegion(t, img, p.Start, p.Size)))
	for _, f := range []struct{ name, dest string }{{ota.KernelFile, contract.KernelFile}, {ota.InitrdFile, contract.InitrdFile}} {
		r, n, err := b.OpenFile(f.name)
		if err != nil {
			t.Fatal(err)
		}
		content := make([]byte, n)
		_, err = io.ReadFull(r, content)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		write(t, root, contract.ESPMount+"/"+contract.SlotDir("a")+"/"+f.dest, string(content))
	}
}

// A device that holds v1 fetches v2 as a delta, and check says how much
// it will fetch. A server whose chunk is damaged gets the update refused
// before anything is written: slot b keeps its bytes and no entry is
// added; once the server is repaired the same command installs v2.
func TestUpdateDelta(t *testing.T) {
	dir := t.TempDir()
	img1 := otatest.Image{Name: "node", Version: "1.0.0", Shared: "base"}.Build(t, dir)
	img2 := otatest.Image{Name: "node", Version: "2.0.0", Shared: "base"}.Build(t, dir)
	b1, _ := bundle(t, img1, devPriv)
	b2, _ := bundle(t, img2, devPriv)
	www := t.TempDir()
	var damaged atomic.Bool
	var sent atomic.Int64
	files := http.FileServer(http.Dir(www))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if damaged.Load() && r.Header.Get("Range") != "" {
			rec := httptest.NewRecorder()
			files.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			body[0] ^= 0xff
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(body)
			return
		}
		cw := &countingWriter{ResponseWriter: w, n: &sent}
		files.ServeHTTP(cw, r)
	}))
	defer srv.Close()
	if err := bundler.PublishDir(context.Background(), b2, filepath.Join(www, "v2"), devSigner, nil); err != nil {
		t.Fatal(err)
	}
	root := fakeDevice(t, img1, devKey, srv.URL+"/v2/")
	runningSlot(t, root, img1, b1)

	out := mustRun(t, "update", "check", "-root", root)
	if !strings.Contains(out, "update available: node 2.0.0 (running 1.0.0)") || !strings.Contains(out, "(delta: ") {
		t.Errorf("check:\n%s", out)
	}

	slotB := filepath.Join(root, "dev/disk/by-partuuid", contract.UUID("node", contract.RootB))
	before := readFile(t, slotB)
	damaged.Store(true)
	mustFail(t, "the signed chunk index says", "update", "apply", "-root", root)
	damaged.Store(false)
	if !bytes.Equal(readFile(t, slotB), before) {
		t.Error("a refused update wrote slot b")
	}
	wantEntries(t, root, "nodebake-a.conf")
	if _, err := os.Stat(filepath.Join(root, contract.ESPMount, contract.SlotDir("b"))); err == nil {
		if left, _ := os.ReadDir(filepath.Join(root, contract.ESPMount, contract.SlotDir("b"))); len(left) != 0 {
			t.Errorf("a refused update left slot b's files on the ESP: %v", left)
		}
	}

	sent.Store(0)
	out = mustRun(t, "update", "apply", "-root", root)
	if !strings.Contains(out, "(delta: ") || !strings.Contains(out, "slot b holds node 2.0.0") {
		t.Errorf("apply:\n%s", out)
	}
	wantEntries(t, root, "nodebake-a.conf", "nodebake-b+3.conf")
	r, n, err := b2.OpenFile(ota.RootFile)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, n)
	_, err = io.ReadFull(r, want)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, slotB)[:n], want) {
		t.Error("slot b does not hold v2's root.img")
	}
	if full := b2.Manifest.Root.Size; sent.Load() > full/4 {
		t.Errorf("the server sent %d bytes for a %d-byte root.img: not a delta", sent.Load(), full)
	}
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}

package artifact

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// tarGz packs files (path → content) as a release tarball does: folders
// first, executables 0755.
func tarGz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	var names []string
	dirs := map[string]bool{}
	for n := range files {
		names = append(names, n)
		for d := path.Dir(n); d != "."; d = path.Dir(d) {
			dirs[d+"/"] = true
		}
	}
	for d := range dirs {
		names = append(names, d)
	}
	sort.Strings(names) // a folder sorts before what it holds
	for _, n := range names {
		hdr := &tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: 0o755}
		if !dirs[n] {
			hdr = &tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(files[n]))}
			if strings.HasPrefix(files[n], "#!") || strings.HasPrefix(files[n], "\x7fELF") {
				hdr.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// fixture is a small release signed by test keys, laid out like Fulcrum's.
// Tests change its parts (re-sign, swap keys, tamper) before serving it.
type fixture struct {
	now     time.Time
	keys    []*testKey
	tarball []byte
	sums    []byte
	sig     []byte
	keyData map[string][]byte // file name → what the key URL serves
	cfg     Config
}

const fixtureTarball = "Fulcrum-9.9.9-x86_64-linux.tar.gz"

// newFixture makes n keys, each of which signs the sums file once, and a
// config that pins them all and requires all n.
func newFixture(t *testing.T, n int) *fixture {
	t.Helper()
	f := &fixture{now: time.Now(), keyData: map[string][]byte{}}
	f.tarball = tarGz(t, map[string]string{
		"Fulcrum-9.9.9-amd64-linux/Fulcrum":      "\x7fELF fulcrum",
		"Fulcrum-9.9.9-amd64-linux/FulcrumAdmin": "#!/usr/bin/env python3\n",
		"Fulcrum-9.9.9-amd64-linux/LICENSE.txt":  "license",
	})
	f.sums = []byte(fmt.Sprintf("%s  Fulcrum-9.9.9-win64.zip\n%s  %s\n", sha([]byte("other")), sha(f.tarball), fixtureTarball))
	f.cfg = Config{
		Version:       "9.9.9",
		Tarball:       fixtureTarball,
		Sums:          "Fulcrum-9.9.9-shasums.txt",
		Signature:     "Fulcrum-9.9.9-shasums.txt.asc",
		MinSignatures: n,
	}
	for i := 0; i < n; i++ {
		k := newKey(t, fmt.Sprintf("signer%d", i+1), f.now.Add(-48*time.Hour), 0)
		f.pin(t, k)
		f.sig = append(f.sig, k.sign(t, f.now.Add(-time.Hour), f.sums)...)
	}
	return f
}

// pin adds k to the signers, its key served as <name>.asc.
func (f *fixture) pin(t *testing.T, k *testKey) {
	f.keys = append(f.keys, k)
	f.keyData[k.name+".asc"] = k.public(t)
	f.cfg.Signers = append(f.cfg.Signers, Signer{Name: k.name, Fingerprint: k.fingerprint(), Key: k.name + ".asc"})
}

// files is what a release server or mirror folder holds.
func (f *fixture) files() map[string][]byte {
	m := map[string][]byte{
		f.cfg.Tarball:   f.tarball,
		f.cfg.Sums:      f.sums,
		f.cfg.Signature: f.sig,
	}
	for n, d := range f.keyData {
		m[n] = d
	}
	return m
}

// server serves files over HTTP on loopback and counts requests per path.
type server struct {
	*httptest.Server
	mu    sync.Mutex
	hits  map[string]int
	files map[string][]byte
}

func serve(t *testing.T, files map[string][]byte) *server {
	s := &server{hits: map[string]int{}, files: files}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		data, ok := s.files[r.URL.Path[1:]]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) hit(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func (s *server) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.hits {
		n += c
	}
	return n
}

// serve publishes the fixture and points its config (release folder and key
// URLs) at the server.
func (f *fixture) serve(t *testing.T) *server {
	s := serve(t, f.files())
	f.cfg.BaseURL = s.URL + "/"
	for i := range f.cfg.Signers {
		f.cfg.Signers[i].Key = s.URL + "/" + f.cfg.Signers[i].Key
	}
	return s
}

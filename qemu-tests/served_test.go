//go:build qemu

package qemutests

import (
	"net/http"
	"path"
	"sync"
)

// served wraps the update server: it counts the body bytes sent per last
// element of the request path (a registry blob's "sha256:…" digest, a web
// folder's file name), and while damaged is set it flips the first byte
// of every answer to a range request, as a server whose copy of the
// bundle has a damaged chunk would send it.
type served struct {
	next    http.Handler
	mu      sync.Mutex
	bytes   map[string]int64
	damaged bool
}

func newServed(next http.Handler) *served { return &served{next: next, bytes: map[string]int64{}} }

func (s *served) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	damage := s.damaged && r.Header.Get("Range") != ""
	s.mu.Unlock()
	cw := &countWriter{ResponseWriter: w, damage: damage}
	s.next.ServeHTTP(cw, r)
	s.mu.Lock()
	s.bytes[path.Base(r.URL.Path)] += cw.n
	s.mu.Unlock()
}

// sent returns the bytes sent of each name since the last call, and
// starts counting anew.
func (s *served) sent() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bytes
	s.bytes = map[string]int64{}
	return b
}

func (s *served) setDamaged(on bool) {
	s.mu.Lock()
	s.damaged = on
	s.mu.Unlock()
}

type countWriter struct {
	http.ResponseWriter
	n      int64
	damage bool
}

func (w *countWriter) Write(b []byte) (int, error) {
	if w.damage && w.n == 0 && len(b) > 0 {
		b = append([]byte{b[0] ^ 0xff}, b[1:]...)
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

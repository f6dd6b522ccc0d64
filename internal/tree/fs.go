package tree

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"
)

// FS returns a read-only view of the tree as an fs.FS, for steps that read
// the userland (the initramfs builder reads kernel modules through it).
// Symlinks are reported as such and not followed.
func (t *Tree) FS() fs.FS { return treeFS{t} }

type treeFS struct{ t *Tree }

func (f treeFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	e, ok := f.t.entries[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	info := fileInfo{name: path.Base(name), e: e}
	switch e.Type {
	case tar.TypeDir:
		return &dir{info: info, list: f.children(name)}, nil
	case tar.TypeReg:
		b, err := e.content()
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &file{info: info, Reader: bytes.NewReader(b)}, nil
	case tar.TypeLink:
		return f.Open(e.Link)
	}
	return &file{info: info, Reader: bytes.NewReader(nil)}, nil
}

func (f treeFS) children(name string) []fs.DirEntry {
	prefix := name + "/"
	if name == "." {
		prefix = ""
	}
	var out []fs.DirEntry
	for _, p := range f.t.Paths() {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok || p == "." || rest == "" || strings.Contains(rest, "/") {
			continue
		}
		out = append(out, fs.FileInfoToDirEntry(fileInfo{name: rest, e: f.t.entries[p]}))
	}
	return out
}

type fileInfo struct {
	name string
	e    *Entry
}

func (i fileInfo) Name() string { return i.name }
func (i fileInfo) Size() int64  { return i.e.size }
func (i fileInfo) Mode() fs.FileMode {
	m := i.e.Mode
	switch i.e.Type {
	case tar.TypeDir:
		m |= fs.ModeDir
	case tar.TypeSymlink:
		m |= fs.ModeSymlink
	case tar.TypeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case tar.TypeBlock:
		m |= fs.ModeDevice
	case tar.TypeFifo:
		m |= fs.ModeNamedPipe
	}
	return m
}
func (i fileInfo) ModTime() time.Time { return i.e.ModTime }
func (i fileInfo) IsDir() bool        { return i.e.Type == tar.TypeDir }
func (i fileInfo) Sys() any           { return i.e }

type file struct {
	info fileInfo
	*bytes.Reader
}

func (f *file) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *file) Close() error               { return nil }

type dir struct {
	info fileInfo
	list []fs.DirEntry
	pos  int
}

func (d *dir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dir) Close() error               { return nil }
func (d *dir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: fs.ErrInvalid}
}

func (d *dir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.list[d.pos:]
	if n <= 0 {
		d.pos = len(d.list)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if n > len(rest) {
		n = len(rest)
	}
	d.pos += n
	return rest[:n], nil
}

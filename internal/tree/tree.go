// Package tree is the one in-memory description of an image's root
// filesystem: path → metadata (mode, owner, mtime, link target, xattrs) and a
// content source. Every build step edits the tree; only the last one turns it
// into bytes (a sorted tar stream that becomes the squashfs), so the order in
// which steps ran can never leak into the image.
//
// File contents stay where they are: entries read from the base userland
// tarball point at their offset in that file, added files hold their bytes.
package tree

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// Entry is one file, directory, link or device node.
type Entry struct {
	Type     byte // tar.TypeReg, TypeDir, TypeSymlink, TypeLink, TypeChar, TypeBlock, TypeFifo
	Mode     fs.FileMode
	UID, GID int
	ModTime  time.Time
	Link     string // symlink target, or hard-link target path for TypeLink
	Major    int64
	Minor    int64
	Xattrs   map[string]string // PAX SCHILY.xattr.* records (file capabilities)

	size   int64
	data   []byte   // content held in memory, or
	base   *os.File // content at offset in the base tarball
	offset int64
}

// Size is the length of a regular file's content.
func (e *Entry) Size() int64 { return e.size }

// Tree is a root filesystem under construction. Paths are clean and
// relative ("etc/hostname"); the root directory is ".".
type Tree struct {
	entries map[string]*Entry
	files   []*os.File
}

// New returns a tree holding only the root directory.
func New() *Tree {
	return &Tree{entries: map[string]*Entry{".": {Type: tar.TypeDir, Mode: 0o755}}}
}

// FromTar indexes a tar archive (such as mmdebstrap's output) without
// reading file contents; they are read from the archive when the tree is
// written. The archive must stay unchanged until Close.
func FromTar(name string) (*Tree, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	t := New()
	t.files = append(t.files, f)
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return t, nil
		}
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		p := clean(h.Name)
		e := &Entry{
			Type: h.Typeflag, Mode: permBits(h.Mode),
			UID: h.Uid, GID: h.Gid, ModTime: h.ModTime,
			Link: h.Linkname, Major: h.Devmajor, Minor: h.Devminor,
			size: h.Size,
		}
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				t.Close()
				return nil, fmt.Errorf("%s: %s is a sparse file, which the tree cannot index", name, h.Name)
			}
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if e.Xattrs == nil {
					e.Xattrs = map[string]string{}
				}
				e.Xattrs[x] = v
			}
		}
		switch h.Typeflag {
		case tar.TypeReg:
			// tar.Reader reads exact blocks, so the file position after
			// Next is where this entry's content starts.
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				t.Close()
				return nil, err
			}
			e.base, e.offset = f, off
		case tar.TypeLink:
			e.Link = clean(h.Linkname)
		case tar.TypeDir, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		default:
			t.Close()
			return nil, fmt.Errorf("%s: %s: unsupported tar entry type %q", name, h.Name, h.Typeflag)
		}
		t.entries[p] = e
	}
}

func permBits(mode int64) fs.FileMode {
	m := fs.FileMode(mode) & fs.ModePerm
	if mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

func tarMode(m fs.FileMode) int64 {
	v := int64(m & fs.ModePerm)
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}

// Close releases the base archive.
func (t *Tree) Close() error {
	var first error
	for _, f := range t.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	t.files = nil
	return first
}

// clean maps "./etc/", "/etc" and "etc" to "etc"; ".." cannot climb above
// the root, as in the kernel's path walk from "/".
func clean(name string) string {
	p := path.Clean("/" + name)
	if p == "/" {
		return "."
	}
	return p[1:]
}

// Get returns the entry at p.
func (t *Tree) Get(p string) (*Entry, bool) {
	e, ok := t.entries[clean(p)]
	return e, ok
}

// ReadFile returns a regular file's content. Symlinks are not followed: the
// tree describes the image, and a link's target may only exist at run time.
func (t *Tree) ReadFile(p string) ([]byte, error) {
	e, ok := t.Get(p)
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: p, Err: fs.ErrNotExist}
	}
	if e.Type != tar.TypeReg {
		return nil, &fs.PathError{Op: "read", Path: p, Err: fmt.Errorf("not a regular file (tar type %q)", e.Type)}
	}
	return e.content()
}

func (e *Entry) content() ([]byte, error) {
	if e.base == nil {
		return e.data, nil
	}
	b := make([]byte, e.size)
	_, err := e.base.ReadAt(b, e.offset)
	return b, err
}

func (e *Entry) reader() io.Reader {
	if e.base == nil {
		return bytes.NewReader(e.data)
	}
	return io.NewSectionReader(e.base, e.offset, e.size)
}

// Owner is a file's numeric owner.
type Owner struct{ UID, GID int }

// Root owns most of the image.
var Root = Owner{}

// WriteFile adds or replaces a regular file, creating missing parent
// directories (0755, root).
func (t *Tree) WriteFile(p string, data []byte, mode fs.FileMode, o Owner) {
	p = clean(p)
	t.MkdirAll(path.Dir(p), 0o755, Root)
	t.entries[p] = &Entry{Type: tar.TypeReg, Mode: mode, UID: o.UID, GID: o.GID, size: int64(len(data)), data: data}
}

// MkdirAll adds a directory and any missing parents. Existing directories
// keep their metadata.
func (t *Tree) MkdirAll(p string, mode fs.FileMode, o Owner) {
	p = clean(p)
	if p == "." {
		return
	}
	if e, ok := t.entries[p]; ok && e.Type == tar.TypeDir {
		return
	}
	t.MkdirAll(path.Dir(p), 0o755, Root)
	t.entries[p] = &Entry{Type: tar.TypeDir, Mode: mode, UID: o.UID, GID: o.GID}
}

// Symlink adds or replaces a symbolic link at p pointing to target.
func (t *Tree) Symlink(target, p string) {
	p = clean(p)
	t.MkdirAll(path.Dir(p), 0o755, Root)
	t.entries[p] = &Entry{Type: tar.TypeSymlink, Mode: 0o777, Link: target}
}

// Remove deletes p and everything below it. Removing what is not there is
// not an error: steps say what must not be in the image.
func (t *Tree) Remove(p string) {
	p = clean(p)
	prefix := p + "/"
	for k := range t.entries {
		if k == p || strings.HasPrefix(k, prefix) {
			delete(t.entries, k)
		}
	}
	if p == "." {
		t.entries["."] = &Entry{Type: tar.TypeDir, Mode: 0o755}
	}
}

// RemoveMatch deletes every entry for which match returns true, and
// everything below it.
func (t *Tree) RemoveMatch(match func(p string, e *Entry) bool) {
	// One pass to match, one to delete: trimming removes thousands of
	// files from trees of tens of thousands, where a Remove per file
	// would scan the tree each time.
	gone := map[string]bool{}
	for p, e := range t.entries {
		if p != "." && match(p, e) {
			gone[p] = true
		}
	}
	if len(gone) == 0 {
		return
	}
	for p := range t.entries {
		for d := p; d != "."; d = path.Dir(d) {
			if gone[d] {
				delete(t.entries, p)
				break
			}
		}
	}
}

// Paths lists every path in sorted order.
func (t *Tree) Paths() []string {
	ps := make([]string, 0, len(t.entries))
	for p := range t.entries {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// Glob returns the sorted paths matching pattern (path.Match syntax).
func (t *Tree) Glob(pattern string) []string {
	var out []string
	for _, p := range t.Paths() {
		if ok, _ := path.Match(pattern, p); ok {
			out = append(out, p)
		}
	}
	return out
}

// WriteTar writes the tree as a tar stream in sorted path order, every
// modification time clamped to at most epoch, no user or group names, no
// access or change times: the same tree always gives the same bytes.
func (t *Tree) WriteTar(w io.Writer, epoch time.Time) error {
	tw := tar.NewWriter(w)
	for _, p := range t.Paths() {
		e := t.entries[p]
		name := p
		switch {
		case p == ".":
			name = "./"
		case e.Type == tar.TypeDir:
			name = p + "/"
		}
		h := &tar.Header{
			Typeflag: e.Type, Name: name, Mode: tarMode(e.Mode),
			Uid: e.UID, Gid: e.GID, ModTime: clamp(e.ModTime, epoch),
			Linkname: e.Link, Devmajor: e.Major, Devminor: e.Minor,
			Format: tar.FormatPAX,
		}
		if e.Type == tar.TypeLink {
			target, ok := t.entries[e.Link]
			if !ok || target.Type != tar.TypeReg {
				return fmt.Errorf("tree: %s is a hard link to %s, which is no longer a file in the image", p, e.Link)
			}
		}
		if e.Type == tar.TypeReg {
			h.Size = e.size
		}
		if len(e.Xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.Xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("tree: %s: %w", p, err)
		}
		if e.Type == tar.TypeReg {
			if _, err := io.Copy(tw, e.reader()); err != nil {
				return fmt.Errorf("tree: %s: %w", p, err)
			}
		}
	}
	return tw.Close()
}

func clamp(t, epoch time.Time) time.Time {
	if t.IsZero() || t.After(epoch) {
		return epoch
	}
	return t.Truncate(time.Second)
}

// FilterXattrs removes every extended attribute for which keep returns
// false and returns the paths that lost one.
func (t *Tree) FilterXattrs(keep func(name string) bool) []string {
	var changed []string
	for _, p := range t.Paths() {
		e := t.entries[p]
		for k := range e.Xattrs {
			if !keep(k) {
				delete(e.Xattrs, k)
				if len(changed) == 0 || changed[len(changed)-1] != p {
					changed = append(changed, p)
				}
			}
		}
	}
	return changed
}

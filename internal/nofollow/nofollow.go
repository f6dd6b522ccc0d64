// Package nofollow lets root work in folders that a less trusted user can
// change, such as a service's data folder or a home, without being tricked
// into reading, writing, chmodding or chowning a file somewhere else.
//
// A Dir is a folder held open by a file descriptor. Its methods take one
// name in it, never a path, and act on that name itself through the *at
// system calls: a symbolic link is never followed, and a name that is not
// what the method expects (a link, a FIFO, a folder) is refused with an
// error that says so. The folder stays the one that was opened even if it
// is renamed, or replaced by a link, while the Dir is in use.
//
// os.Root is not enough here. It keeps lookups inside a folder, but it
// follows links that stay inside, even when OpenFile is given O_NOFOLLOW.
// A link to another file in the same folder then lets the folder's owner
// make root copy one of its files into another (fulcrum.conf is readable
// by the fulcrum group, key.pem by fulcrum only), or chmod one file when
// root means another. Refusing every link is simpler to reason about, and
// nothing the agent manages needs one.
package nofollow

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

var (
	// ErrSymlink says that a name is a symbolic link.
	ErrSymlink = errors.New("is a symbolic link")
	// ErrNotRegular says that a name is not a regular file.
	ErrNotRegular = errors.New("is not a regular file")
	// ErrTooLarge says that a file is larger than its reader accepts.
	ErrTooLarge = errors.New("is too large")
)

// Dir is an open folder.
type Dir struct {
	f *os.File
}

// Open opens the folder at path. The caller names it and trusts every
// folder on the way: links in path are followed. Folders below it are
// opened with OpenDir or MkdirAll, which follow none.
func Open(path string) (*Dir, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	return &Dir{f}, nil
}

// Path is the folder's path, as it was opened: for messages.
func (d *Dir) Path() string { return d.f.Name() }

// Join is the path of name in d: for messages.
func (d *Dir) Join(name string) string { return filepath.Join(d.f.Name(), name) }

// File is the folder itself, to read or set its mode and owner.
func (d *Dir) File() *os.File { return d.f }

// Close closes the folder.
func (d *Dir) Close() error { return d.f.Close() }

// Sync makes a creation, rename or removal in d durable.
func (d *Dir) Sync() error {
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", d.Path(), err)
	}
	return nil
}

func (d *Dir) fd() int { return int(d.f.Fd()) }

func (d *Dir) pathError(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: d.Join(name), Err: err}
}

// whyNot turns the error of an open with O_NOFOLLOW into ErrSymlink when
// name is a link: Linux says ELOOP, or ENOTDIR when a folder was asked for.
func (d *Dir) whyNot(name string, err error) error {
	if err != unix.ELOOP && err != unix.ENOTDIR {
		return err
	}
	var st unix.Stat_t
	if unix.Fstatat(d.fd(), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return ErrSymlink
	}
	return err
}

// checkName refuses what is not one name in the folder.
func (d *Dir) checkName(op, name string) error {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return d.pathError(op, name, errors.New("not a single name in the folder"))
	}
	return nil
}

func (d *Dir) openat(op, name string, flags int, perm uint32) (int, error) {
	if err := d.checkName(op, name); err != nil {
		return -1, err
	}
	for {
		fd, err := unix.Openat(d.fd(), name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, d.pathError(op, name, d.whyNot(name, err))
		}
		return fd, nil
	}
}

// OpenDir opens the folder rel below d, a slash-separated relative path,
// one element at a time: it fails with ErrSymlink if any element is a link.
// "" or "." opens d again.
func (d *Dir) OpenDir(rel string) (*Dir, error) { return d.walk(rel, false, 0) }

// MkdirAll is OpenDir that first creates the missing folders on the way
// with perm, owned by the caller.
func (d *Dir) MkdirAll(rel string, perm fs.FileMode) (*Dir, error) { return d.walk(rel, true, perm) }

func (d *Dir) walk(rel string, create bool, perm fs.FileMode) (*Dir, error) {
	cur, err := d.sub(".")
	if err != nil {
		return nil, err
	}
	for _, name := range strings.Split(rel, "/") {
		if name == "" || name == "." {
			continue
		}
		next, err := cur.sub(name)
		if create && errors.Is(err, fs.ErrNotExist) {
			if err = cur.Mkdir(name, perm); err == nil || errors.Is(err, fs.ErrExist) {
				next, err = cur.sub(name)
			}
		}
		cur.Close()
		if err != nil {
			return nil, err
		}
		cur = next
	}
	return cur, nil
}

func (d *Dir) sub(name string) (*Dir, error) {
	var fd int
	var err error
	if name == "." {
		fd, err = unix.Openat(d.fd(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, d.pathError("open", ".", err)
		}
		return &Dir{os.NewFile(uintptr(fd), d.Path())}, nil
	}
	if fd, err = d.openat("open", name, unix.O_RDONLY|unix.O_DIRECTORY, 0); err != nil {
		return nil, err
	}
	return &Dir{os.NewFile(uintptr(fd), d.Join(name))}, nil
}

// Mkdir creates the folder name with perm (less the umask).
func (d *Dir) Mkdir(name string, perm fs.FileMode) error {
	if err := d.checkName("mkdir", name); err != nil {
		return err
	}
	if err := unix.Mkdirat(d.fd(), name, uint32(perm.Perm())); err != nil {
		return d.pathError("mkdir", name, err)
	}
	return nil
}

// OpenFile opens name for reading. It must be a regular file: a link fails
// with ErrSymlink, anything else (a FIFO, a socket, a folder) with
// ErrNotRegular, and opening never blocks.
func (d *Dir) OpenFile(name string) (*os.File, error) {
	// O_NONBLOCK: opening a FIFO for reading would wait for a writer.
	fd, err := d.openat("open", name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, d.pathError("stat", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, d.pathError("open", name, ErrNotRegular)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, d.pathError("open", name, err)
	}
	return os.NewFile(uintptr(fd), d.Join(name)), nil
}

// ReadFile reads the regular file name, as OpenFile opens it, and fails
// with ErrTooLarge if it holds more than limit bytes.
func (d *Dir) ReadFile(name string, limit int64) ([]byte, error) {
	f, err := d.OpenFile(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, d.pathError("read", name, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit))
	}
	return b, nil
}

// OpenPath opens name itself, whatever it is, a link included, without
// opening what it refers to (O_PATH): to read its type and owner, or to
// set its owner.
func (d *Dir) OpenPath(name string) (*os.File, error) {
	fd, err := d.openat("open", name, unix.O_PATH, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), d.Join(name)), nil
}

// Lstat describes name itself; a link is not followed.
func (d *Dir) Lstat(name string) (fs.FileInfo, error) {
	f, err := d.OpenPath(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Stat()
}

// Readlink returns the target of the link name.
func (d *Dir) Readlink(name string) (string, error) {
	if err := d.checkName("readlink", name); err != nil {
		return "", err
	}
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(d.fd(), name, buf)
		if err != nil {
			return "", d.pathError("readlink", name, err)
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// Symlink creates the link name to target; it fails if name exists.
func (d *Dir) Symlink(target, name string) error {
	if err := d.checkName("symlink", name); err != nil {
		return err
	}
	if err := unix.Symlinkat(target, d.fd(), name); err != nil {
		return d.pathError("symlink", name, err)
	}
	return nil
}

// Rename gives oldname's file the name newname. Whatever newname was, a
// link included, is replaced, never followed.
func (d *Dir) Rename(oldname, newname string) error {
	if err := d.checkName("rename", oldname); err != nil {
		return err
	}
	if err := d.checkName("rename", newname); err != nil {
		return err
	}
	if err := unix.Renameat(d.fd(), oldname, d.fd(), newname); err != nil {
		return &os.LinkError{Op: "rename", Old: d.Join(oldname), New: d.Join(newname), Err: err}
	}
	return nil
}

// Link gives oldname's file the second name newname. It fails with
// fs.ErrExist if newname exists in any form, a dangling link included.
func (d *Dir) Link(oldname, newname string) error {
	if err := d.checkName("link", oldname); err != nil {
		return err
	}
	if err := d.checkName("link", newname); err != nil {
		return err
	}
	if err := unix.Linkat(d.fd(), oldname, d.fd(), newname, 0); err != nil {
		return &os.LinkError{Op: "link", Old: d.Join(oldname), New: d.Join(newname), Err: err}
	}
	return nil
}

// Remove removes name, a link itself rather than what it points to. It
// does not remove folders.
func (d *Dir) Remove(name string) error {
	if err := d.checkName("remove", name); err != nil {
		return err
	}
	if err := unix.Unlinkat(d.fd(), name, 0); err != nil {
		return d.pathError("remove", name, err)
	}
	return nil
}

// Names lists the names in d.
func (d *Dir) Names() ([]string, error) {
	again, err := d.sub(".")
	if err != nil {
		return nil, err
	}
	defer again.Close()
	return again.f.Readdirnames(-1)
}

// beforeCreate, when tests set it, runs between CreateTemp's choice of a
// name and its creation: where a racing owner of the folder would put a
// link or a FIFO.
var beforeCreate func(d *Dir, name string)

// CreateTemp creates a new file named prefix and a random suffix, mode
// 0600, open for writing, and returns it with its name. It is created with
// O_CREAT|O_EXCL|O_NOFOLLOW, so it is never a file or link that was there
// before: a name that exists is skipped for another.
func (d *Dir) CreateTemp(prefix string) (*os.File, string, error) {
	var rnd [8]byte
	for try := 0; try < 100; try++ {
		rand.Read(rnd[:])
		name := prefix + hex.EncodeToString(rnd[:])
		if beforeCreate != nil {
			beforeCreate(d, name)
		}
		fd, err := d.openat("create", name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) || errors.Is(err, ErrSymlink) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		return os.NewFile(uintptr(fd), d.Join(name)), name, nil
	}
	return nil, "", d.pathError("create", prefix+"*", errors.New("no free temporary name after 100 tries"))
}

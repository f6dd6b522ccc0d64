package firstboot

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/nodebake/nodebake/internal/atomicfile"
)

// Owner is a numeric file owner.
type Owner struct{ UID, GID int }

var rootOwner = Owner{0, 0}

// Owners reads and sets the owners of files. On the device the agent runs as
// root and uses SystemOwners; tests, which run without root, pass a plan
// that records what would be set.
type Owners interface {
	Owner(path string) (Owner, error)
	SetOwner(path string, o Owner) error
}

// SystemOwners reads owners with lstat and sets them with lchown, so a
// symlink itself is changed and never what it points to.
func SystemOwners() Owners { return systemOwners{} }

type systemOwners struct{}

func (systemOwners) Owner(path string) (Owner, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return Owner{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Owner{}, fmt.Errorf("%s: no owner information", path)
	}
	return Owner{int(st.Uid), int(st.Gid)}, nil
}

func (systemOwners) SetOwner(path string, o Owner) error { return os.Lchown(path, o.UID, o.GID) }

// files makes files, folders and links hold what they should, touching
// only what differs.
type files struct{ owners Owners }

// meta gives path the mode (permission bits; ignored for links) and owner,
// and reports whether anything had to change.
func (w files) meta(path string, mode fs.FileMode, o Owner) (bool, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return false, err
	}
	changed := false
	if fi.Mode()&fs.ModeSymlink == 0 && fi.Mode().Perm() != mode.Perm() {
		if err := os.Chmod(path, mode.Perm()); err != nil {
			return false, err
		}
		changed = true
	}
	cur, err := w.owners.Owner(path)
	if err != nil {
		return false, err
	}
	if cur != o {
		if err := w.owners.SetOwner(path, o); err != nil {
			return false, fmt.Errorf("chown %s to %d:%d: %w", path, o.UID, o.GID, err)
		}
		changed = true
	}
	return changed, nil
}

// dir makes path a folder with mode and owner. Its parent must exist.
func (w files) dir(path string, mode fs.FileMode, o Owner) (Status, error) {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(path, mode.Perm()); err != nil {
			return Failed, err
		}
		if _, err := w.meta(path, mode, o); err != nil {
			return Failed, err
		}
		return Created, nil
	case err != nil:
		return Failed, err
	case !fi.IsDir():
		return Failed, fmt.Errorf("%s exists but is not a folder: move it away and run `nodectl firstboot` again", path)
	}
	return metaStatus(w.meta(path, mode, o))
}

// tmpName is the one temporary name a file is written under, so a run
// killed mid-write leaves at most one stray file, which the next run
// replaces or removes.
func tmpName(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".nodebake-tmp")
}

// file makes path hold data, with mode and owner. A file already holding
// data is not rewritten; otherwise the data goes to a temporary file that is
// synced and renamed over path, and the folder is synced, so that a power
// cut leaves either the old or the new file.
func (w files) file(path string, data []byte, mode fs.FileMode, o Owner) (Status, error) {
	tmp := tmpName(path)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Failed, err
	}
	old, err := os.ReadFile(path)
	exists := err == nil
	if exists && bytes.Equal(old, data) {
		return metaStatus(w.meta(path, mode, o))
	}
	if err := w.writeTmp(tmp, data, mode, o); err != nil {
		os.Remove(tmp)
		return Failed, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return Failed, err
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return Failed, err
	}
	if exists {
		return Changed, nil
	}
	return Created, nil
}

func (w files) writeTmp(tmp string, data []byte, mode fs.FileMode, o Owner) error {
	// Created 0600 so that a secret is never readable by others, not even
	// for the moment before the chmod.
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(mode.Perm()); err != nil {
		return err
	}
	if err := w.owners.SetOwner(tmp, o); err != nil {
		return fmt.Errorf("chown %s to %d:%d: %w", tmp, o.UID, o.GID, err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// createOnly creates path holding data if it does not exist, and otherwise
// leaves it exactly as it is: it is the user's.
func (w files) createOnly(path string, data []byte, mode fs.FileMode, o Owner) (Status, error) {
	if _, err := os.Lstat(path); err == nil {
		return Unchanged, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Failed, err
	}
	return w.file(path, data, mode, o)
}

// symlink makes path a link to target owned by o. A link elsewhere is
// replaced; anything else at path is left alone and reported, because it
// may hold data.
func (w files) symlink(path, target string, o Owner) (Status, error) {
	cur, err := os.Readlink(path)
	switch {
	case err == nil && cur == target:
		return metaStatus(w.meta(path, 0, o))
	case err == nil:
		tmp := tmpName(path)
		os.Remove(tmp)
		if err := os.Symlink(target, tmp); err != nil {
			return Failed, err
		}
		if err := w.owners.SetOwner(tmp, o); err != nil {
			os.Remove(tmp)
			return Failed, err
		}
		if err := os.Rename(tmp, path); err != nil {
			os.Remove(tmp)
			return Failed, err
		}
		return Changed, atomicfile.SyncDir(filepath.Dir(path))
	}
	if _, lerr := os.Lstat(path); lerr == nil {
		return Failed, fmt.Errorf("%s is not a link to %s: move what it holds into %s, remove it and run `nodectl firstboot` again", path, target, target)
	} else if !errors.Is(lerr, fs.ErrNotExist) {
		return Failed, lerr
	}
	if err := os.Symlink(target, path); err != nil {
		return Failed, err
	}
	if err := w.owners.SetOwner(path, o); err != nil {
		return Failed, err
	}
	return Created, atomicfile.SyncDir(filepath.Dir(path))
}

func metaStatus(changed bool, err error) (Status, error) {
	switch {
	case err != nil:
		return Failed, err
	case changed:
		return Changed, nil
	}
	return Unchanged, nil
}

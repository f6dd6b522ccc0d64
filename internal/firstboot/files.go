package firstboot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nodebake/nodebake/internal/atomicfile"
	"github.com/nodebake/nodebake/internal/nofollow"
)

// Owner is a numeric file owner.
type Owner struct{ UID, GID int }

var rootOwner = Owner{0, 0}

// Owners reads and sets the owners of open files. On the device the agent
// runs as root and uses SystemOwners; tests, which need no root, pass a plan
// that records what would be set.
type Owners interface {
	// Owner returns the owner of f: a file, a folder, or a link opened
	// with nofollow's OpenPath.
	Owner(f *os.File) (Owner, error)
	// SetOwner sets it; a link's own owner, not its target's.
	SetOwner(f *os.File, o Owner) error
}

// SystemOwners reads owners with fstat and sets them with fchownat on the
// descriptor itself, so that only the file the agent opened is changed,
// whatever its name means by then, and a link is never followed.
func SystemOwners() Owners { return systemOwners{} }

type systemOwners struct{}

func (systemOwners) Owner(f *os.File) (Owner, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return Owner{}, &fs.PathError{Op: "stat", Path: f.Name(), Err: err}
	}
	return Owner{int(st.Uid), int(st.Gid)}, nil
}

func (systemOwners) SetOwner(f *os.File, o Owner) error {
	// AT_EMPTY_PATH: the descriptor itself, which may be an O_PATH one.
	if err := unix.Fchownat(int(f.Fd()), "", o.UID, o.GID, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "chown", Path: f.Name(), Err: err}
	}
	return nil
}

// maxRead caps what the agent reads of a file in a folder it does not own
// alone: an override, a key, a certificate.
const maxRead = 1 << 20

// files makes files, folders and links hold what they should, touching
// only what differs. It works in folders opened with package nofollow,
// which services and users own too: it never follows a link, never writes
// through a name it did not just create, and sets modes and owners on the
// descriptors of the files it opened.
type files struct{ owners Owners }

// meta gives the open f (a file, a folder, or a link: its mode is ignored)
// mode and owner, and reports whether anything had to change.
func (w files) meta(f *os.File, mode fs.FileMode, o Owner) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	cur, err := w.owners.Owner(f)
	if err != nil {
		return false, err
	}
	isLink := fi.Mode()&fs.ModeSymlink != 0
	chmod := !isLink && fi.Mode().Perm() != mode.Perm()
	if !chmod && cur == o {
		return false, nil
	}
	// A second name elsewhere (a hard link) would get the new mode and
	// owner too.
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
		return false, fmt.Errorf("%s has %d names (hard links), so changing its mode or owner would change a file elsewhere too: replace it with a copy and run `sudo nodectl firstboot`", f.Name(), st.Nlink)
	}
	if chmod {
		if err := f.Chmod(mode.Perm()); err != nil {
			return false, err
		}
	}
	if cur != o {
		if err := w.owners.SetOwner(f, o); err != nil {
			return false, fmt.Errorf("chown %s to %d:%d: %w", f.Name(), o.UID, o.GID, err)
		}
	}
	return true, nil
}

// dir makes name in parent a folder with mode and owner, and returns it
// open. A link there is refused, never followed.
func (w files) dir(parent *nofollow.Dir, name string, mode fs.FileMode, o Owner) (*nofollow.Dir, Item, error) {
	it := Item{What: parent.Join(name), Status: Failed}
	created := false
	d, err := parent.OpenDir(name)
	if errors.Is(err, fs.ErrNotExist) {
		if err := parent.Mkdir(name, mode); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, it, err
		}
		created = true
		d, err = parent.OpenDir(name)
	}
	switch {
	case errors.Is(err, nofollow.ErrSymlink):
		return nil, it, fmt.Errorf("%s is a symbolic link, not a folder (the agent follows no links): move it away and run `nodectl firstboot` again", it.What)
	case errors.Is(err, syscall.ENOTDIR):
		return nil, it, fmt.Errorf("%s exists but is not a folder: move it away and run `nodectl firstboot` again", it.What)
	case err != nil:
		return nil, it, err
	}
	changed, err := w.meta(d.File(), mode, o)
	if err != nil {
		d.Close()
		return nil, it, err
	}
	it.Status = Unchanged
	switch {
	case created:
		it.Status = Created
	case changed:
		it.Status = Changed
	}
	return d, it, nil
}

// file makes name in d hold data, with mode and owner. A file already
// holding data is not rewritten; otherwise the data goes to a new temporary
// file that is synced and renamed over name, and the folder is synced, so
// that a power cut leaves either the old or the new file. A link or
// anything else that is not a regular file at name is replaced, not
// followed.
func (w files) file(d *nofollow.Dir, name string, data []byte, mode fs.FileMode, o Owner) (Item, error) {
	it := Item{What: d.Join(name), Status: Failed}
	if err := atomicfile.RemoveTemps(d, name); err != nil {
		return it, err
	}
	f, err := d.OpenFile(name)
	exists := true
	switch {
	case err == nil:
		same, err := holds(f, data)
		if err == nil && same {
			changed, err := w.meta(f, mode, o)
			f.Close()
			if err != nil {
				return it, err
			}
			it.Status = Unchanged
			if changed {
				it.Status = Changed
			}
			return it, nil
		}
		f.Close()
		if err != nil {
			return it, err
		}
	case errors.Is(err, fs.ErrNotExist):
		exists = false
	case errors.Is(err, nofollow.ErrSymlink):
		it.Detail = "was a symbolic link: replaced by a regular file, its target left alone"
	case errors.Is(err, nofollow.ErrNotRegular):
		it.Detail = "was not a regular file: replaced"
	default:
		return it, err
	}
	own := func(f *os.File) error { return w.owners.SetOwner(f, o) }
	if err := atomicfile.Replace(d, name, data, mode, own); err != nil {
		return it, err
	}
	it.Status = Created
	if exists {
		it.Status = Changed
	}
	return it, nil
}

// holds reports whether f holds exactly data, reading no more than one byte
// beyond it.
func holds(f *os.File, data []byte) (bool, error) {
	b, err := io.ReadAll(io.LimitReader(f, int64(len(data))+1))
	if err != nil {
		return false, err
	}
	return bytes.Equal(b, data), nil
}

// createOnly creates name in d holding data if nothing is there, and
// otherwise leaves it exactly as it is, even a link (reported): it is the
// user's.
func (w files) createOnly(d *nofollow.Dir, name string, data []byte, mode fs.FileMode, o Owner) (Item, error) {
	it := Item{What: d.Join(name), Status: Unchanged}
	if fi, err := d.Lstat(name); err == nil {
		if fi.Mode()&fs.ModeSymlink != 0 {
			it.Status = Skipped
			it.Detail = name + " is a symbolic link: left as it is; the agent does not read it (the service does, with its own rights)"
		}
		return it, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return it, err
	}
	if err := atomicfile.RemoveTemps(d, name); err != nil {
		return it, err
	}
	// Create, not Replace: a file the user made meanwhile is kept.
	own := func(f *os.File) error { return w.owners.SetOwner(f, o) }
	err := atomicfile.Create(d, name, data, mode, own)
	switch {
	case err == nil:
		it.Status = Created
	case errors.Is(err, fs.ErrExist):
		it.Status = Unchanged
	default:
		return it, err
	}
	return it, nil
}

// linkTemp is the temporary name of the new link that replaces name.
func linkTemp(name string) string { return "." + name + ".nodebake-link" }

// symlink makes name in d a link to target owned by o. A link elsewhere is
// replaced; anything else at name is left alone and reported, because it
// may hold data.
func (w files) symlink(d *nofollow.Dir, name, target string, o Owner) (Item, error) {
	it := Item{What: d.Join(name) + " → " + target, Status: Failed}
	cur, err := d.Readlink(name)
	switch {
	case err == nil && cur == target:
		f, err := d.OpenPath(name)
		if err != nil {
			return it, err
		}
		defer f.Close()
		changed, err := w.meta(f, 0, o)
		if err != nil {
			return it, err
		}
		it.Status = Unchanged
		if changed {
			it.Status = Changed
		}
		return it, nil
	case err == nil:
		tmp := linkTemp(name)
		if err := d.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return it, err
		}
		if err := w.newLink(d, tmp, target, o); err != nil {
			d.Remove(tmp)
			return it, err
		}
		if err := d.Rename(tmp, name); err != nil {
			d.Remove(tmp)
			return it, err
		}
		it.Status = Changed
		return it, d.Sync()
	case errors.Is(err, syscall.EINVAL): // there, and not a link
		return it, fmt.Errorf("%s is not a link to %s: move what it holds into %s, remove it and run `nodectl firstboot` again", d.Join(name), target, target)
	case !errors.Is(err, fs.ErrNotExist):
		return it, err
	}
	if err := w.newLink(d, name, target, o); err != nil {
		return it, err
	}
	it.Status = Created
	return it, d.Sync()
}

// newLink creates the link name to target and gives it owner o.
func (w files) newLink(d *nofollow.Dir, name, target string, o Owner) error {
	if err := d.Symlink(target, name); err != nil {
		return err
	}
	f, err := d.OpenPath(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return fmt.Errorf("%s was replaced while it was made: run `nodectl firstboot` again", d.Join(name))
	}
	return w.owners.SetOwner(f, o)
}

// keep gives the regular file name in d, whose content is right, mode and
// owner.
func (w files) keep(d *nofollow.Dir, name string, mode fs.FileMode, o Owner) (Item, error) {
	it := Item{What: d.Join(name), Status: Failed}
	f, err := d.OpenFile(name)
	if err != nil {
		return it, err
	}
	defer f.Close()
	changed, err := w.meta(f, mode, o)
	if err != nil {
		return it, err
	}
	it.Status = Unchanged
	if changed {
		it.Status = Changed
	}
	return it, nil
}

// Package atomicfile writes files so that, after a power cut at any
// moment, a reader finds either the old content or the complete new one.
//
// Write and WriteNew are for folders that only the caller (and root) can
// change. Replace and Create write into a folder opened with package
// nofollow, and are safe where its owner is less trusted than the caller:
// the temporary file is new (O_CREAT|O_EXCL|O_NOFOLLOW, a random name), its
// mode and owner are set through its descriptor, and it takes its name by
// renameat or linkat in the open folder, which never follow a link.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nodebake/nodebake/internal/nofollow"
)

// Write replaces path with data. The temporary file is created 0600 and
// only then given perm, so a secret is never readable by others, not even
// while it is being written; it is fsynced before the rename, and the
// folder after it.
func Write(path string, data []byte, perm fs.FileMode) error {
	return inParent(path, func(d *nofollow.Dir, name string) error { return Replace(d, name, data, perm, nil) })
}

// WriteNew is Write for a file that must not exist yet: it fails with
// fs.ErrExist instead of replacing one.
func WriteNew(path string, data []byte, perm fs.FileMode) error {
	return inParent(path, func(d *nofollow.Dir, name string) error { return Create(d, name, data, perm, nil) })
}

func inParent(path string, write func(d *nofollow.Dir, name string) error) error {
	d, err := nofollow.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer d.Close()
	return write(d, filepath.Base(path))
}

// Replace makes name in d hold data with perm, as Write does. Whatever was
// at name, a link included, is replaced and never followed. own, unless
// nil, is called with the temporary file before it takes the name: to set
// its owner through its descriptor.
func Replace(d *nofollow.Dir, name string, data []byte, perm fs.FileMode, own func(*os.File) error) error {
	return place(d, name, data, perm, own, d.Rename)
}

// Create is Replace for a name that must not exist yet: it fails with
// fs.ErrExist if anything is at name, a dangling link included, even if it
// appeared while the file was written.
func Create(d *nofollow.Dir, name string, data []byte, perm fs.FileMode, own func(*os.File) error) error {
	return place(d, name, data, perm, own, d.Link)
}

// tempPrefix starts the temporary names of name's writes.
func tempPrefix(name string) string { return "." + name + ".tmp-" }

func place(d *nofollow.Dir, name string, data []byte, perm fs.FileMode, own func(*os.File) error, put func(tmp, name string) error) error {
	f, tmp, err := d.CreateTemp(tempPrefix(name))
	if err != nil {
		return fmt.Errorf("write %s: %w", d.Join(name), err)
	}
	defer d.Remove(tmp) // after a rename nothing is left; after a link, the extra name
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil && own != nil {
		err = own(f)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = put(tmp, name)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", d.Join(name), err)
	}
	return d.Sync()
}

// RemoveTemps removes the temporary files that writes of name left in d
// when they were cut short. Only a caller that is the one writer of name
// may call it: it would remove another writer's file in mid-write.
func RemoveTemps(d *nofollow.Dir, name string) error {
	names, err := d.Names()
	if err != nil {
		return err
	}
	for _, n := range names {
		if !strings.HasPrefix(n, tempPrefix(name)) {
			continue
		}
		if err := d.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: a temporary name that is not a file; remove it", err)
		}
	}
	return nil
}

// SyncDir makes a creation, rename or removal in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

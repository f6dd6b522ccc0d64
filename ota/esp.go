package ota

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/nodebake/nodebake/internal/atomicfile"
)

// ESP is the EFI system partition as Apply and Rollback use it. Names are
// slash-separated and relative to the ESP's root ("loader/entries/x.conf").
// On a device it is the mounted ESP (ESPDir); anything else that holds a
// FAT filesystem can implement it.
type ESP interface {
	// ReadDir lists the names of the files and directories in dir; a
	// missing dir lists nothing.
	ReadDir(dir string) ([]string, error)
	Open(name string) (io.ReadCloser, error)
	// Create makes or truncates name, creating its directory if needed.
	// Close must not return before the content is on stable storage.
	Create(name string) (io.WriteCloser, error)
	// Rename renames within one directory, replacing newname, and is
	// durable when it returns.
	Rename(oldname, newname string) error
	// Remove deletes a file, durably; a missing file is not an error.
	Remove(name string) error
}

// ESPDir is a mounted ESP, e.g. "/efi".
type ESPDir string

func (d ESPDir) path(name string) string { return filepath.Join(string(d), filepath.FromSlash(name)) }

// ReadDir implements ESP.
func (d ESPDir) ReadDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(d.path(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}

// Open implements ESP.
func (d ESPDir) Open(name string) (io.ReadCloser, error) { return os.Open(d.path(name)) }

// Create implements ESP: the file and its directory are synced on Close.
func (d ESPDir) Create(name string) (io.WriteCloser, error) {
	p := d.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(p)
	if err != nil {
		return nil, err
	}
	return syncCloser{f}, nil
}

// syncCloser syncs a file and its directory on Close.
type syncCloser struct{ *os.File }

func (s syncCloser) Close() error {
	if err := s.Sync(); err != nil {
		s.File.Close()
		return fmt.Errorf("%s: %w", s.Name(), err)
	}
	if err := s.File.Close(); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(s.Name()))
}

// Rename implements ESP.
func (d ESPDir) Rename(oldname, newname string) error {
	if path.Dir(oldname) != path.Dir(newname) {
		return fmt.Errorf("rename %s to %s: not in one directory", oldname, newname)
	}
	if err := os.Rename(d.path(oldname), d.path(newname)); err != nil {
		return err
	}
	// Linux's vfat writes the new directory entry with no clusters and
	// size 0 and fills them in only when the file's inode is written: a
	// synced directory alone would keep an empty file under the new name
	// (a QEMU power-cut test saw systemd-boot ignore such an entry).
	f, err := os.Open(d.path(newname))
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", newname, err)
	}
	return atomicfile.SyncDir(filepath.Dir(d.path(newname)))
}

// Remove implements ESP.
func (d ESPDir) Remove(name string) error {
	err := os.Remove(d.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(d.path(name)))
}

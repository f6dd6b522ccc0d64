package identity

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"

	"github.com/nodebake/nodebake/internal/firstboot"
	"github.com/nodebake/nodebake/internal/nofollow"
)

// Open decrypts and checks an archive, all of it, in memory. An error
// means the archive cannot be restored, and why.
func Open(r io.Reader, identities ...age.Identity) (Manifest, map[string][]byte, error) {
	var m Manifest
	dec, err := age.Decrypt(io.LimitReader(r, maxArchive+1), identities...)
	if err != nil {
		return m, nil, fmt.Errorf("decrypting: %w (wrong passphrase or key, or not a backup made by `nodectl backup`)", err)
	}
	// age authenticates every chunk and the end: a damaged or cut archive
	// fails here, before anything is used.
	plain, err := io.ReadAll(io.LimitReader(dec, maxArchive+1))
	if err != nil {
		return m, nil, fmt.Errorf("decrypting: %w (the archive is damaged or cut short)", err)
	}
	if len(plain) > maxArchive {
		return m, nil, fmt.Errorf("the archive holds more than %d MiB: not a nodebake identity backup", maxArchive>>20)
	}
	tr := tar.NewReader(strings.NewReader(string(plain)))
	files := map[string][]byte{}
	for i := 0; ; i++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return m, nil, fmt.Errorf("reading the archive: %w", err)
		}
		if h.Typeflag != tar.TypeReg || h.Size > maxFile {
			return m, nil, fmt.Errorf("archive member %q: not a regular file of at most %d KiB", h.Name, maxFile>>10)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return m, nil, fmt.Errorf("reading the archive: %w", err)
		}
		if i == 0 {
			if h.Name != ManifestName {
				return m, nil, fmt.Errorf("the archive does not start with %s", ManifestName)
			}
			if err := json.Unmarshal(b, &m); err != nil {
				return m, nil, fmt.Errorf("%s: %w", ManifestName, err)
			}
			if m.Format != Format {
				return m, nil, fmt.Errorf("archive format %d: this nodectl reads format %d", m.Format, Format)
			}
			continue
		}
		p := "/" + h.Name
		if _, dup := files[p]; dup {
			return m, nil, fmt.Errorf("archive member %s appears twice", p)
		}
		files[p] = b
	}
	if m.Format == 0 {
		return m, nil, errors.New("the archive is empty")
	}
	if len(files) != len(m.Files) {
		return m, nil, fmt.Errorf("the archive holds %d files, its manifest lists %d", len(files), len(m.Files))
	}
	for _, f := range m.Files {
		b, ok := files[f.Path]
		if !ok || sum(b) != f.SHA256 {
			return m, nil, fmt.Errorf("%s: missing or not what the manifest lists", f.Path)
		}
	}
	if err := check(files); err != nil {
		return m, nil, err
	}
	return m, files, nil
}

// staged is a file written beside its place, to be renamed onto it.
type staged struct {
	dir       *nofollow.Dir
	tmp, name string
}

// Restore puts the archive's files in place under root, with the owners
// and modes this image gives them (owners by name, from root's
// /etc/passwd), and returns the paths written. Files the archive does not
// hold (an override the old device did not have) are left as they are.
func Restore(root string, owners firstboot.Owners, m Manifest, files map[string][]byte) ([]string, error) {
	list, err := specs(root)
	if err != nil {
		return nil, err
	}
	known := map[string]spec{}
	for _, s := range list {
		known[s.Path] = s
	}
	var missing []string
	for _, s := range list {
		if _, ok := files[s.Path]; !ok && !s.Optional {
			missing = append(missing, s.Path)
		}
	}
	for _, f := range m.Files {
		if _, ok := known[f.Path]; !ok {
			missing = append(missing, "unknown to this image: "+f.Path)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("the archive does not fit this image (%s): restore it on a device made from the same image.yaml; nothing restored", strings.Join(missing, ", "))
	}
	owner := map[string]firstboot.Owner{}
	for _, s := range list {
		for _, u := range []string{s.Owner, s.DirOwner} {
			if u == "" || u == "root" {
				continue
			}
			if _, ok := owner[u]; ok {
				continue
			}
			if owner[u], err = firstboot.LookupUser(root, u); err != nil {
				return nil, err
			}
		}
	}
	var stage []staged
	undo := func() {
		for _, s := range stage {
			s.dir.Remove(s.tmp)
			s.dir.Close()
		}
	}
	for _, f := range m.Files {
		s := known[f.Path]
		d, err := parentDir(root, s, owners, owner[s.DirOwner])
		if err != nil {
			undo()
			return nil, fmt.Errorf("%s: %w; nothing restored", f.Path, err)
		}
		tmp, err := writeTemp(d, filepath.Base(f.Path), files[f.Path], s.Mode, owners, owner[s.Owner])
		if err != nil {
			d.Close()
			undo()
			return nil, fmt.Errorf("%s: %w; nothing restored", f.Path, err)
		}
		stage = append(stage, staged{d, tmp, filepath.Base(f.Path)})
	}
	// Every file is written and synced: now the renames, which do not
	// fail for want of space.
	var done []string
	for i, s := range stage {
		if err := s.dir.Rename(s.tmp, s.name); err != nil {
			undo()
			return done, fmt.Errorf("%s: %w (the files before it are restored: run the restore again)", m.Files[i].Path, err)
		}
		s.dir.Sync()
		done = append(done, m.Files[i].Path)
	}
	for _, s := range stage {
		s.dir.Close()
	}
	return done, nil
}

// parentDir opens the folder of s, creating it (last level only, with its
// owner and mode) if s says how.
func parentDir(root string, s spec, owners firstboot.Owners, dirOwner firstboot.Owner) (*nofollow.Dir, error) {
	d, err := openParent(root, s.Path)
	if !errors.Is(err, fs.ErrNotExist) || s.DirMode == 0 {
		return d, err
	}
	up, err := openParent(root, filepath.Dir(s.Path))
	if err != nil {
		return nil, err
	}
	defer up.Close()
	name := filepath.Base(filepath.Dir(s.Path))
	if err := up.Mkdir(name, s.DirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	d, err = up.OpenDir(name)
	if err != nil {
		return nil, err
	}
	if err := d.File().Chmod(s.DirMode); err != nil {
		d.Close()
		return nil, err
	}
	if err := owners.SetOwner(d.File(), dirOwner); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// writeTemp writes data to a new file in d and returns its name.
func writeTemp(d *nofollow.Dir, name string, data []byte, mode fs.FileMode, owners firstboot.Owners, o firstboot.Owner) (string, error) {
	f, tmp, err := d.CreateTemp("." + name + ".restore-")
	if err != nil {
		return "", err
	}
	err = writeAll(f, data, mode, owners, o)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		d.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

func writeAll(f *os.File, data []byte, mode fs.FileMode, owners firstboot.Owners, o firstboot.Owner) error {
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := owners.SetOwner(f, o); err != nil {
		return err
	}
	return f.Sync()
}

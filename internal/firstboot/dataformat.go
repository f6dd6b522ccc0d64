package firstboot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/atomicfile"
	"github.com/nodebake/nodebake/internal/dataformat"
	"github.com/nodebake/nodebake/internal/nofollow"
)

const (
	// FulcrumEnv is fulcrum.service's EnvironmentFile: it sets
	// FULCRUM_ARGS=--db-upgrade while an upgrade of Fulcrum's database is
	// under way, and is absent otherwise. /run is a tmpfs, so the flag
	// never outlives the boot whose agent decided it.
	FulcrumEnv = "/run/nodebake/fulcrum.env"
	// FulcrumBlocked keeps fulcrum.service from starting
	// (ConditionPathExists=!) and holds why: the agent writes it when
	// Fulcrum could not read the data on /data. A condition is read at
	// every start without a daemon-reload, which a drop-in or a mask made
	// during boot would need, and it covers a start by hand too.
	FulcrumBlocked = "/run/nodebake/fulcrum-blocked"
	// BootCountVar exists when systemd-boot booted an entry that carries
	// a boot counter: the slot is on trial. Without it the running slot
	// was blessed before this boot.
	BootCountVar = "/sys/firmware/efi/efivars/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
)

// dataFormats keeps the record of the formats of the data on /data and
// acts on dataformat.Decide: it records a fresh database's format, keeps a
// copy and arranges Fulcrum's --db-upgrade for an upgrade, settles it once
// the slot is blessed, puts the copy back when an older image boots again,
// and keeps Fulcrum stopped when it could not read the data.
func (a *agent) dataFormats() ([]Item, error) {
	m, err := contract.ReadManifest(a.path(contract.ManifestPath))
	if errors.Is(err, fs.ErrNotExist) {
		return []Item{{What: contract.ManifestPath, Status: Skipped, Detail: "the image has no manifest: data formats unknown"}}, nil
	}
	if err != nil {
		return nil, err
	}
	recPath := a.path(contract.DataFormatsPath)
	rec, err := dataformat.Load(recPath)
	if err != nil {
		return nil, err
	}
	formats := m.Formats()
	if cmdline, err := os.ReadFile(a.path("/proc/cmdline")); err == nil {
		if slot, err := contract.Parse(string(cmdline)); err == nil {
			rec.SetSlot(slot.Name, m.Version, formats)
		}
	}
	var items []Item
	k := dataformat.FulcrumDB
	it, flag, stop, err := a.dataFormat(rec, k, m.Version, formats[k.Name])
	items = append(items, it)
	if err != nil {
		return items, err
	}
	// The record goes first: once Fulcrum has the flag, no older image may
	// start it on the data before it knows.
	if err := rec.Save(recPath); err != nil {
		return items, err
	}
	if it, err := a.runFile(FulcrumEnv, flag, "FULCRUM_ARGS=--db-upgrade\n"); err != nil {
		return append(items, it), err
	} else if it.Status != Unchanged {
		items = append(items, it)
	}
	it, err = a.runFile(FulcrumBlocked, stop != "", stop+"\n")
	if it.Status != Unchanged {
		items = append(items, it)
	}
	if err != nil {
		return items, err
	}
	if stop != "" {
		return items, errors.New(stop)
	}
	return items, nil
}

// dataFormat decides for one kind of data and does what the decision
// takes on /data; it returns whether the program gets its upgrade flag,
// and why it must not start ("" if it may).
func (a *agent) dataFormat(rec *dataformat.Record, k dataformat.Kind, version string, image int) (it Item, flag bool, stop string, err error) {
	it = Item{What: k.Dir, Status: Unchanged}
	usage, err := dataformat.Measure(a.path(k.Dir))
	if err != nil {
		return it, false, "", err
	}
	b := dataformat.Boot{Kind: k, Version: version, Image: image, Data: rec.Formats[k.Name], Empty: usage.Empty,
		Consent: rec.Consented(version, k.Name, image), Blessed: !a.exists(BootCountVar)}
	discard := filepath.Base(k.Dir) + ".discard"
	if u, ok := rec.Upgrades[k.Name]; ok {
		b.Upgrade = &u
		// A restore cut short leaves the copy in place and the upgraded
		// database under the discard name.
		b.Kept = u.Kept != "" && (a.exists(u.Kept) || a.exists(filepath.Join(filepath.Dir(k.Dir), discard)))
	}
	if image > b.Data && b.Data > 0 && b.Upgrade == nil {
		room, why, err := dataformat.Room(a.path(k.Dir), usage)
		if err != nil {
			return it, false, "", err
		}
		b.Room = room
		it.Detail = why + "; "
	}
	d := dataformat.Decide(b)
	it.Detail += d.Why
	parent, err := a.serviceDir(filepath.Dir(k.Dir))
	if err != nil && d.Action != dataformat.NotThisImage {
		return it, false, "", err
	}
	if parent != nil {
		defer parent.Close()
	}
	switch d.Action {
	case dataformat.NotThisImage:
		it.Status = Skipped
		return it, false, "", nil
	case dataformat.Nothing, dataformat.Unrecorded:
	case dataformat.RecordImage:
		if u := b.Upgrade; u != nil && u.Kept != "" {
			if err := a.removeTree(parent, filepath.Base(u.Kept)); err != nil {
				return it, false, "", err
			}
		}
		rec.SetFormat(k.Name, image)
		a.endUpgrade(rec, k.Name)
		it.Status = Changed
	case dataformat.UpgradeKeep, dataformat.UpgradeNoCopy:
		u := dataformat.Upgrade{From: b.Data, To: image, Version: version}
		if d.Action == dataformat.UpgradeKeep {
			u.Kept = k.KeptDir(b.Data)
			if err := a.keepCopy(parent, filepath.Base(k.Dir), filepath.Base(u.Kept)); err != nil {
				return it, false, "", fmt.Errorf("keeping a copy of %s before the upgrade: %w (nothing was upgraded)", k.Dir, err)
			}
		}
		rec.SetFormat(k.Name, image)
		if rec.Upgrades == nil {
			rec.Upgrades = map[string]dataformat.Upgrade{}
		}
		rec.Upgrades[k.Name] = u
		it.Status = Changed
		flag = true
	case dataformat.ResumeUpgrade:
		flag = true
	case dataformat.Settle:
		if u := b.Upgrade; u.Kept != "" {
			if err := a.removeTree(parent, filepath.Base(u.Kept)); err != nil {
				return it, false, "", fmt.Errorf("removing the copy kept during the upgrade: %w", err)
			}
		}
		a.endUpgrade(rec, k.Name)
		it.Status = Changed
	case dataformat.Restore:
		u := b.Upgrade
		db, kept := filepath.Base(k.Dir), filepath.Base(u.Kept)
		if a.exists(u.Kept) {
			if err := a.removeTree(parent, discard); err != nil {
				return it, false, "", err
			}
			if err := parent.Rename(db, discard); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return it, false, "", err
			}
			if err := parent.Rename(kept, db); err != nil {
				return it, false, "", err
			}
			if err := parent.Sync(); err != nil {
				return it, false, "", err
			}
		}
		rec.SetFormat(k.Name, u.From)
		a.endUpgrade(rec, k.Name)
		it.Status = Changed
	case dataformat.DoNotStart:
		it.Status = Skipped
		stop = fmt.Sprintf("%s is not started: %s", k.Program, d.Why)
	}
	// Leftovers of a copy or a restore cut short by a power cut.
	if _, ok := rec.Upgrades[k.Name]; !ok && parent != nil {
		for _, name := range []string{discard, filepath.Base(k.KeptDir(b.Data)) + ".tmp"} {
			if err := a.removeTree(parent, name); err != nil {
				return it, flag, stop, err
			}
		}
	}
	return it, flag, stop, nil
}

// endUpgrade forgets an upgrade and the consents given for it.
func (a *agent) endUpgrade(rec *dataformat.Record, kind string) {
	delete(rec.Upgrades, kind)
	var keep []dataformat.Consent
	for _, c := range rec.Consents {
		if c.Kind != kind {
			keep = append(keep, c)
		}
	}
	rec.Consents = keep
}

// keepCopy copies the folder name in parent to kept: under a temporary
// name, every file and folder synced, then renamed, so that kept is
// either absent or complete. It makes new files rather than hard links:
// the upgrade rewrites files in place, and a second name would carry the
// change into the copy.
func (a *agent) keepCopy(parent *nofollow.Dir, name, kept string) error {
	tmp := kept + ".tmp"
	for _, stale := range []string{tmp, kept} {
		if err := a.removeTree(parent, stale); err != nil {
			return err
		}
	}
	src, err := parent.OpenDir(name)
	if err != nil {
		return err
	}
	defer src.Close()
	// Root's and closed to others while it is filled: Fulcrum must not
	// change the copy under the agent. It gets the original's owner and
	// mode last.
	if err := parent.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	dst, err := parent.OpenDir(tmp)
	if err != nil {
		return err
	}
	defer dst.Close()
	if err := a.copyTree(src, dst); err != nil {
		return err
	}
	if err := a.sameMeta(src.File(), dst.File()); err != nil {
		return err
	}
	if err := dst.Sync(); err != nil {
		return err
	}
	if err := parent.Rename(tmp, kept); err != nil {
		return err
	}
	return parent.Sync()
}

// copyTree copies what src holds into the empty dst. Only files and
// folders are copied; anything else is refused, as Fulcrum makes nothing
// else.
func (a *agent) copyTree(src, dst *nofollow.Dir) error {
	names, err := src.Names()
	if err != nil {
		return err
	}
	for _, n := range names {
		fi, err := src.Lstat(n)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			if err := dst.Mkdir(n, 0o700); err != nil {
				return err
			}
			s, err := src.OpenDir(n)
			if err != nil {
				return err
			}
			err = a.copyDir(s, dst, n)
			s.Close()
			if err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if err := a.copyFile(src, dst, n); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s is neither a file nor a folder (%s): move it away and run `sudo nodectl firstboot`", src.Join(n), fi.Mode().Type())
		}
	}
	return nil
}

func (a *agent) copyDir(s, dst *nofollow.Dir, n string) error {
	d, err := dst.OpenDir(n)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := a.copyTree(s, d); err != nil {
		return err
	}
	if err := a.sameMeta(s.File(), d.File()); err != nil {
		return err
	}
	return d.Sync()
}

func (a *agent) copyFile(src, dst *nofollow.Dir, n string) error {
	in, err := src.OpenFile(n)
	if err != nil {
		return err
	}
	defer in.Close()
	out, tmp, err := dst.CreateTemp("." + n + ".copy-")
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = a.sameMeta(in, out)
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = dst.Rename(tmp, n)
	}
	if err != nil {
		dst.Remove(tmp)
	}
	return err
}

// sameMeta gives to the mode and owner of from.
func (a *agent) sameMeta(from, to *os.File) error {
	fi, err := from.Stat()
	if err != nil {
		return err
	}
	o, err := a.w.owners.Owner(from)
	if err != nil {
		return err
	}
	if err := to.Chmod(fi.Mode().Perm()); err != nil {
		return err
	}
	return a.w.owners.SetOwner(to, o)
}

// removeTree removes the folder name in parent and all it holds, following
// no link; a missing name is no error.
func (a *agent) removeTree(parent *nofollow.Dir, name string) error {
	d, err := parent.OpenDir(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	names, err := d.Names()
	for _, n := range names {
		if err != nil {
			break
		}
		var fi fs.FileInfo
		if fi, err = d.Lstat(n); err == nil {
			if fi.IsDir() {
				err = a.removeTree(d, n)
			} else {
				err = d.Remove(n)
			}
		}
	}
	d.Close()
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(int(parent.File().Fd()), name, unix.AT_REMOVEDIR); err != nil {
		return &fs.PathError{Op: "rmdir", Path: parent.Join(name), Err: err}
	}
	return parent.Sync()
}

// runFile makes the root-owned file p in /run hold data when want is
// true, and removes it otherwise.
func (a *agent) runFile(p string, want bool, data string) (Item, error) {
	it := Item{What: p, Status: Unchanged}
	full := a.path(p)
	if !want {
		err := os.Remove(full)
		switch {
		case err == nil:
			it.Status = Changed
			it.Detail = "removed"
		case !errors.Is(err, fs.ErrNotExist):
			it.Status = Failed
			return it, err
		}
		return it, nil
	}
	if b, err := os.ReadFile(full); err == nil && string(b) == data {
		return it, nil
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return it, err
	}
	it.Status = Changed
	return it, atomicfile.Write(full, []byte(data), 0o644)
}

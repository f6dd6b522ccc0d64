// Package firstboot makes a generic nodebake image right for the device it
// boots on. `nodectl firstboot` runs it on every boot, before ssh, tor,
// bitcoind and Fulcrum start:
//
//   - it grows the data partition and its filesystem to fill the disk;
//   - it creates the guide's folders and links with their owners and modes;
//   - it makes the device's own secrets once and keeps them: Fulcrum's TLS
//     key and certificate, the SSH host key;
//   - it sizes bitcoind's and Fulcrum's memory from the RAM and CPUs (Size)
//     and renders bitcoin.conf and fulcrum.conf from the image's defaults,
//     the sizing and the user's override files, which it never changes.
//
// Every step looks at the state it is responsible for and changes only what
// differs, so a second run changes nothing and a run cut short (a power
// cut) is completed by the next. A failing step is reported with what to do
// and does not stop the others. The report goes to /run/nodebake/firstboot.json.
//
// The agent runs as root in folders that bitcoind, Fulcrum and the users
// own, and Fulcrum answers the network: a service taken over must not be
// able to steer root. So the agent works below the root only through
// package nofollow: it follows no symbolic link, reads only regular files
// of bounded size, writes through new temporary files and renames, and
// sets modes and owners on the descriptors of the files it opened.
package firstboot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodebake/nodebake/internal/nofollow"
)

// Config is how Run is called. On the device: Root "/", SystemOwners,
// GrowData true. Tests use a temporary root and record owners instead.
type Config struct {
	Root     string
	Owners   Owners
	Now      func() time.Time // nil: time.Now
	Log      io.Writer        // progress and failures; nil: discarded
	GrowData bool             // grow the partition mounted at /data and its filesystem
	// Passwords sets the one-time console password of an admin without
	// SSH keys; nil leaves passwords alone.
	Passwords Passwords
	// Synced says bitcoind has left its initial block download, before
	// SyncedMarker records it: sync-watch renders the synced phase first
	// and writes the marker last, so that a run cut short is redone.
	Synced bool
}

// step is one job: it returns what it looked after, and an error that says
// what failed. fix says what the admin can do about a failure.
type step struct {
	name string
	fix  string
	run  func() ([]Item, error)
}

type agent struct {
	c        Config
	w        files
	now      time.Time
	settings Settings
	fvSource string // where the Fulcrum version came from
	hwErr    error
	synced   bool
	// mayStart: Fulcrum may run this boot (FulcrumMayStart exists).
	mayStart bool
	// configWarnings are what the user should know about the override files.
	configWarnings []string
	users          map[string]Owner
	userErrs       map[string]error
}

func newAgent(c Config) *agent {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	a := &agent{c: c, w: files{c.Owners}, now: c.Now(), users: map[string]Owner{}, userErrs: map[string]error{}}
	fv, source := imageFulcrumVersion(c.Root)
	a.fvSource = source
	hw, err := DetectHardware(c.Root)
	a.hwErr = err
	a.settings = Size(hw, fv)
	a.synced = c.Synced || a.exists(SyncedMarker)
	a.mayStart = a.synced || !a.settings.Plan.FulcrumWaits
	for _, u := range []string{"admin", "bitcoin", "fulcrum"} {
		a.users[u], a.userErrs[u] = LookupUser(c.Root, u)
	}
	return a
}

func (a *agent) path(p string) string { return filepath.Join(a.c.Root, p) }

// user returns a user's owner, or why it is unknown.
func (a *agent) user(name string) (Owner, error) { return a.users[name], a.userErrs[name] }

func (a *agent) steps() []step {
	// The host key comes first: sshd waits for this unit, and whatever
	// happens later, the admin must be able to log in and look.
	return []step{
		{"ssh host key", "sshd may refuse to start: use the console, fix the named file, then run `sudo nodectl firstboot`", a.hostKey},
		{"console password", "without SSH keys in the image the admin cannot log in: rebuild it with ssh_authorized_keys", a.consolePassword},
		{"data partition", "/data keeps its size; the node still works until the disk is full", a.growData},
		{"folders", "fix the named path, then run `sudo nodectl firstboot`", a.folders},
		{"data formats", "Fulcrum's database is left as it is; see the message, then run `sudo nodectl firstboot`", a.dataFormats},
		{"fulcrum tls", "Fulcrum's SSL port will not work: fix the named file, then run `sudo nodectl firstboot`", a.tls},
		{"bitcoin.conf", "bitcoind runs with the previous " + BitcoinConf + " if there is one", a.bitcoinConf},
		{"fulcrum.conf", "Fulcrum runs with the previous " + FulcrumConf + " if there is one", a.fulcrumConf},
		{"fulcrum start", "fix the named path, then run `sudo nodectl firstboot`", a.fulcrumStart},
	}
}

// Run does every step, writes the report and returns it. The error lists
// the steps that failed; the report says why and what to do.
func Run(c Config) (*Report, error) {
	if c.Owners == nil {
		return nil, errors.New("firstboot: Config.Owners is nil")
	}
	a := newAgent(c)
	r := &Report{Time: a.now.UTC(), FulcrumSource: a.fvSource, BitcoindSynced: a.synced, FulcrumMayStart: a.mayStart, Settings: a.settings}
	if a.hwErr != nil {
		fmt.Fprintf(c.Log, "hardware: %v: memory cannot be sized\n", a.hwErr)
	} else {
		for _, w := range a.settings.Warnings {
			fmt.Fprintf(a.c.Log, "warning: %s\n", w)
		}
	}
	var failed []string
	for _, s := range a.steps() {
		st := a.do(s)
		if st.Error != "" {
			failed = append(failed, s.name)
		}
		r.Steps = append(r.Steps, st)
	}
	r.ConfigWarnings = a.configWarnings
	for _, w := range a.configWarnings {
		fmt.Fprintf(a.c.Log, "warning: %s\n", w)
	}
	if err := a.writeReport(r); err != nil {
		fmt.Fprintf(c.Log, "report: %v\n", err)
		failed = append(failed, "report")
	}
	if len(failed) > 0 {
		return r, fmt.Errorf("%d step(s) failed: %s (see `nodectl status`)", len(failed), strings.Join(failed, ", "))
	}
	return r, nil
}

// do runs one step and logs what changed. A step that panics fails like
// one that returns an error: the others still run.
func (a *agent) do(s step) Step {
	items, err := func() (items []Item, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("internal error: %v", p)
			}
		}()
		return s.run()
	}()
	st := Step{Name: s.name, Items: items}
	for i, it := range items {
		// Helpers name files by where the agent works; the report names
		// them as they are on the device.
		if root := filepath.Clean(a.c.Root); root != "/" {
			it.What = strings.TrimPrefix(it.What, root)
			items[i] = it
		}
		if it.Status != Unchanged {
			detail := ""
			if it.Detail != "" {
				detail = ": " + it.Detail
			}
			fmt.Fprintf(a.c.Log, "%s: %s %s%s\n", s.name, it.Status, it.What, detail)
		}
	}
	if err != nil {
		st.Error = fmt.Sprintf("%v (%s)", err, s.fix)
		fmt.Fprintf(a.c.Log, "%s: FAILED: %s\n", s.name, st.Error)
	}
	return st
}

func (a *agent) writeReport(r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return a.writeRootOwned(ReportPath, append(b, '\n'), 0o644)
}

func (a *agent) growData() ([]Item, error) {
	if !a.c.GrowData {
		return []Item{{What: "/data", Status: Skipped, Detail: "growing was not asked for"}}, nil
	}
	return growData("/data")
}

// dir opens the folder p (a path on the device) below the root without
// following a link anywhere on the way: /data, the service folders below
// it and the homes belong to services and users, and a link there must not
// lead the agent, which runs as root, anywhere else. mkdir creates missing
// folders, root's, 0755.
func (a *agent) dir(p string, mkdir bool) (*nofollow.Dir, error) {
	root, err := nofollow.Open(a.c.Root)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	rel := strings.TrimPrefix(filepath.Clean(p), "/")
	if mkdir {
		return root.MkdirAll(rel, 0o755)
	}
	return root.OpenDir(rel)
}

// exists reports whether something is at the device path p, not following
// links.
func (a *agent) exists(p string) bool {
	d, err := a.dir(filepath.Dir(p), false)
	if err != nil {
		return false
	}
	defer d.Close()
	_, err = d.Lstat(filepath.Base(p))
	return err == nil
}

// serviceDir opens a service's folder for a step that works in it.
func (a *agent) serviceDir(p string) (*nofollow.Dir, error) {
	d, err := a.dir(p, false)
	if errors.Is(err, nofollow.ErrSymlink) {
		return nil, fmt.Errorf("%w, and the agent follows no links there (see the folders step)", err)
	}
	return d, err
}

// folders makes the guide's data folders and the links to them from the
// users' homes.
func (a *agent) folders() ([]Item, error) {
	data, err := a.dir("/data", false)
	if err != nil {
		return nil, fmt.Errorf("there is no /data folder (%v): is the data partition mounted? (see `journalctl -b -t nodebake-init`)", err)
	}
	data.Close()
	var items []Item
	dir := func(p string, mode fs.FileMode, user string) error {
		o, err := a.user(user)
		if err != nil {
			return err
		}
		parent, err := a.dir(filepath.Dir(p), true)
		if err != nil {
			return err
		}
		defer parent.Close()
		d, it, err := a.w.dir(parent, filepath.Base(p), mode, o)
		if err != nil {
			return err
		}
		d.Close()
		items = append(items, it)
		return nil
	}
	link := func(p, target, user string) error {
		o, err := a.user(user)
		if err != nil {
			return err
		}
		parent, err := a.dir(filepath.Dir(p), false)
		if err != nil {
			return err
		}
		defer parent.Close()
		it, err := a.w.symlink(parent, filepath.Base(p), target, o)
		if err != nil {
			return err
		}
		items = append(items, it)
		return nil
	}
	for _, f := range []func() error{
		func() error { return dir(BitcoinDir, 0o750, "bitcoin") },
		func() error { return dir(FulcrumDir, 0o750, "fulcrum") },
		func() error { return dir(FulcrumDB, 0o750, "fulcrum") },
		func() error { return dir("/home/bitcoin", 0o750, "bitcoin") },
		func() error { return dir("/home/fulcrum", 0o750, "fulcrum") },
		func() error { return dir("/home/admin", 0o750, "admin") },
		func() error { return link("/home/bitcoin/.bitcoin", BitcoinDir, "bitcoin") },
		func() error { return link("/home/fulcrum/.fulcrum", FulcrumDir, "fulcrum") },
		// The guide links admin's ~/.bitcoin too, so that bitcoin-cli finds
		// the cookie.
		func() error { return link("/home/admin/.bitcoin", BitcoinDir, "admin") },
	} {
		if err := f(); err != nil {
			return items, err
		}
	}
	return items, nil
}

func (a *agent) tls() ([]Item, error) {
	o, err := a.user("fulcrum")
	if err != nil {
		return nil, err
	}
	d, err := a.serviceDir(FulcrumDir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return ensureTLS(a.w, d, filepath.Base(FulcrumKey), filepath.Base(FulcrumCert), o, a.now)
}

func (a *agent) hostKey() ([]Item, error) {
	dir := filepath.Dir(HostKeyPath)
	parent, err := a.dir(filepath.Dir(dir), true)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	d, it, err := a.w.dir(parent, filepath.Base(dir), 0o700, rootOwner)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	items, err := ensureHostKey(a.w, d, filepath.Base(HostKeyPath))
	return append([]Item{it}, items...), err
}

// override creates the user's override file in d, empty, if it is missing
// and returns what it holds. The agent never writes to it otherwise. One it
// may not read, a link for instance, is ignored and said so in the report:
// the configs are still written, without the user's settings.
func (a *agent) override(d *nofollow.Dir, name string, o Owner) (Item, []byte, error) {
	it, err := a.w.createOnly(d, name, nil, 0o640, o)
	if err != nil {
		return it, nil, err
	}
	b, err := d.ReadFile(name, maxRead)
	var why string // the report's words
	switch {
	case err == nil:
		return it, b, nil
	case errors.Is(err, nofollow.ErrSymlink):
		why = "is a symbolic link"
	case errors.Is(err, nofollow.ErrNotRegular):
		why = "is not a regular file"
	case errors.Is(err, nofollow.ErrTooLarge):
		why = fmt.Sprintf("is larger than %d KiB", maxRead>>10)
	default:
		return it, nil, fmt.Errorf("%s cannot be read: %w", it.What, err)
	}
	it.Status = Skipped
	it.Detail = fmt.Sprintf("%s %s: ignored; replace it with a regular file", name, why)
	return it, nil, nil
}

func (a *agent) bitcoinConf() ([]Item, error) {
	if a.hwErr != nil {
		return nil, fmt.Errorf("cannot size memory: %w", a.hwErr)
	}
	o, err := a.user("bitcoin")
	if err != nil {
		return nil, err
	}
	d, err := a.serviceDir(BitcoinDir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	ov, override, err := a.override(d, filepath.Base(BitcoinOverride), o)
	if err != nil {
		return nil, err
	}
	conf, warnings := BitcoinConfig(a.settings, a.synced, override)
	a.configWarnings = append(a.configWarnings, warnings...)
	it, err := a.w.file(d, filepath.Base(BitcoinConf), conf, 0o640, o)
	if err != nil {
		return []Item{ov}, err
	}
	return []Item{ov, it}, nil
}

func (a *agent) fulcrumConf() ([]Item, error) {
	if a.hwErr != nil {
		return nil, fmt.Errorf("cannot size memory: %w", a.hwErr)
	}
	o, err := a.user("fulcrum")
	if err != nil {
		return nil, err
	}
	d, err := a.serviceDir(FulcrumDir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	// The banner is the user's to change, as the guide invites: it is
	// copied from the image once. The image is the verified read-only root.
	banner, err := os.ReadFile(a.path(ImageBanner))
	if err != nil {
		return nil, fmt.Errorf("the image has no banner: %w", err)
	}
	it, err := a.w.createOnly(d, filepath.Base(FulcrumBanner), banner, 0o644, o)
	if err != nil {
		return nil, err
	}
	items := []Item{it}
	ov, override, err := a.override(d, filepath.Base(FulcrumOverride), o)
	if err != nil {
		return items, err
	}
	items = append(items, ov)
	conf, warnings := FulcrumConfig(a.settings, override)
	a.configWarnings = append(a.configWarnings, warnings...)
	it, err = a.w.file(d, filepath.Base(FulcrumConf), conf, 0o640, o)
	if err != nil {
		return items, err
	}
	return append(items, it), nil
}

// fulcrumStart creates FulcrumMayStart, the condition of fulcrum.service,
// when the plan lets Fulcrum run this boot, and removes it when Fulcrum
// must wait for bitcoind's initial sync: on a small machine both at once
// would not fit in RAM. nodebake-sync-watch runs the agent again once
// bitcoind has synced, and then starts Fulcrum.
func (a *agent) fulcrumStart() ([]Item, error) {
	if a.mayStart {
		why := "bitcoind has synced"
		if !a.settings.Plan.FulcrumWaits {
			why = a.settings.Plan.Why
		}
		d, err := a.dir(filepath.Dir(FulcrumMayStart), true)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		it, err := a.w.file(d, filepath.Base(FulcrumMayStart), []byte(why+"\n"), 0o644, rootOwner)
		if err != nil {
			return nil, err
		}
		it.Detail = "Fulcrum may start: " + why
		return []Item{it}, nil
	}
	d, err := a.dir(filepath.Dir(FulcrumMayStart), false)
	if err == nil {
		err = d.Remove(filepath.Base(FulcrumMayStart))
		d.Close()
	}
	switch {
	case err == nil:
		return []Item{{What: FulcrumMayStart, Status: Changed, Detail: "removed: " + a.settings.Plan.Why}}, nil
	case errors.Is(err, fs.ErrNotExist):
		return []Item{{What: FulcrumMayStart, Status: Skipped, Detail: a.settings.Plan.Why}}, nil
	}
	return nil, err
}

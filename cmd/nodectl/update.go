package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/dataformat"
	"github.com/nodebake/nodebake/internal/progress"
	"github.com/nodebake/nodebake/ota"
)

const updateUsage = `usage: nodectl update <command> [flags]
  check    [-source SRC] [BUNDLE]     is there a newer image? (the image's source, another one, or a bundle file)
  apply    [-source SRC] [BUNDLE] [-allow-downgrade] [-retry-failed] [-download-dir DIR] [-accept-data-upgrade]
                                      install it into the other slot; it boots next, on trial
  status                              slots, boot entries, versions that failed here
  rollback                            boot the other slot next (it gets three tries)
  auto                                one automatic update run (nodebake-update.timer starts it in the
                                      window of image.yaml's update.schedule): check, install, reboot
  pause    [-for DURATION|-until TIME] hold automatic updates back (default: until resume)
  resume                              let automatic updates run again
SRC is oci://REGISTRY/REPOSITORY:TAG or the https:// URL of a folder written by nodebake publish
(plain http only if the image sets update.insecure); its signed channel statement must be fresh and
name the bundle. BUNDLE is a bundle folder or .tar file copied onto the device: no channel is checked.`

func updateCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("want a command\n" + updateUsage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "check":
		return updateCheck(ctx, args[1:], stdout)
	case "apply":
		return updateApply(ctx, args[1:], stdout)
	case "status":
		return updateStatus(args[1:], stdout)
	case "rollback":
		return rollbackCmd(args[1:], stdout)
	case "auto":
		return updateAuto(ctx, args[1:], stdout)
	case "pause":
		return updatePause(args[1:], stdout)
	case "resume":
		return updateResume(args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, updateUsage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], updateUsage)
}

// load takes the update lock of the device whose root is root (for
// tests; "/" on a device) and reads the device; the caller unlocks when
// done. Holding the lock from before the read means that what is read
// stays true until the command ends.
func load(root string) (*ota.Device, func(), error) {
	if err := needRoot(root); err != nil {
		return nil, nil, err
	}
	unlock, err := ota.Lock(root)
	if err != nil {
		return nil, nil, err
	}
	d, err := ota.LoadDevice(root)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return d, unlock, nil
}

func needRoot(root string) error {
	if root == "/" && os.Geteuid() != 0 {
		return errors.New("must run as root (the ESP and the slots are root's): sudo nodectl update …")
	}
	return nil
}

// rootFlag parses the flags of a command that has only -root.
func rootFlag(name string, args []string) (string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	root := fs.String("root", "/", "the device's root (for tests)")
	err := fs.Parse(args)
	return *root, err
}

// sourceFor is the -source flag if given, else the image's own source.
func sourceFor(s *ota.Device, flagValue string) (ota.Source, error) {
	if flagValue != "" {
		return ota.ParseSource(flagValue, s.Insecure)
	}
	if s.Source.IsZero() {
		return ota.Source{}, fmt.Errorf("this image names no update source (update.source in image.yaml): pass -source, or copy a bundle onto the device and give its path")
	}
	return s.Source, nil
}

// parseArgs parses flags that may come before or after the one optional
// positional argument (a bundle).
func parseArgs(fs *flag.FlagSet, args []string) (string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) > 1 {
		return "", fmt.Errorf("want at most one bundle, got %s", strings.Join(pos, " "))
	}
	if len(pos) == 1 {
		return pos[0], nil
	}
	return "", nil
}

func updateCheck(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nodectl update check", flag.ContinueOnError)
	source := fs.String("source", "", "look here instead of the image's update source")
	root := fs.String("root", "/", "the device's root (for tests)")
	file, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	s, unlock, err := load(*root)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.Policy(false, false); err != nil {
		return err
	}
	var b *ota.Bundle
	from := file
	if file != "" {
		if b, err = ota.Open(file); err != nil {
			return err
		}
		fmt.Fprintln(stdout, fileNote)
	} else {
		src, err := sourceFor(s, *source)
		if err != nil {
			return err
		}
		from = src.String()
		if b, err = fetch(ctx, s, src, stdout); err != nil {
			return err
		}
	}
	// The channel may have rotated the key: the policy comes after it.
	p, err := s.Policy(false, false)
	if err != nil {
		return err
	}
	if err := ota.VerifyManifest(b, p); err != nil {
		if offersNothingNewer(s, b, p) {
			fmt.Fprintf(stdout, "no update: %s offers %s %s, this device runs %s\n", from, b.Manifest.Name, b.Manifest.Version, s.Running.Version)
			return nil
		}
		return fmt.Errorf("%s: %w", from, err)
	}
	m := &b.Manifest
	if file != "" {
		fmt.Fprintf(stdout, "update available: %s %s (running %s) from %s\n", m.Name, m.Version, s.Running.Version, from)
	} else {
		src, _ := sourceFor(s, *source)
		plan, err := src.Plan(ctx, b, seedOf(s), nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "update available: %s %s (running %s) from %s, %s to download\n",
			m.Name, m.Version, s.Running.Version, from, describePlan(plan))
	}
	if _, err := checkData(s, m, false, stdout); err != nil {
		fmt.Fprintf(stdout, "apply refuses it as it stands: %v\n", err)
	}
	fmt.Fprint(stdout, "install it with: sudo nodectl update apply")
	if file != "" {
		fmt.Fprintf(stdout, " %s", file)
	} else if *source != "" {
		fmt.Fprintf(stdout, " -source %s", from)
	}
	fmt.Fprintln(stdout)
	return nil
}

// fileNote says what a bundle file is not checked against.
const fileNote = "a bundle file you chose: no channel statement vouches that it is current; its signature, device and version are checked as always"

// fetch gets what src offers, accepts its channel statement (which it
// shows) and returns the manifest it names, for VerifyManifest.
func fetch(ctx context.Context, s *ota.Device, src ota.Source, stdout io.Writer) (*ota.Bundle, error) {
	offer, err := src.Fetch(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	c, err := s.AcceptChannel(src, offer, now)
	if err != nil {
		return nil, err
	}
	for _, r := range c.Rotations {
		fmt.Fprintf(stdout, "update key rotated: %s (signed by the old key); the device trusts only the new key from now on\n", r.Describe())
	}
	ch := &c.Channel
	fmt.Fprintf(stdout, "channel %s: %s %s, counter %d, signed %s ago, valid until %s\n",
		src, ch.Name, ch.Version, ch.Counter, ota.Ago(now.Sub(ch.Issued)), ch.Expires.Format(time.RFC3339))
	return offer.Bundle, nil
}

// offersNothingNewer reports whether a bundle that p refused is a good
// bundle for this device that is simply not newer than what runs.
func offersNothingNewer(s *ota.Device, b *ota.Bundle, p ota.Policy) bool {
	p.AllowDowngrade, p.Failed = true, nil
	return ota.VerifyManifest(b, p) == nil && ota.CompareVersions(b.Manifest.Version, s.Running.Version) <= 0
}

func updateApply(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nodectl update apply", flag.ContinueOnError)
	source := fs.String("source", "", "download from here instead of the image's update source")
	downgrade := fs.Bool("allow-downgrade", false, "install a version that is not newer than the running one")
	retry := fs.Bool("retry-failed", false, "install a version even though it failed to boot here before")
	acceptData := fs.Bool("accept-data-upgrade", false, "install an update that upgrades data on /data for good even though no copy can be kept for a rollback")
	downloads := fs.String("download-dir", "", "where to keep the download until it is installed (default: a temporary folder in $TMPDIR or /tmp, which is in RAM)")
	root := fs.String("root", "/", "the device's root (for tests)")
	file, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if file != "" && *source != "" {
		return errors.New("give a bundle or -source, not both")
	}
	s, unlock, err := load(*root)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.Policy(*downgrade, *retry); err != nil {
		return err
	}
	show := progress.Steps(stdout)

	var b *ota.Bundle
	var p ota.Policy
	var rec *dataformat.Record
	if file != "" {
		if b, err = ota.Open(file); err != nil {
			return err
		}
		fmt.Fprintln(stdout, fileNote)
		if p, err = s.Policy(*downgrade, *retry); err != nil {
			return err
		}
		if err := ota.VerifyManifest(b, p); err != nil {
			return err
		}
		if rec, err = checkData(s, &b.Manifest, *acceptData, stdout); err != nil {
			return err
		}
	} else {
		src, err := sourceFor(s, *source)
		if err != nil {
			return err
		}
		// The channel statement and the manifest alone say whether the
		// download is worth it.
		head, err := fetch(ctx, s, src, stdout)
		if err != nil {
			return err
		}
		if p, err = s.Policy(*downgrade, *retry); err != nil {
			return err
		}
		if err := ota.VerifyManifest(head, p); err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		if rec, err = checkData(s, &head.Manifest, *acceptData, stdout); err != nil {
			return err
		}
		m := &head.Manifest
		plan, err := src.Plan(ctx, head, seedOf(s), show)
		if err != nil {
			return err
		}
		size := plan.Full
		parent := *downloads
		if parent == "" {
			parent = os.TempDir()
		}
		if err := checkRoom(parent, size); err != nil {
			return err
		}
		dir, err := os.MkdirTemp(parent, "nodebake-update-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		fmt.Fprintf(stdout, "downloading %s %s (running %s) from %s: %s\n", m.Name, m.Version, s.Running.Version, src, describePlan(plan))
		if b, err = src.DownloadPlan(ctx, head, dir, plan, show); err != nil {
			return err
		}
	}
	fmt.Fprintln(stdout, "checking the bundle against this device's update key")
	if err := ota.Verify(ctx, b, p, show); err != nil {
		return err
	}

	m := &b.Manifest
	active, target := s.Slot.Name, ota.Other(s.Slot.Name)
	uuid := m.Slot(target).RootPartUUID
	if uuid == s.Slot.RootPartUUID {
		return fmt.Errorf("the bundle puts slot %s on PARTUUID %s, the partition this system runs from: refusing", target, uuid)
	}
	dev := s.Partition(uuid)
	if err := notInUse(dev); err != nil {
		return err
	}
	if err := recordSlot(s, rec, target, m); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "installing %s %s into slot %s (%s)\n", m.Name, m.Version, target, dev)
	if err := ota.Apply(ctx, b, ota.Target{Active: active, Device: dev, ESP: s.ESP()}, show); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "slot %s holds %s %s and boots next, on trial: unless it passes its boot assessment (nodebake-health) within 3 boots, slot %s (%s) boots again\nreboot to start it: sudo systemctl reboot\n",
		target, m.Name, m.Version, active, s.Running.Version)
	return nil
}

// seedOf is what the device already holds of an update: its running
// slot's root (as long as its verity parameters say) and that slot's
// kernel and initramfs.
func seedOf(s *ota.Device) ota.Seed {
	return ota.Seed{Root: s.Partition(s.Slot.RootPartUUID), Size: ota.RootSize(s.Slot.Verity), ESP: s.ESP(), Slot: s.Slot.Name}
}

// describePlan says how many bytes a download fetches, and whether as a
// delta.
func describePlan(p *ota.Plan) string {
	if p.Delta {
		return fmt.Sprintf("%s of %s (delta: %d of %d chunks of the root are fetched, the rest is on this device already)",
			progress.MB(p.Fetch), progress.MB(p.Full), p.Missing, p.Chunks)
	}
	return fmt.Sprintf("%s (full download: %s)", progress.MB(p.Fetch), p.Why)
}

// checkRoom fails when dir's filesystem has less than need bytes free.
func checkRoom(dir string, need int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if free := int64(st.Bavail) * st.Bsize; free < need {
		return fmt.Errorf("%s has %s free, the download needs %s: pass -download-dir with a folder that has room (e.g. under /data)",
			dir, progress.MB(free), progress.MB(need))
	}
	return nil
}

// notInUse refuses a partition that is mounted or mapped: the kernel does
// not let anyone else open a busy block device exclusively.
func notInUse(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_EXCL, 0)
	if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("%s is in use (mounted or mapped): refusing to write it", dev)
	}
	if err != nil {
		return fmt.Errorf("the other slot: %w", err)
	}
	return f.Close()
}

func updateStatus(args []string, stdout io.Writer) error {
	root, err := rootFlag("nodectl update status", args)
	if err != nil {
		return err
	}
	if err := needRoot(root); err != nil {
		return err
	}
	// Status only reads (what LoadDevice records is idempotent): it
	// takes no lock, so it works while an apply runs.
	s, err := ota.LoadDevice(root)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "running    %s %s from slot %s\n", s.Running.Name, s.Running.Version, s.Slot.Name)
	for _, e := range ota.BootOrder(s.Entries) {
		what := "slot " + e.Slot
		if e.Slot == "" {
			what = "other"
		}
		fmt.Fprintf(stdout, "%-10s %-24s %-8s %s\n", what, e.File, e.State(), strings.TrimSpace(e.Title))
	}
	if next, ok := ota.NextBoot(s.Entries); ok {
		fmt.Fprintf(stdout, "next boot  %s\n", next.File)
	}
	if e, ok := ota.SlotEntry(s.Entries, s.Slot.Name); ok && e.State() == ota.Pending {
		fmt.Fprintln(stdout, "this boot is on trial: nodebake-health.service decides whether it is kept (systemctl status nodebake-health)")
	}
	if s.Key == nil {
		fmt.Fprintln(stdout, "updates    off: the image has no update key")
	} else {
		fmt.Fprintf(stdout, "update key %s (id %s)\n", ota.FormatPublicKey(s.Key), ota.KeyID(s.Key))
		if !s.Key.Equal(s.BakedKey) {
			fmt.Fprintf(stdout, "           rotated from the image's key %s (%s)\n", ota.KeyID(s.BakedKey), contract.KeyRotationsPath)
		}
		src := "none (bundles are applied from files)"
		if !s.Source.IsZero() {
			src = s.Source.String()
		}
		if s.Insecure {
			src += " (insecure: plain http allowed)"
		}
		fmt.Fprintf(stdout, "source     %s\n", src)
		now := time.Now()
		if err := autoStatus(root, now, stdout); err != nil {
			return err
		}
		for _, text := range slices.Sorted(maps.Keys(s.Channels)) {
			c := s.Channels[text]
			valid := "expires in " + ota.Ago(c.Expires.Sub(now))
			if now.After(c.Expires) {
				valid = "expired " + ota.Ago(now.Sub(c.Expires)) + " ago"
			}
			fmt.Fprintf(stdout, "channel    %s: %s, counter %d, signed %s ago (%s), %s (%s), last checked %s ago\n",
				text, c.Version, c.Counter, ota.Ago(now.Sub(c.Issued)), c.Issued.Format(time.RFC3339),
				valid, c.Expires.Format(time.RFC3339), ota.Ago(now.Sub(c.Checked)))
		}
	}
	if len(s.Failed) > 0 {
		fmt.Fprintf(stdout, "failed     %s (failed to boot here; not installed again unless -retry-failed)\n", strings.Join(s.Failed, ", "))
	}
	return nil
}

func rollbackCmd(args []string, stdout io.Writer) error {
	root, err := rootFlag("nodectl update rollback", args)
	if err != nil {
		return err
	}
	s, unlock, err := load(root)
	if err != nil {
		return err
	}
	defer unlock()
	if err := checkRollback(s); err != nil {
		return err
	}
	if err := ota.Rollback(s.ESP(), s.Slot.Name); err != nil {
		return err
	}
	other := ota.Other(s.Slot.Name)
	version := "?"
	if entries, err := ota.ReadEntries(s.ESP()); err == nil {
		if e, ok := ota.SlotEntry(entries, other); ok {
			version = e.Version
		}
	}
	fmt.Fprintf(stdout, "slot %s (%s) boots next, with 3 tries; if it does not pass its boot assessment, slot %s (%s) boots again\nreboot to switch: sudo systemctl reboot\n",
		other, version, s.Slot.Name, s.Running.Version)
	return nil
}

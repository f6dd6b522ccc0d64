package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/atomicfile"
	"github.com/nodebake/nodebake/ota"
)

// autoRun is what the last automatic update run did: nodectl update
// status shows it.
type autoRun struct {
	Checked time.Time `json:"checked"`
	Result  string    `json:"result"`
	Failed  bool      `json:"failed,omitempty"`
}

// autoDownloads is where automatic updates keep a download until it is
// installed: /data has room, and RAM belongs to bitcoind and Fulcrum.
const autoDownloads = "/data/.nodebake/downloads"

// reboot restarts the device into the slot that boots next; tests replace
// it.
var reboot = func() error {
	if out, err := exec.Command("systemctl", "reboot").CombinedOutput(); err != nil {
		return fmt.Errorf("systemctl reboot: %v: %s", err, out)
	}
	return nil
}

// updateAuto is one run of automatic updates (nodebake-update.service,
// started by its timer when the window opens). It installs a newer signed
// image that has not failed here, and reboots into it only inside the
// window; outside it (run by hand, or a download that outlasted the
// window) the new slot waits for the next window's run, which reboots.
// Whatever happens is recorded for nodectl update status.
func updateAuto(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nodectl update auto", flag.ContinueOnError)
	root := fs.String("root", "/", "the device's root (for tests)")
	at := fs.String("now", "", "take this RFC 3339 time as now (for tests)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	now := time.Now
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return fmt.Errorf("-now: %w", err)
		}
		now = func() time.Time { return t }
	}
	if err := needRoot(*root); err != nil {
		return err
	}
	sched, err := readSchedule(*root)
	if err != nil {
		return err
	}
	run := autoRun{Checked: now()}
	result, rebootNow, err := autoStep(ctx, *root, sched, now, stdout)
	run.Result = result
	if err != nil {
		run.Result, run.Failed = err.Error(), true
	}
	fmt.Fprintln(stdout, run.Result)
	if werr := writeAutoRun(*root, run); werr != nil && err == nil {
		err = werr
	}
	if err == nil && rebootNow {
		if err = reboot(); err != nil {
			run.Result, run.Failed = err.Error(), true
			_ = writeAutoRun(*root, run) // the error at hand says more
		}
	}
	return err
}

// autoStep decides and does one run's work, says what it did in one line,
// and whether the device reboots now.
func autoStep(ctx context.Context, root string, sched contract.Schedule, now func() time.Time, stdout io.Writer) (string, bool, error) {
	if until, paused, err := pausedUntil(root, now()); err != nil {
		return "", false, err
	} else if paused {
		if until.IsZero() {
			return "paused: nothing checked (nodectl update resume turns automatic updates back on)", false, nil
		}
		return fmt.Sprintf("paused until %s: nothing checked", until.Format(time.RFC3339)), false, nil
	}
	s, unlock, err := load(root)
	if err != nil {
		return "", false, err
	}
	result, install, err := autoDecide(ctx, s, stdout)
	// apply takes the lock itself and checks everything again.
	unlock()
	if err != nil || install == "" {
		if result == "" && err == nil {
			// A slot an earlier run installed waits to be booted.
			return rebootOrWait(sched, now(), installedVersion(s))
		}
		return result, false, err
	}
	dl := filepath.Join(root, autoDownloads)
	if err := os.MkdirAll(dl, 0o700); err != nil {
		return "", false, err
	}
	if err := updateApply(ctx, []string{"-root", root, "-download-dir", dl}, stdout); err != nil {
		return "", false, err
	}
	return rebootOrWait(sched, now(), install)
}

// autoDecide looks, under the update lock, at what the device and its
// source say. It returns the version to install, or why nothing is
// installed; neither when a slot installed earlier waits to be booted.
func autoDecide(ctx context.Context, s *ota.Device, stdout io.Writer) (result, install string, err error) {
	if e, ok := ota.SlotEntry(s.Entries, s.Slot.Name); ok && e.State() == ota.Pending {
		return fmt.Sprintf("this boot of %s is on trial: nothing is installed until its boot assessment keeps it", s.Running.Version), "", nil
	}
	if installedVersion(s) != "" {
		return "", "", nil
	}
	src := s.Source
	if src.IsZero() {
		return "", "", errors.New("this image names no update source (update.source in image.yaml)")
	}
	head, err := fetch(ctx, s, src, stdout)
	if err != nil {
		return "", "", err
	}
	p, err := s.Policy(false, false)
	if err != nil {
		return "", "", err
	}
	m := &head.Manifest
	if err := ota.VerifyManifest(head, p); err != nil {
		switch {
		case offersNothingNewer(s, head, p):
			return fmt.Sprintf("up to date: %s offers %s, this device runs %s", src, m.Version, s.Running.Version), "", nil
		case slices.Contains(s.Failed, m.Version):
			return fmt.Sprintf("skipped %s: it failed to boot here before (install it by hand with nodectl update apply -retry-failed)", m.Version), "", nil
		}
		return "", "", fmt.Errorf("%s: %w", src, err)
	}
	if _, err := checkData(s, m, false, io.Discard); err != nil {
		return fmt.Sprintf("held back %s: %v (install it by hand: nodectl update apply)", m.Version, err), "", nil
	}
	return "", m.Version, nil
}

// installedVersion is the version in the other slot when that slot boots
// next, on trial: installed by an earlier run, outside its window.
func installedVersion(s *ota.Device) string {
	if next, ok := ota.NextBoot(s.Entries); ok && next.Slot == ota.Other(s.Slot.Name) && next.State() == ota.Pending {
		return next.Version
	}
	return ""
}

// rebootOrWait says whether an installed version boots now, inside the
// window, or at the next one.
func rebootOrWait(sched contract.Schedule, now time.Time, version string) (string, bool, error) {
	if _, _, ok := sched.Window(now); ok {
		return "rebooting into " + version + " (installed, on trial)", true, nil
	}
	return fmt.Sprintf("%s installed: it boots when the next window opens, %s (or at any reboot)", version, sched.Next(now).Format(time.RFC3339)), false, nil
}

// readSchedule reads the image's update window.
func readSchedule(root string) (contract.Schedule, error) {
	b, err := os.ReadFile(filepath.Join(root, contract.UpdateSchedulePath))
	if errors.Is(err, fs.ErrNotExist) {
		return contract.Schedule{}, errors.New("automatic updates are off: this image has no update.schedule (nodectl update apply installs by hand)")
	}
	if err != nil {
		return contract.Schedule{}, err
	}
	return contract.ParseSchedule(strings.TrimSpace(string(b)))
}

// pausedUntil reads the pause: paused, and until when (zero: until
// resumed). A pause whose time has passed is over.
func pausedUntil(root string, now time.Time) (time.Time, bool, error) {
	b, err := os.ReadFile(filepath.Join(root, contract.UpdatePausePath))
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	text := strings.TrimSpace(string(b))
	if text == "" {
		return time.Time{}, true, nil
	}
	until, err := time.Parse(time.RFC3339, text)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%s: %q is not an RFC 3339 time: nodectl update resume, then pause again", contract.UpdatePausePath, text)
	}
	return until, now.Before(until), nil
}

func writeAutoRun(root string, r autoRun) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(root, contract.AutoUpdatePath)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}

func readAutoRun(root string) (*autoRun, error) {
	b, err := os.ReadFile(filepath.Join(root, contract.AutoUpdatePath))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r autoRun
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", contract.AutoUpdatePath, err)
	}
	return &r, nil
}

// updatePause holds automatic updates back: for a while, until a time, or
// until resumed.
func updatePause(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nodectl update pause", flag.ContinueOnError)
	root := fs.String("root", "/", "the device's root (for tests)")
	forD := fs.Duration("for", 0, "pause for this long (e.g. 72h); default: until nodectl update resume")
	until := fs.String("until", "", "pause until this RFC 3339 time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *forD != 0 && *until != "" {
		return errors.New("give -for or -until, not both")
	}
	if err := needRoot(*root); err != nil {
		return err
	}
	var end time.Time
	switch {
	case *forD < 0:
		return fmt.Errorf("-for %v: want a positive duration", *forD)
	case *forD > 0:
		end = time.Now().Add(*forD).Truncate(time.Second)
	case *until != "":
		t, err := time.Parse(time.RFC3339, *until)
		if err != nil {
			return fmt.Errorf("-until: %w", err)
		}
		end = t
	}
	text, say := "", "automatic updates paused until nodectl update resume"
	if !end.IsZero() {
		text, say = end.Format(time.RFC3339), "automatic updates paused until "+end.Format(time.RFC3339)
	}
	path := filepath.Join(*root, contract.UpdatePausePath)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := atomicfile.Write(path, []byte(text+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(stdout, say)
	return nil
}

func updateResume(args []string, stdout io.Writer) error {
	root, err := rootFlag("nodectl update resume", args)
	if err != nil {
		return err
	}
	if err := needRoot(root); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(root, contract.UpdatePausePath)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := atomicfile.SyncDir(filepath.Dir(filepath.Join(root, contract.UpdatePausePath))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	fmt.Fprintln(stdout, "automatic updates resumed")
	return nil
}

// autoStatus is nodectl update status's part on automatic updates.
func autoStatus(root string, now time.Time, stdout io.Writer) error {
	sched, err := readSchedule(root)
	if err != nil {
		fmt.Fprintln(stdout, "automatic  off: the image has no update.schedule")
		return nil
	}
	line := fmt.Sprintf("automatic  %s (%s)", sched, now.Location())
	if _, end, ok := sched.Window(now); ok {
		line += ", window open until " + end.Format(time.RFC3339)
	} else {
		line += ", next window " + sched.Next(now).Format(time.RFC3339)
	}
	fmt.Fprintln(stdout, line)
	until, paused, err := pausedUntil(root, now)
	switch {
	case err != nil:
		return err
	case paused && until.IsZero():
		fmt.Fprintln(stdout, "           paused until nodectl update resume")
	case paused:
		fmt.Fprintf(stdout, "           paused until %s\n", until.Format(time.RFC3339))
	}
	r, err := readAutoRun(root)
	if err != nil {
		return err
	}
	if r == nil {
		fmt.Fprintln(stdout, "last run   never")
		return nil
	}
	what := r.Result
	if r.Failed {
		what = "failed: " + what
	}
	fmt.Fprintf(stdout, "last run   %s (%s ago): %s\n", r.Checked.Format(time.RFC3339), ota.Ago(now.Sub(r.Checked)), what)
	return nil
}

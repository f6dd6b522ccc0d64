package main

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// stateDir holds what /init keeps per device on the data partition.
const stateDir = "data/.nodebake"

// stateMount is one mount that puts per-device state into the root image.
type stateMount struct {
	what, source, target, fstype, data string
	flags                              uintptr
}

// stateLayout says, for a root image assembled at root with the data
// partition on root/data, which directories must exist on data and what is
// mounted where:
//   - /var is an overlay: the image's /var below, the device's changes
//     (journal, package state, service data) on data;
//   - /etc is an overlay too, whose upper layer keeps only the account
//     passwords across boots (see prepareEtcUpper);
//   - /home is data/home;
//   - /etc/machine-id is data/.nodebake/machine-id, so the id survives updates
//     and no two devices share one.
func stateLayout(root string) (dirs []string, mounts []stateMount) {
	state := filepath.Join(root, stateDir)
	upper := filepath.Join(state, "var/upper")
	work := filepath.Join(state, "var/work")
	etcUpper := filepath.Join(state, "etc/upper")
	etcWork := filepath.Join(state, "etc/work")
	home := filepath.Join(root, "data/home")
	dirs = []string{state, upper, work, etcUpper, etcWork, home}
	mounts = []stateMount{
		{
			what:   "/var",
			source: "overlay", target: filepath.Join(root, "var"), fstype: "overlay",
			data: fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", filepath.Join(root, "var"), upper, work),
		},
		{
			what:   "/etc",
			source: "overlay", target: filepath.Join(root, "etc"), fstype: "overlay",
			data: fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", filepath.Join(root, "etc"), etcUpper, etcWork),
		},
		{what: "/home", source: home, target: filepath.Join(root, "home"), flags: unix.MS_BIND},
		{what: "/etc/machine-id", source: filepath.Join(state, "machine-id"), target: filepath.Join(root, "etc/machine-id"), flags: unix.MS_BIND},
	}
	return dirs, mounts
}

// setUpState creates the state directories on data, makes sure the device
// has a machine id and mounts the state into the root image.
func setUpState(root string) error {
	dirs, mounts := stateLayout(root)
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("state: %w", err)
		}
	}
	// The state directory is /init's: whatever happened to it, it is root's.
	state := filepath.Join(root, stateDir)
	if err := os.Chown(state, 0, 0); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := os.Chmod(state, 0o755); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	id, created, err := ensureMachineID(state)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := prepareEtcUpper(filepath.Join(state, "etc/upper"), filepath.Join(root, "etc")); err != nil {
		return fmt.Errorf("state: /etc: %w", err)
	}
	for _, m := range mounts {
		if _, err := os.Stat(m.target); err != nil {
			return fmt.Errorf("state: the root image lacks %s to mount on: %w", m.what, err)
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("state: mounting %s on %s: %w", m.source, m.what, err)
		}
	}
	note := ""
	if created {
		note = ", new"
	}
	say("state: /var, /home, passwords in /etc and /etc/machine-id from /data (machine id %s%s)", id, note)
	return nil
}

package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/nodebake/nodebake/internal/atomicfile"
)

// etcKeep are the files of /etc a device keeps across boots: the password
// an admin without SSH keys chose at first login (chpasswd and passwd need
// a writable /etc). Any other change to /etc lasts until the next boot, so
// the image, not the device's history, defines the system.
var etcKeep = map[string]bool{"shadow": true}

// prepareEtcUpper resets the upper layer of the /etc overlay to what the
// device keeps. The kept shadow file is rebuilt on the image's own, so
// accounts and ageing rules follow the image; only each account's
// password and its last-change day come from the device.
func prepareEtcUpper(upper, imageEtc string) error {
	entries, err := os.ReadDir(upper)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if etcKeep[e.Name()] && e.Type().IsRegular() {
			continue
		}
		if err := os.RemoveAll(filepath.Join(upper, e.Name())); err != nil {
			return err
		}
	}
	device, err := os.ReadFile(filepath.Join(upper, "shadow"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	image, err := os.ReadFile(filepath.Join(imageEtc, "shadow"))
	if err != nil {
		return err
	}
	st, err := os.Stat(filepath.Join(imageEtc, "shadow"))
	if err != nil {
		return err
	}
	merged := filepath.Join(upper, "shadow")
	if err := atomicfile.Write(merged, mergeShadow(image, device), st.Mode().Perm()); err != nil {
		return err
	}
	// Owned like the image's (root, group shadow).
	owner := st.Sys().(*syscall.Stat_t)
	return os.Chown(merged, int(owner.Uid), int(owner.Gid))
}

// mergeShadow is the image's shadow file with the password hash and
// last-change day of every account the device's file also has.
func mergeShadow(image, device []byte) []byte {
	kept := map[string][]string{}
	for _, line := range strings.Split(string(device), "\n") {
		if f := strings.Split(line, ":"); len(f) > 2 && f[0] != "" {
			kept[f[0]] = f
		}
	}
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(string(image), "\n"), "\n") {
		f := strings.Split(line, ":")
		if d, ok := kept[f[0]]; ok && len(f) > 2 {
			f[1], f[2] = d[1], d[2]
		}
		b.WriteString(strings.Join(f, ":") + "\n")
	}
	return []byte(b.String())
}

package firstboot

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Where a device without baked SSH keys keeps and shows its admin's
// one-time console password.
const (
	OneTimePassword = "/data/.nodebake/one-time-password"                // root-only, until the password is changed
	OneTimeIssue    = "/etc/issue.d/50-nodebake-one-time-password.issue" // /etc changes last one boot
	consoleUser     = "admin"
)

// Passwords sets an account's password and marks it expired, so that the
// first login must choose a new one.
type Passwords interface {
	SetExpired(user, password string) error
}

// SystemPasswords uses the image's own chpasswd and chage.
func SystemPasswords() Passwords { return systemPasswords{} }

type systemPasswords struct{}

func (systemPasswords) SetExpired(user, password string) error {
	cmd := exec.Command("/usr/sbin/chpasswd")
	cmd.Stdin = strings.NewReader(user + ":" + password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("chpasswd: %v: %s", err, out)
	}
	if out, err := exec.Command("/usr/bin/chage", "-d", "0", user).CombinedOutput(); err != nil {
		return fmt.Errorf("chage -d 0 %s: %v: %s", user, err, out)
	}
	return nil
}

// consolePassword gives an admin without SSH keys a way in that no other
// device shares: a one-time password made here, shown on the local console
// (the login screen) and expired, so the first login must replace it.
// Once it is replaced, the notice and the stored copy go away.
func (a *agent) consolePassword() ([]Item, error) {
	if a.c.Passwords == nil {
		return nil, nil
	}
	if _, err := os.Stat(a.path("/etc/ssh/authorized_keys/" + consoleUser)); err == nil {
		return a.forgetPassword("the image carries SSH keys for " + consoleUser)
	}
	hash, lastChange, err := shadowEntry(a.path("/etc/shadow"), consoleUser)
	if err != nil {
		return nil, err
	}
	stored, err := a.readRootOwned(OneTimePassword)
	switch {
	case hash == "*" || hash == "!" || hash == "!*" || hash == "":
		pw, err := newPassword()
		if err != nil {
			return nil, err
		}
		// Stored before it is set: a power cut in between leaves a password
		// that can still be shown, never one nobody knows.
		if err := a.writeRootOwned(OneTimePassword, []byte(pw+"\n"), 0o600); err != nil {
			return nil, err
		}
		if err := a.c.Passwords.SetExpired(consoleUser, pw); err != nil {
			return nil, err
		}
		items := []Item{{What: OneTimePassword, Status: Created, Detail: "one-time password for " + consoleUser + " (no SSH keys in the image)"}}
		return append(items, a.showPassword(pw)...), nil
	case lastChange == "0" && err == nil:
		return a.showPassword(strings.TrimSpace(string(stored))), nil
	case lastChange == "0":
		return nil, fmt.Errorf("%s must change a password nobody knows (%s is missing): log in on the console as root via recovery, or rebuild the image with an SSH key", consoleUser, OneTimePassword)
	}
	return a.forgetPassword(consoleUser + " has chosen a password")
}

func (a *agent) showPassword(pw string) []Item {
	notice := fmt.Sprintf("  First login on this console: %s / %s\n  (a one-time password: you will choose your own at once)\n\n", consoleUser, pw)
	// Root's only: agetty, which shows it, runs as root; a service or a
	// user logged in over SSH must not read the password.
	d, err := a.dir(filepath.Dir(OneTimeIssue), true)
	if err != nil {
		return []Item{{What: OneTimeIssue, Status: Failed, Detail: err.Error()}}
	}
	defer d.Close()
	it, err := a.w.file(d, filepath.Base(OneTimeIssue), []byte(notice), 0o600, rootOwner)
	if err != nil {
		return []Item{{What: OneTimeIssue, Status: Failed, Detail: err.Error()}}
	}
	it.Detail = "shown on the console login screen"
	return []Item{it}
}

// readRootOwned reads the file p (a device path) in a folder of root's,
// following no link on the way.
func (a *agent) readRootOwned(p string) ([]byte, error) {
	d, err := a.dir(filepath.Dir(p), false)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadFile(filepath.Base(p), maxRead)
}

// writeRootOwned makes p hold data, root's, with mode.
func (a *agent) writeRootOwned(p string, data []byte, mode fs.FileMode) error {
	d, err := a.dir(filepath.Dir(p), true)
	if err != nil {
		return err
	}
	defer d.Close()
	_, err = a.w.file(d, filepath.Base(p), data, mode, rootOwner)
	return err
}

func (a *agent) forgetPassword(why string) ([]Item, error) {
	var items []Item
	for _, p := range []string{OneTimePassword, OneTimeIssue} {
		d, err := a.dir(filepath.Dir(p), false)
		if err == nil {
			err = d.Remove(filepath.Base(p))
			d.Close()
		}
		switch {
		case err == nil:
			items = append(items, Item{What: p, Status: Changed, Detail: "removed: " + why})
		case !errors.Is(err, fs.ErrNotExist):
			return items, err
		}
	}
	return items, nil
}

// shadowEntry returns a user's password hash and last-change day.
func shadowEntry(path, user string) (hash, lastChange string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 2 && f[0] == user {
			return f[1], f[2], nil
		}
	}
	return "", "", fmt.Errorf("%s: no entry for %s", path, user)
}

// passwordAlphabet leaves out look-alikes (0/O, 1/l/I): the password is
// read off a screen and typed.
const passwordAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// newPassword returns 4 groups of 5 characters: about 117 bits.
func newPassword() (string, error) {
	var b strings.Builder
	for i := 0; i < 20; i++ {
		if i > 0 && i%5 == 0 {
			b.WriteByte('-')
		}
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(passwordAlphabet))))
		if err != nil {
			return "", err
		}
		b.WriteByte(passwordAlphabet[n.Int64()])
	}
	return b.String(), nil
}

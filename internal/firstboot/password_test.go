package firstboot

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// fakeShadow plays chpasswd + chage -d 0 on the test root's /etc/shadow.
type fakeShadow struct {
	r   *testRoot
	set []string
}

func (f *fakeShadow) SetExpired(user, pw string) error {
	f.set = append(f.set, user+":"+pw)
	f.r.write("etc/shadow", "root:*:20000:0:99999:7:::\n"+user+":$y$j9T$fakehash:0:0:99999:7:::\n")
	return nil
}

func TestConsolePassword(t *testing.T) {
	r := newTestRoot(t, 4<<30, 2, "2.1.1")
	r.write("etc/shadow", "root:*:20000:0:99999:7:::\nadmin:*::0:99999:7:::\n")
	pw := &fakeShadow{r: r}
	c := r.config()
	c.Passwords = pw
	if rep, err := Run(c); err != nil {
		t.Fatalf("%v: %+v", err, rep.Failed())
	}
	if len(pw.set) != 1 || !regexp.MustCompile(`^admin:([a-km-zA-HJ-NP-Z2-9]{5}-){3}[a-km-zA-HJ-NP-Z2-9]{5}$`).MatchString(pw.set[0]) {
		t.Fatalf("password set: %q", pw.set)
	}
	secret := strings.TrimPrefix(pw.set[0], "admin:")
	if st, err := os.Stat(r.path(OneTimePassword)); err != nil || st.Mode().Perm() != 0o600 || strings.TrimSpace(r.read(OneTimePassword)) != secret {
		t.Fatalf("stored password: %v %v", st, err)
	}
	if issue := r.read(OneTimeIssue); !strings.Contains(issue, "admin / "+secret) {
		t.Fatalf("console notice:\n%s", issue)
	}
	// agetty reads it as root; nobody else may.
	if st, err := os.Stat(r.path(OneTimeIssue)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("console notice: %v %v, want mode 0600", st, err)
	}
	if o, _ := r.owners.ownerOf(r.path(OneTimeIssue)); o != rootOwner {
		t.Fatalf("console notice owned by %v, want root", o)
	}

	// Not yet changed: the same password is shown again, none is made. A
	// notice an older agent left world-readable is made root's only.
	os.Chmod(r.path(OneTimeIssue), 0o644)
	if _, err := Run(c); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(r.path(OneTimeIssue)); st.Mode().Perm() != 0o600 {
		t.Fatalf("console notice left %v", st.Mode())
	}
	if len(pw.set) != 1 || !strings.Contains(r.read(OneTimeIssue), secret) {
		t.Fatalf("second boot before the change: set %q", pw.set)
	}

	// Changed by the admin: the notice and the stored copy go.
	r.write("etc/shadow", "root:*:20000:0:99999:7:::\nadmin:$y$j9T$chosen:20420:0:99999:7:::\n")
	if _, err := Run(c); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{OneTimePassword, OneTimeIssue} {
		if _, err := os.Stat(r.path(p)); !os.IsNotExist(err) {
			t.Errorf("%s kept after the password was changed", p)
		}
	}
	if len(pw.set) != 1 {
		t.Errorf("password set again: %q", pw.set)
	}
}

func TestNoConsolePasswordWithKeys(t *testing.T) {
	r := newTestRoot(t, 4<<30, 2, "2.1.1")
	r.write("etc/shadow", "admin:*::0:99999:7:::\n")
	r.write("etc/ssh/authorized_keys/admin", "ssh-ed25519 AAAA test\n")
	pw := &fakeShadow{r: r}
	c := r.config()
	c.Passwords = pw
	if _, err := Run(c); err != nil {
		t.Fatal(err)
	}
	if len(pw.set) != 0 {
		t.Fatalf("a password was set although the image carries keys: %q", pw.set)
	}
	if _, err := os.Stat(r.path(OneTimeIssue)); !os.IsNotExist(err) {
		t.Fatal("console notice written although the image carries keys")
	}
}

func TestPasswordsDiffer(t *testing.T) {
	a, _ := newPassword()
	b, _ := newPassword()
	if a == b || len(a) != 23 {
		t.Fatalf("%q %q", a, b)
	}
}

package rootfs

import (
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/nodebake/nodebake/internal/tree"
	"github.com/nodebake/nodebake/spec"
)

// AddUsers writes the spec's accounts into /etc/passwd, /etc/group,
// /etc/shadow and /etc/gshadow with their fixed ids. Every account gets a
// group of its own name and id. Passwords are "*": no password can log in,
// yet the account is not locked, so SSH keys still work.
//
// spec.Load has checked every field; AddUsers checks again the few
// characters that would add an account, for a Spec built by other code.
func AddUsers(t *tree.Tree, users []spec.User) error {
	for _, u := range users {
		for _, f := range append([]string{u.Name, u.Shell}, u.Groups...) {
			if strings.ContainsAny(f, ":,\n\r") {
				return fmt.Errorf("users: %q of user %q holds ':', ',' or a line break, which would add entries to /etc/passwd or /etc/group: check the spec with spec.Load", f, u.Name)
			}
		}
		for _, k := range u.SSHAuthorizedKeys {
			if strings.ContainsAny(k, "\n\r") {
				return fmt.Errorf("users: a key of user %q holds a line break, which would add keys: one key per entry", u.Name)
			}
		}
	}
	db := map[string][][]string{}
	for _, f := range []string{"passwd", "group", "shadow", "gshadow"} {
		b, err := t.ReadFile("etc/" + f)
		if err != nil {
			return fmt.Errorf("users: %w", err)
		}
		db[f] = parseColon(string(b))
	}
	taken := func(file string, col int, v string) bool {
		for _, r := range db[file] {
			if len(r) > col && r[col] == v {
				return true
			}
		}
		return false
	}
	for _, u := range users {
		id := strconv.Itoa(u.UID)
		switch {
		case taken("passwd", 0, u.Name):
			return fmt.Errorf("users: %s already exists in the Debian userland: pick another name", u.Name)
		case taken("passwd", 2, id):
			return fmt.Errorf("users: %s: uid %d already belongs to another account", u.Name, u.UID)
		case taken("group", 0, u.Name) || taken("group", 2, id):
			return fmt.Errorf("users: %s: group name or gid %d already exists", u.Name, u.UID)
		}
		db["passwd"] = append(db["passwd"], []string{u.Name, "x", id, id, "", "/home/" + u.Name, u.Shell})
		// An empty last-change day turns password ageing off: "0" would
		// force a password change at the first (key) login.
		db["shadow"] = append(db["shadow"], []string{u.Name, "*", "", "0", "99999", "7", "", "", ""})
		db["group"] = append(db["group"], []string{u.Name, "x", id, ""})
		db["gshadow"] = append(db["gshadow"], []string{u.Name, "!", "", ""})
	}
	for i, u := range users {
		for _, g := range u.Groups {
			if err := addMember(db["group"], 3, g, u.Name); err != nil {
				return fmt.Errorf("users[%d] %s: %w", i, u.Name, err)
			}
			if err := addMember(db["gshadow"], 3, g, u.Name); err != nil {
				return fmt.Errorf("users[%d] %s: %w", i, u.Name, err)
			}
		}
	}
	modes := map[string]struct {
		mode fs.FileMode
		gid  string
	}{"passwd": {0o644, ""}, "group": {0o644, ""}, "shadow": {0o640, "shadow"}, "gshadow": {0o640, "shadow"}}
	for f, m := range modes {
		owner := tree.Root
		if m.gid != "" {
			gid, err := lookupGID(db["group"], m.gid)
			if err != nil {
				return err
			}
			owner.GID = gid
		}
		t.WriteFile("etc/"+f, []byte(formatColon(db[f])), m.mode, owner)
	}
	return nil
}

// AuthorizedKeys bakes each user's SSH keys into /etc/ssh/authorized_keys/<user>,
// which sshd reads (see the image's sshd drop-in) and which the immutable root
// protects from tampering.
func AuthorizedKeys(t *tree.Tree, users []spec.User) {
	for _, u := range users {
		if len(u.SSHAuthorizedKeys) == 0 {
			continue
		}
		keys := strings.Join(u.SSHAuthorizedKeys, "\n") + "\n"
		t.WriteFile("etc/ssh/authorized_keys/"+u.Name, []byte(keys), 0o644, tree.Root)
	}
}

func addMember(rows [][]string, col int, group, user string) error {
	for i, r := range rows {
		if r[0] != group {
			continue
		}
		for len(r) <= col {
			r = append(r, "")
		}
		rows[i] = r
		members := strings.Split(r[col], ",")
		if r[col] == "" {
			members = nil
		}
		for _, m := range members {
			if m == user {
				return nil
			}
		}
		members = append(members, user)
		sort.Strings(members)
		r[col] = strings.Join(members, ",")
		return nil
	}
	return fmt.Errorf("group %q does not exist in the image: use a Debian group (sudo, adm, …) or another user's name", group)
}

func lookupGID(groups [][]string, name string) (int, error) {
	for _, r := range groups {
		if r[0] == name && len(r) > 2 {
			return strconv.Atoi(r[2])
		}
	}
	return 0, fmt.Errorf("users: group %q missing from /etc/group", name)
}

func parseColon(s string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(s, "\n") {
		if line != "" {
			rows = append(rows, strings.Split(line, ":"))
		}
	}
	return rows
}

func formatColon(rows [][]string) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(strings.Join(r, ":"))
		b.WriteByte('\n')
	}
	return b.String()
}

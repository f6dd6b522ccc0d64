package firstboot

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LookupUser finds a user's uid and primary gid in root's /etc/passwd. The
// agent reads the files rather than asking the C library so that it works
// the same on a temporary root in tests.
func LookupUser(root, name string) (Owner, error) {
	p := filepath.Join(root, "etc/passwd")
	b, err := os.ReadFile(p)
	if err != nil {
		return Owner{}, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 || f[0] != name {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return Owner{}, fmt.Errorf("%s: bad ids for %s: %q", p, name, sc.Text())
		}
		return Owner{uid, gid}, nil
	}
	return Owner{}, fmt.Errorf("%s has no user %s: the image must define it (image.yaml users)", p, name)
}

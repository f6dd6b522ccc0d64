package contract

import (
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	for _, s := range []string{"minibolt", "a", "node-2", strings.Repeat("a", 63)} {
		if err := CheckName(s); err != nil {
			t.Errorf("CheckName(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "Node", "2node", "node-", "no de", "node\ntitle x", "node/x", "nöde", strings.Repeat("a", 64)} {
		if err := CheckName(s); err == nil {
			t.Errorf("CheckName(%q) accepted it", s)
		}
	}
	for _, s := range []string{"1.0.0", "0.2~rc1", "1.0^p1", "2.1.1-3+deb12u1", "v2_beta", strings.Repeat("1", 64)} {
		if err := CheckVersion(s); err != nil {
			t.Errorf("CheckVersion(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "-1", ".1", "1.0\noptions init=/bin/sh", "1.0 x", "1;reboot", "1/2", "$(id)", `1"`, strings.Repeat("1", 65)} {
		if err := CheckVersion(s); err == nil {
			t.Errorf("CheckVersion(%q) accepted it", s)
		}
	}
}

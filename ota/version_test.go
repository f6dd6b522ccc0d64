package ota_test

import (
	"testing"

	"github.com/nodebake/nodebake/ota"
)

func TestCompareVersions(t *testing.T) {
	// Each version is newer than the one before it. The second list is
	// the example order in systemd's own source.
	for _, ordered := range [][]string{
		{"0.9", "1.0~rc1", "1.0~rc2", "1.0", "1.0-1", "1.0^p1", "1.0.1", "1.2", "1.9.9", "1.10", "1.10a", "2", "2.0.0.1", "10"},
		{"122.1", "123~rc1-1", "123", "123-a", "123-a.1", "123-1", "123-1.1", "123^post1", "123.a-1", "123.1-1", "123a-1", "124-1"},
	} {
		checkOrder(t, ordered)
	}
	for _, eq := range [][2]string{{"1.007", "1.7"}, {"123_a", "123a"}, {"v2", "v2"}} {
		if got := ota.CompareVersions(eq[0], eq[1]); got != 0 {
			t.Errorf("CompareVersions(%q, %q) = %d, want 0", eq[0], eq[1], got)
		}
	}
}

func checkOrder(t *testing.T, ordered []string) {
	t.Helper()
	for i := range ordered {
		for j := range ordered {
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := ota.CompareVersions(ordered[i], ordered[j]); got != want {
				t.Errorf("CompareVersions(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}

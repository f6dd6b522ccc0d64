package ota_test

import (
	"errors"
	"os/exec"
	"testing"

	"github.com/nodebake/nodebake/ota"
)

func TestCompareVersions(t *testing.T) {
	// Each version is newer than the one before it. The second list is
	// the example order in systemd's own source.
	for _, ordered := range [][]string{
		{"0.9", "1.0~rc1", "1.0~rc2", "1.0", "1.0-1", "1.0^p1", "1.0.1", "1.2", "1.9.9", "1.10", "1.10a", "2", "2.0.0.1", "10"},
		{"122.1", "123~rc1-1", "123", "123-a", "123-a.1", "123-1", "123-1.1", "123^post1", "123.a-1", "123.1-1", "123a-1", "124-1"},
		// A numeric segment of zeros is still a number, and newer than
		// letters: where the port before systemd's rules went wrong.
		{"2.beta", "2.0", "2.00.1"},
		{"1.a", "1.z", "1.0", "1.1"},
		{"~1", "", "1"},
	} {
		checkOrder(t, ordered)
	}
	for _, eq := range [][2]string{{"1.007", "1.7"}, {"123_a", "123a"}, {"v2", "v2"}, {"", "_"}, {"1.0", "1.0_"}, {"é1", "1"}} {
		if got := ota.CompareVersions(eq[0], eq[1]); got != 0 {
			t.Errorf("CompareVersions(%q, %q) = %d, want 0", eq[0], eq[1], got)
		}
	}
	// Pairs on which the first port disagreed with systemd-boot.
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"2.0", "2.beta", 1}, {"2.beta", "2.0", -1}, {"1.00", "1.a", 1}, {"0", "a", 1},
		{"1-0", "1-rc", 1}, {"1^0", "1^x", 1}, {"", "~1", 1}, {"_", "", 0},
	} {
		if got := ota.CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
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

// versionSamples are versions whose pairs cover every rule: separators
// against each other and against the end, numbers against letters (zeros
// included), leading zeros, ignored characters and "~" at every place.
var versionSamples = []string{
	"", "0", "00", "1", "01", "1.0", "1.00", "1.0.0", "1.a", "1.beta", "1-0", "1-a", "1^0", "1^a",
	"1~0", "1~a", "~1", "2.0", "2.beta", "2_0", "10", "9.99", "1.0~rc1", "1.0-rc1", "a", "A",
}

// TestCompareVersionsLikeSystemd asks systemd itself about every pair of
// versionSamples (325 pairs): systemd-analyze compare-versions runs the
// same strverscmp_improved as systemd-boot.
func TestCompareVersionsLikeSystemd(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze not found: apt-get install systemd")
	}
	for i, a := range versionSamples {
		for _, b := range versionSamples[i+1:] {
			// Exit status 0: equal, 11: a is newer, 12: a is older.
			want := 0
			err := exec.Command("systemd-analyze", "compare-versions", a, b).Run()
			var exit *exec.ExitError
			switch {
			case errors.As(err, &exit) && exit.ExitCode() == 11:
				want = 1
			case errors.As(err, &exit) && exit.ExitCode() == 12:
				want = -1
			case err != nil:
				t.Fatalf("systemd-analyze compare-versions %q %q: %v", a, b, err)
			}
			if got := ota.CompareVersions(a, b); got != want {
				t.Errorf("CompareVersions(%q, %q) = %d, systemd says %d", a, b, got, want)
			}
		}
	}
}

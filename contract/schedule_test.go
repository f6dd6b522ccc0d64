package contract_test

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/contract"
)

func TestParseScheduleRefuses(t *testing.T) {
	for s, want := range map[string]string{
		"":                        "want",
		"daily":                   "want",
		"daily 03:00":             "want",
		"hourly 03:00-05:00":      `unknown day "hourly"`,
		"mon,mon 03:00-05:00":     "mon given twice",
		"daily 3:00-05:00":        `"3:00" is not a time of day`,
		"daily 24:00-05:00":       `"24:00"`,
		"daily 03:60-05:00":       `"03:60"`,
		"daily -1:00-05:00":       "want",
		"daily 03:00-03:10":       "the window is 10m0s, want at least 30m0s",
		"daily 03:00-03:00":       "", // a whole day: allowed
		"daily 03:00-05:00\nmon":  "want",
		"daily 03:00-05:00 extra": "want",
	} {
		_, err := contract.ParseSchedule(s)
		switch {
		case want == "" && err != nil:
			t.Errorf("ParseSchedule(%q): %v", s, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("ParseSchedule(%q) = %v, want an error with %q", s, err, want)
		}
	}
}

func mustSchedule(t *testing.T, s string) contract.Schedule {
	t.Helper()
	sc, err := contract.ParseSchedule(s)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestScheduleWindow(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse("Mon 2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		sched, now string
		in         bool
		next       string
	}{
		{"daily 03:00-05:00", "Wed 2026-12-02 02:59", false, "Wed 2026-12-02 03:00"},
		{"daily 03:00-05:00", "Wed 2026-12-02 03:00", true, "Thu 2026-12-03 03:00"},
		{"daily 03:00-05:00", "Wed 2026-12-02 04:59", true, "Thu 2026-12-03 03:00"},
		{"daily 03:00-05:00", "Wed 2026-12-02 05:00", false, "Thu 2026-12-03 03:00"},
		// Past midnight, the window belongs to the day it starts on.
		{"sat,sun 22:00-02:00", "Sun 2026-12-06 01:30", true, "Sun 2026-12-06 22:00"},
		{"sat,sun 22:00-02:00", "Mon 2026-12-07 01:30", true, "Sat 2026-12-12 22:00"},
		{"sat,sun 22:00-02:00", "Sat 2026-12-05 01:30", false, "Sat 2026-12-05 22:00"},
		{"sat,sun 22:00-02:00", "Tue 2026-12-08 23:00", false, "Sat 2026-12-12 22:00"},
		{"daily 00:00-00:00", "Tue 2026-12-08 23:59", true, "Wed 2026-12-09 00:00"},
	} {
		sc := mustSchedule(t, c.sched)
		_, _, in := sc.Window(at(c.now))
		if in != c.in {
			t.Errorf("%s at %s: in the window = %v, want %v", c.sched, c.now, in, c.in)
		}
		if got := sc.Next(at(c.now)).Format("Mon 2006-01-02 15:04"); got != c.next {
			t.Errorf("%s after %s: next window %s, want %s", c.sched, c.now, got, c.next)
		}
	}
}

// TestScheduleOnCalendar asks systemd when the timer's OnCalendar fires
// next, from several moments, and compares with Next: the timer and
// nodectl must agree on the windows.
func TestScheduleOnCalendar(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze not found: apt-get install systemd")
	}
	next := regexp.MustCompile(`Next elapse: \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC`)
	for _, s := range []string{"daily 03:00-05:00", "sat,sun 22:00-02:00", "mon,wed,fri 12:30-13:30"} {
		sc := mustSchedule(t, s)
		for _, from := range []string{"2026-12-02T02:00:00Z", "2026-12-05T23:00:00Z", "2026-12-07T13:00:00Z"} {
			base, _ := time.Parse(time.RFC3339, from)
			cmd := exec.Command("systemd-analyze", "calendar", fmt.Sprintf("--base-time=@%d", base.Unix()), sc.OnCalendar())
			cmd.Env = append(os.Environ(), "TZ=UTC")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("systemd-analyze calendar %q: %v\n%s", sc.OnCalendar(), err, out)
			}
			m := next.FindStringSubmatch(string(out))
			if m == nil {
				t.Fatalf("systemd-analyze calendar %q: no next elapse in:\n%s", sc.OnCalendar(), out)
			}
			if want := sc.Next(base).Format("2006-01-02 15:04:05"); m[1] != want {
				t.Errorf("%s (%s) from %s: systemd fires at %s, Next says %s", s, sc.OnCalendar(), from, m[1], want)
			}
		}
	}
}

// The automatic update window: image.yaml's update.schedule. The builder
// turns it into the device's timer; nodectl reads it back to know whether
// it may reboot now. Both read it with ParseSchedule, so they cannot
// disagree about what it means.

package contract

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Schedule is a recurring window in the device's local time (UTC unless
// the image sets a time zone) in which it may install an update and
// reboot: on Days (all seven for "daily"), from Start for Length. A
// window may run past midnight; it then belongs to the day it starts.
type Schedule struct {
	Days   []time.Weekday // sorted, no duplicates
	Start  time.Duration  // after midnight
	Length time.Duration  // at least MinWindow, less than a day
	text   string
}

// MinWindow is the shortest window: enough to download a bundle on a slow
// line and reboot.
const MinWindow = 30 * time.Minute

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseSchedule reads "daily HH:MM-HH:MM" or "DAY[,DAY...] HH:MM-HH:MM"
// with DAY one of mon..sun, for example "daily 03:00-05:00" or
// "sat,sun 22:00-02:00".
func ParseSchedule(s string) (Schedule, error) {
	const form = `want "daily HH:MM-HH:MM" or "DAY[,DAY...] HH:MM-HH:MM" (DAY: mon tue wed thu fri sat sun), e.g. "daily 03:00-05:00"`
	f := strings.Fields(s)
	if len(f) != 2 {
		return Schedule{}, fmt.Errorf("schedule %q: %s", s, form)
	}
	var sc Schedule
	if f[0] == "daily" {
		for d := time.Sunday; d <= time.Saturday; d++ {
			sc.Days = append(sc.Days, d)
		}
	} else {
		for _, name := range strings.Split(f[0], ",") {
			d, ok := weekdays[name]
			if !ok {
				return Schedule{}, fmt.Errorf("schedule %q: unknown day %q: %s", s, name, form)
			}
			if slices.Contains(sc.Days, d) {
				return Schedule{}, fmt.Errorf("schedule %q: %s given twice", s, name)
			}
			sc.Days = append(sc.Days, d)
		}
		slices.Sort(sc.Days)
	}
	from, to, ok := strings.Cut(f[1], "-")
	if !ok {
		return Schedule{}, fmt.Errorf("schedule %q: %s", s, form)
	}
	start, err := clock(from)
	if err != nil {
		return Schedule{}, fmt.Errorf("schedule %q: %v: %s", s, err, form)
	}
	end, err := clock(to)
	if err != nil {
		return Schedule{}, fmt.Errorf("schedule %q: %v: %s", s, err, form)
	}
	sc.Start, sc.Length = start, end-start
	if sc.Length <= 0 {
		sc.Length += 24 * time.Hour // past midnight
	}
	if sc.Length < MinWindow {
		return Schedule{}, fmt.Errorf("schedule %q: the window is %v, want at least %v to download and reboot", s, sc.Length, MinWindow)
	}
	sc.text = f[0] + " " + f[1]
	return sc, nil
}

// clock reads HH:MM as the time after midnight.
func clock(s string) (time.Duration, error) {
	digit := func(i int) int {
		if i < len(s) && s[i] >= '0' && s[i] <= '9' {
			return int(s[i] - '0')
		}
		return -100
	}
	h, m := digit(0)*10+digit(1), digit(3)*10+digit(4)
	if len(s) != 5 || s[2] != ':' || h < 0 || h > 23 || m < 0 || m > 59 {
		return 0, fmt.Errorf("%q is not a time of day HH:MM", s)
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute, nil
}

func (s Schedule) String() string { return s.text }

// OnCalendar is the window's start as a systemd calendar event
// (systemd.time(7)).
func (s Schedule) OnCalendar() string {
	days := ""
	if len(s.Days) < 7 {
		var names []string
		for _, d := range s.Days {
			names = append(names, d.String()[:3])
		}
		days = strings.Join(names, ",") + " "
	}
	return fmt.Sprintf("%s*-*-* %02d:%02d:00", days, int(s.Start.Hours()), int(s.Start.Minutes())%60)
}

// Window returns the window that holds t, if one does.
func (s Schedule) Window(t time.Time) (start, end time.Time, ok bool) {
	// The window holding t started today or, past midnight, yesterday.
	for back := 0; back <= 1; back++ {
		day := t.AddDate(0, 0, -back)
		start = time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, t.Location()).Add(s.Start)
		end = start.Add(s.Length)
		if slices.Contains(s.Days, day.Weekday()) && !t.Before(start) && t.Before(end) {
			return start, end, true
		}
	}
	return time.Time{}, time.Time{}, false
}

// Next returns the start of the first window that opens after t.
func (s Schedule) Next(t time.Time) time.Time {
	for ahead := 0; ahead <= 7; ahead++ {
		day := t.AddDate(0, 0, ahead)
		start := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, t.Location()).Add(s.Start)
		if start.After(t) && slices.Contains(s.Days, day.Weekday()) {
			return start
		}
	}
	panic("contract: a schedule without days") // ParseSchedule makes none
}

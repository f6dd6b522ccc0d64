package diskguard

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/internal/bytesize"
)

type fake struct{ stops, starts int }

func (f *fake) Stop() error  { f.stops++; return nil }
func (f *fake) Start() error { f.starts++; return nil }

func TestLimit(t *testing.T) {
	for _, c := range []struct{ size, want uint64 }{
		{256 * bytesize.MiB, 16 * bytesize.MiB},
		{100 * bytesize.GiB, bytesize.GiB},
		{2 << 40, 4 * bytesize.GiB},
	} {
		if got := Limit(c.size); got != c.want {
			t.Errorf("Limit(%d) = %d, want %d", c.size, got, c.want)
		}
	}
}

// Below the limit the services stop once and the marker says why; they
// start again only when twice the limit is free (no flapping at the edge).
func TestStopAndResume(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "run/nodebake/disk-full")
	s := &fake{}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	size := uint64(1000 * bytesize.GiB) // limit 4 GiB
	steps := []struct {
		avail  uint64
		act    Action
		stops  int
		starts int
	}{
		{10 * bytesize.GiB, None, 0, 0},
		{3 * bytesize.GiB, Stopped, 1, 0},
		{2 * bytesize.GiB, None, 1, 0},
		{5 * bytesize.GiB, None, 1, 0}, // above the limit, below twice it
		{9 * bytesize.GiB, Resumed, 1, 1},
		{9 * bytesize.GiB, None, 1, 1},
	}
	for i, st := range steps {
		act, msg, err := Check(Usage{Size: size, Avail: st.avail}, marker, s, now)
		if err != nil {
			t.Fatal(err)
		}
		if act != st.act || s.stops != st.stops || s.starts != st.starts {
			t.Fatalf("step %d (%d GiB free): action %d, %d stops, %d starts; want %d, %d, %d", i, st.avail>>30, act, s.stops, s.starts, st.act, st.stops, st.starts)
		}
		if act == Stopped {
			why := Reason(marker)
			if why == "" || !strings.Contains(msg, "3 GiB free, less than 4 GiB") || why != msg {
				t.Errorf("marker %q, message %q", why, msg)
			}
		}
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("marker left after resuming: %v", err)
	}
}

func TestStat(t *testing.T) {
	u, err := Stat(t.TempDir())
	if err != nil || u.Size == 0 || u.Avail > u.Size {
		t.Errorf("%+v %v", u, err)
	}
}

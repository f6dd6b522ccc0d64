package progress

import (
	"bytes"
	"strings"
	"testing"
)

func TestSteps(t *testing.T) {
	var out bytes.Buffer
	p := Steps(&out)
	for _, s := range []struct {
		step        string
		done, total int64
	}{{"root.img", 0, 4e6}, {"root.img", 1e6, 4e6}, {"root.img", 4e6, 4e6}, {"write root", 0, 2e6}, {"write root", 2e6, 2e6}} {
		p(s.step, s.done, s.total)
	}
	want := "  root.img:   0% (0.0 MB of 4.0 MB)\n  root.img: done (4.0 MB)\n  write root:   0% (0.0 MB of 2.0 MB)\n  write root: done (2.0 MB)\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
	Steps(nil)("silent", 1, 1)
	if strings.Count(out.String(), "\n") != 4 {
		t.Error("a nil writer wrote")
	}
}

// Package progress reports how far a long step has come: a line that
// rewrites itself on a terminal, a few plain lines elsewhere (CI logs).
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Counter counts bytes of a step whose total is known and prints the share
// done at most every interval.
type Counter struct {
	mu       sync.Mutex
	w        io.Writer
	label    string
	total    int64
	done     int64
	last     time.Time
	interval time.Duration
	tty      bool
}

// New returns a counter writing to w (nil: silent).
func New(w io.Writer, label string, total int64) *Counter {
	c := &Counter{w: w, label: label, total: total, interval: 10 * time.Second}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			c.tty, c.interval = true, 200*time.Millisecond
		}
	}
	return c
}

// Add records n more bytes done.
func (c *Counter) Add(n int64) {
	if c == nil || c.w == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done += n
	if now := time.Now(); now.Sub(c.last) >= c.interval {
		c.last = now
		c.print("")
	}
}

// Set records an absolute amount done (for steps that report positions).
func (c *Counter) Set(done int64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	d := done - c.done
	c.mu.Unlock()
	c.Add(d)
}

// Done ends the progress line.
func (c *Counter) Done() {
	if c == nil || c.w == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tty {
		c.print("\n")
	}
}

func (c *Counter) print(end string) {
	pct := 100.0
	if c.total > 0 {
		pct = 100 * float64(c.done) / float64(c.total)
	}
	line := fmt.Sprintf("  %s: %3.0f%% (%s of %s)", c.label, pct, MB(c.done), MB(c.total))
	if c.tty {
		fmt.Fprintf(c.w, "\r%-70s%s", line, end)
	} else {
		fmt.Fprintln(c.w, line)
	}
}

// Writer wraps w so that bytes written through it are counted.
func (c *Counter) Writer(w io.Writer) io.Writer { return countWriter{w, c} }

type countWriter struct {
	w io.Writer
	c *Counter
}

func (cw countWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.c.Add(int64(n))
	return n, err
}

// MB renders a byte count for people.
func MB(n int64) string {
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

// SetTotal sets the total once a step knows it.
func (c *Counter) SetTotal(total int64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.total = total
	c.mu.Unlock()
}

package progress

import (
	"fmt"
	"io"
)

// Steps reports a run of steps that each count their own bytes, in the
// form the update library reports them (ota.Progress): one line per step
// that rewrites itself on a terminal; elsewhere the counter's occasional
// lines and one more when the step is done, so a log shows every step
// finish. A nil w is silent.
func Steps(w io.Writer) func(step string, done, total int64) {
	var c *Counter
	current := ""
	return func(step string, done, total int64) {
		if w == nil {
			return
		}
		if c == nil || step != current {
			c, current = New(w, step, total), step
		}
		c.Set(done)
		if done >= total {
			c.Done()
			if !c.tty {
				fmt.Fprintf(w, "  %s: done (%s)\n", step, MB(total))
			}
			c = nil
		}
	}
}

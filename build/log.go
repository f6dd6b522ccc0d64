package build

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/nodebake/nodebake/internal/progress"
)

// stageLog prints each stage, what it does and how long it took, and stops
// the pipeline between stages once ctx is cancelled (Ctrl-C).
type stageLog struct {
	ctx   context.Context
	w     io.Writer
	start time.Time
}

func newLog(ctx context.Context, w io.Writer) *stageLog {
	return &stageLog{ctx: ctx, w: w, start: time.Now()}
}

func (l *stageLog) stage(name, what string, run func() error) error {
	if err := l.ctx.Err(); err != nil {
		return err
	}
	if l.w != nil {
		fmt.Fprintf(l.w, "==> %-16s %s\n", name, what)
	}
	start := time.Now()
	if err := run(); err != nil {
		return err
	}
	if err := l.ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if l.w != nil {
		fmt.Fprintf(l.w, "    %-16s done in %s\n", name, elapsed(start))
	}
	return nil
}

// detail is where a stage sends its own lines: nowhere when quiet, never
// a nil writer.
func (l *stageLog) detail() io.Writer {
	if l.w == nil {
		return io.Discard
	}
	return l.w
}

func (l *stageLog) counter(label string, total int64) *progress.Counter {
	return progress.New(l.w, label, total)
}

func (l *stageLog) done(r *Result) {
	if l.w == nil {
		return
	}
	fmt.Fprintf(l.w, "==> built %s in %s\n    sha256 %s\n    bill of materials %s\n", r.Image, elapsed(l.start), r.SHA256, SBOMPath(r.Image))
}

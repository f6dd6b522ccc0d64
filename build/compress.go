package build

import (
	"context"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

// compress writes src as a zstd stream to dst: raw images are mostly zeros
// (the empty slot b and data), so .img.zst is what users download.
func compress(ctx context.Context, src, dst string, log *stageLog) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	// The encoder's output does not depend on its concurrency.
	enc, err := zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return err
	}
	bar := log.counter("compress", st.Size())
	defer bar.Done()
	if _, err := io.Copy(enc, io.TeeReader(ctxReader{ctx, in}, bar.Writer(io.Discard))); err != nil {
		enc.Close()
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	return out.Sync()
}

// ctxReader stops a long copy when the build is cancelled (Ctrl-C).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"

	"github.com/nodebake/nodebake/internal/sparse"
)

// checksum returns the SHA-256 of the raw image at src and, when dst is
// not empty, writes src as a zstd stream to dst in the same pass: raw
// images are mostly zeros (the empty slot b and data), so .img.zst is what
// users download. The image's holes are never read from disk (see
// internal/sparse), and the encoder works on its own goroutines while this
// one hashes.
func checksum(ctx context.Context, src, dst string, log *stageLog) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	r, err := sparse.NewReader(in)
	if err != nil {
		return "", fmt.Errorf("%s: %w", src, err)
	}
	st, err := in.Stat()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	w := io.Writer(h)
	var enc *zstd.Encoder
	var out *os.File
	if dst != "" {
		if out, err = os.Create(dst); err != nil {
			return "", err
		}
		defer out.Close()
		// The encoder's output does not depend on its concurrency.
		if enc, err = zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.SpeedDefault)); err != nil {
			return "", err
		}
		w = io.MultiWriter(h, enc)
	}
	bar := log.counter("checksum", st.Size())
	defer bar.Done()
	buf := make([]byte, 4<<20)
	if _, err := io.CopyBuffer(w, io.TeeReader(ctxReader{ctx, r}, bar.Writer(io.Discard)), buf); err != nil {
		if enc != nil {
			enc.Close()
		}
		return "", err
	}
	if enc != nil {
		if err := enc.Close(); err != nil {
			return "", err
		}
		if err := out.Sync(); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
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

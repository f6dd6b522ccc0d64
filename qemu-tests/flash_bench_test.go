//go:build qemu

package qemutests

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nodebake/nodebake/internal/flash"
)

// BenchmarkFlash prints what nodebake flash writes of the shared image,
// from the raw image and from its .zst, with the time including the sync
// and the read-back, next to the baseline a user had before: copying every
// byte of the image (dd … conv=fsync). Nothing is asserted; run it with
// `make bench`.
func BenchmarkFlash(b *testing.B) {
	dir := b.TempDir()
	zst := filepath.Join(dir, "minibolt.img.zst")
	compress(b, image, zst)
	for i := 0; i < b.N; i++ {
		for _, c := range []struct{ name, src string }{{"img", image}, {"zst", zst}} {
			img, err := flash.OpenImage(c.src)
			if err != nil {
				b.Fatal(err)
			}
			dev := filepath.Join(dir, "disk-"+c.name)
			f, err := os.Create(dev)
			if err != nil {
				b.Fatal(err)
			}
			f.Truncate(img.Size)
			start := time.Now()
			res, err := flash.Write(context.Background(), img, f, flash.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(time.Since(start).Seconds(), "s-flash-"+c.name)
			b.ReportMetric(float64(res.Written)/1e6, "MB-written-"+c.name)
			b.ReportMetric(float64(img.Size)/1e6, "MB-image")
			img.Close()
			f.Close()
			os.Remove(dev)
		}

		// Baseline: every byte, as dd writes it, then fsync.
		start := time.Now()
		in, err := os.Open(image)
		if err != nil {
			b.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dir, "disk-dd"))
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(struct{ io.Writer }{out}, in) // no copy_file_range: dd writes the zeros too
		if err != nil {
			b.Fatal(err)
		}
		if err := out.Sync(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s-full-copy")
		b.ReportMetric(float64(n)/1e6, "MB-full-copy")
		in.Close()
		out.Close()
		os.Remove(out.Name())
	}
}

func compress(b *testing.B, src, dst string) {
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	enc, err := zstd.NewWriter(out)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(enc, in); err != nil {
		b.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		b.Fatal(err)
	}
}

// Package initramfs builds the initramfs: the Go /init, the few kernel
// modules it loads, and the directories it mounts on, as a newc cpio archive
// compressed with zstd. The output depends only on its inputs: entries are
// sorted, owned by root, stamped with one mtime and numbered in order.
package initramfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/cavaliergopher/cpio"
	"github.com/klauspost/compress/zstd"
)

// Stats says what went into an initramfs.
type Stats struct {
	Load      []string // module names /init loads, in order
	Builtin   []string // requested modules built into the kernel: nothing to load
	Files     []string // module files in the archive, relative to lib/modules/<kver>
	CPIOBytes int64    // size of the uncompressed archive
	Bytes     int64    // size written to w
}

// mountPoints are the empty directories /init mounts on. The kernel's own
// built-in initramfs already provides /dev/console.
var mountPoints = []string{"dev", "proc", "run", "sys", "sysroot"}

// Build writes the compressed initramfs to w. root is the target userland
// (paths like "usr/lib/modules/<kver>/kernel/…"), kver the kernel version,
// init the static /init binary, mtime the time stamped on every entry.
func Build(w io.Writer, root fs.FS, kver string, init []byte, mtime time.Time) (Stats, error) {
	return build(w, root, kver, Modules, init, mtime)
}

func build(w io.Writer, root fs.FS, kver string, modules []string, init []byte, mtime time.Time) (Stats, error) {
	if kver == "" || strings.Contains(kver, "/") {
		return Stats{}, fmt.Errorf("kernel version %q is not a directory name under usr/lib/modules", kver)
	}
	if len(init) == 0 {
		return Stats{}, errors.New("the /init binary is empty")
	}
	// newc stores mtimes as 32-bit unsigned seconds.
	if mtime.Unix() < 0 || mtime.Unix() > math.MaxUint32 {
		return Stats{}, fmt.Errorf("mtime %s does not fit a cpio header (1970 to 2106)", mtime.UTC().Format(time.RFC3339))
	}
	p, err := resolve(root, kver, modules)
	if err != nil {
		return Stats{}, err
	}

	files := map[string]file{
		"init":     {mode: 0o755, data: init},
		ModuleList: {mode: 0o644, data: []byte(strings.Join(p.load, "\n") + "\n")},
	}
	dst := path.Join("lib/modules", kver)
	files[path.Join(dst, "modules.dep")] = file{mode: 0o644, data: p.dep}
	src := moduleDir(kver)
	for _, f := range p.files {
		data, err := fs.ReadFile(root, path.Join(src, f))
		if err != nil {
			return Stats{}, fmt.Errorf("module listed in modules.dep: %w", err)
		}
		files[path.Join(dst, f)] = file{mode: 0o644, data: data}
	}

	cw := &countingWriter{w: w}
	zw, err := zstd.NewWriter(cw,
		// One encoder goroutine: the output must not depend on scheduling.
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
	if err != nil {
		return Stats{}, err
	}
	cpioBytes, err := writeCPIO(zw, files, mtime)
	if err != nil {
		zw.Close()
		return Stats{}, err
	}
	if err := zw.Close(); err != nil {
		return Stats{}, fmt.Errorf("compressing the initramfs: %w", err)
	}
	return Stats{
		Load:      p.load,
		Builtin:   p.builtin,
		Files:     p.files,
		CPIOBytes: cpioBytes,
		Bytes:     cw.n,
	}, nil
}

// file is one regular file of the archive.
type file struct {
	mode cpio.FileMode
	data []byte
}

// writeCPIO writes files, the directories above them and the mount points,
// sorted by name so that every directory precedes its contents, and returns
// the number of bytes written.
func writeCPIO(w io.Writer, files map[string]file, mtime time.Time) (int64, error) {
	dirs := map[string]bool{}
	for _, d := range mountPoints {
		dirs[d] = true
	}
	for name := range files {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var names []string
	for d := range dirs {
		names = append(names, d)
	}
	for f := range files {
		names = append(names, f)
	}
	slices.Sort(names)

	cw := &countingWriter{w: w}
	cp := cpio.NewWriter(cw)
	for i, name := range names {
		// Inode numbers count up in name order. Regular files have one link,
		// so the kernel never mistakes two of them for hard links.
		h := &cpio.Header{Name: name, ModTime: mtime, Inode: int64(i + 1)}
		f, isFile := files[name]
		if isFile {
			h.Mode = cpio.TypeReg | f.mode
			h.Links = 1
			h.Size = int64(len(f.data))
		} else {
			h.Mode = cpio.TypeDir | 0o755
			h.Links = 2
		}
		if err := cp.WriteHeader(h); err != nil {
			return 0, fmt.Errorf("initramfs: %s: %w", name, err)
		}
		if isFile {
			if _, err := cp.Write(f.data); err != nil {
				return 0, fmt.Errorf("initramfs: %s: %w", name, err)
			}
		}
	}
	if err := cp.Close(); err != nil {
		return 0, fmt.Errorf("initramfs: %w", err)
	}
	return cw.n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

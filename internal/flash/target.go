package flash

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Target is the disk (or regular file) an image goes to.
type Target struct {
	Path  string
	Name  string // kernel name (sdb, nvme0n1); "" for a regular file
	Model string // from sysfs; "" when unknown
	Size  int64  // bytes; for a regular file its current size (0: new or empty)
	Block bool
}

// String describes the target for the confirmation question.
func (t *Target) String() string {
	if !t.Block {
		return fmt.Sprintf("%s (regular file)", t.Path)
	}
	model := t.Model
	if model == "" {
		model = "unknown model"
	}
	return fmt.Sprintf("%s: %s, %s", t.Path, model, humanSize(t.Size))
}

// Fits refuses a target smaller than an image of size bytes. A new or
// empty regular file is made the image's size.
func (t *Target) Fits(size int64) error {
	switch {
	case t.Block && t.Size < size:
		return fmt.Errorf("%s holds %d bytes but the image needs %d: use a larger disk", t, t.Size, size)
	case !t.Block && t.Size > 0 && t.Size < size:
		return fmt.Errorf("%s is %d bytes but the image needs %d: grow it first (truncate -s %d %s) or name a new file", t.Path, t.Size, size, size, t.Path)
	}
	return nil
}

func humanSize(n int64) string {
	return fmt.Sprintf("%.1f GB (%.1f GiB)", float64(n)/1e9, float64(n)/(1<<30))
}

// OpenTarget finds out what path is and refuses what must not be written:
// a partition rather than a whole disk, a disk with a mounted (or swap)
// partition, and the disk holding this system's / or /boot. root is where
// /proc and /sys are read ("/" on a real system; tests pass a fake tree).
// A path that does not exist is a new regular file, except under /dev.
func OpenTarget(root, path string) (*Target, error) {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		// A disk that is not there (a typo, an SSD not plugged in) must
		// not become a new file in /dev that takes the image.
		if abs, _ := filepath.Abs(path); strings.HasPrefix(abs, "/dev/") {
			return nil, fmt.Errorf("%s: no such disk: plug it in, or check the name (lsblk lists the disks)", path)
		}
		return &Target{Path: path}, nil
	}
	if err != nil {
		return nil, err
	}
	switch {
	case st.Mode().IsRegular():
		return &Target{Path: path, Size: st.Size()}, nil
	case st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0:
		return nil, fmt.Errorf("%s is neither a block device nor a regular file", path)
	}
	devno, err := devNumber(st)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	name, err := nameOf(root, devno)
	if err != nil {
		return nil, fmt.Errorf("%s (device %s): %w", path, devno, err)
	}
	return checkDisk(root, path, name)
}

// devNumber is a device file's "major:minor", as sysfs and mountinfo
// write it.
func devNumber(st os.FileInfo) (string, error) {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return "", errors.New("cannot read its device number")
	}
	return fmt.Sprintf("%d:%d", unix.Major(uint64(sys.Rdev)), unix.Minor(uint64(sys.Rdev))), nil
}

// checkDisk describes the disk called name in sysfs and refuses it when it
// must not be written.
func checkDisk(root, path, name string) (*Target, error) {
	sysDir := filepath.Join(root, "sys/class/block", name)
	if _, err := os.Stat(filepath.Join(sysDir, "partition")); err == nil {
		parent := filepath.Base(filepath.Dir(realPath(sysDir)))
		return nil, fmt.Errorf("%s is a partition of /dev/%s: name the whole disk (/dev/%s)", path, parent, parent)
	}
	t := &Target{Path: path, Name: name, Block: true}
	sectors, err := readUint(filepath.Join(sysDir, "size"))
	if err != nil {
		return nil, fmt.Errorf("%s: reading its size: %w", path, err)
	}
	t.Size = int64(sectors) * 512 // sysfs counts 512-byte sectors whatever the disk's sector size
	var model []string
	for _, f := range []string{"device/vendor", "device/model"} {
		if b, err := os.ReadFile(filepath.Join(sysDir, f)); err == nil && strings.TrimSpace(string(b)) != "" {
			model = append(model, strings.TrimSpace(string(b)))
		}
	}
	t.Model = strings.Join(model, " ")

	if sys, err := systemDisks(root); err != nil {
		return nil, err
	} else if where, ok := sys[name]; ok {
		return nil, fmt.Errorf("%s is this computer's system disk (it holds %s): refusing to overwrite it; plug in the target SSD and name that disk (lsblk lists them)", path, where)
	}
	if err := checkUnused(root, path, name); err != nil {
		return nil, err
	}
	return t, nil
}

// checkUnused refuses a disk of which any part (the disk, a partition, or a
// device mapper or md device on top of one) is mounted or used as swap.
func checkUnused(root, path, name string) error {
	in := map[string]string{} // "major:minor" → kernel name
	var walk func(n string)
	walk = func(n string) {
		dir := filepath.Join(root, "sys/class/block", n)
		if b, err := os.ReadFile(filepath.Join(dir, "dev")); err == nil {
			in[strings.TrimSpace(string(b))] = n
		}
		subs, _ := os.ReadDir(dir)
		for _, s := range subs {
			if _, err := os.Stat(filepath.Join(dir, s.Name(), "partition")); err == nil {
				walk(s.Name())
			}
		}
		holders, _ := os.ReadDir(filepath.Join(dir, "holders"))
		for _, h := range holders {
			walk(h.Name())
		}
	}
	walk(name)
	names := map[string]bool{}
	for _, n := range in {
		names[n] = true
	}
	mounts, err := readMounts(root)
	if err != nil {
		return err
	}
	for _, m := range mounts {
		n, ok := in[m.devno]
		if !ok && strings.HasPrefix(m.source, "/dev/") && names[filepath.Base(m.source)] {
			n, ok = filepath.Base(m.source), true
		}
		if ok {
			return fmt.Errorf("%s is in use: /dev/%s is mounted on %s; unmount it first (sudo umount %s) or pick another disk", path, n, m.point, m.point)
		}
	}
	swaps, err := os.ReadFile(filepath.Join(root, "proc/swaps"))
	if err == nil {
		for _, line := range strings.Split(string(swaps), "\n")[1:] {
			if f := strings.Fields(line); len(f) > 0 && names[filepath.Base(f[0])] {
				return fmt.Errorf("%s is in use: %s is swap; turn it off first (sudo swapoff %s) or pick another disk", path, f[0], f[0])
			}
		}
	}
	return nil
}

type mount struct{ devno, point, source string }

// readMounts reads /proc/self/mountinfo: field 3 is the mounted device's
// major:minor, field 5 the mount point, and after " - " come the type and
// the source.
func readMounts(root string) ([]mount, error) {
	f, err := os.Open(filepath.Join(root, "proc/self/mountinfo"))
	if err != nil {
		return nil, fmt.Errorf("reading the mount table: %w", err)
	}
	defer f.Close()
	var ms []mount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		m := mount{devno: fields[2], point: unescape(fields[4])}
		for i, f := range fields {
			if f == "-" && i+2 < len(fields) {
				m.source = unescape(fields[i+2])
			}
		}
		ms = append(ms, m)
	}
	return ms, sc.Err()
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// systemDisks returns the whole disks under /, /boot and /boot/efi, each
// with the mount point it holds: through partitions to their disk, and
// through device mapper or md devices (slaves) to the disks below.
func systemDisks(root string) (map[string]string, error) {
	mounts, err := readMounts(root)
	if err != nil {
		return nil, err
	}
	disks := map[string]string{}
	for _, m := range mounts {
		if m.point != "/" && m.point != "/boot" && m.point != "/boot/efi" {
			continue
		}
		name, err := nameOf(root, m.devno)
		if err != nil {
			continue // not a block device (overlay, tmpfs, a container's root)
		}
		for _, d := range wholeDisks(root, name, 0) {
			if _, ok := disks[d]; !ok {
				disks[d] = m.point
			}
		}
	}
	return disks, nil
}

func wholeDisks(root, name string, depth int) []string {
	dir := filepath.Join(root, "sys/class/block", name)
	if depth > 8 {
		return nil
	}
	slaves, _ := os.ReadDir(filepath.Join(dir, "slaves"))
	if len(slaves) > 0 {
		var out []string
		for _, s := range slaves {
			out = append(out, wholeDisks(root, s.Name(), depth+1)...)
		}
		return out
	}
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		return []string{filepath.Base(filepath.Dir(realPath(dir)))}
	}
	return []string{name}
}

// nameOf is the kernel name of block device major:minor.
func nameOf(root, devno string) (string, error) {
	p := filepath.Join(root, "sys/dev/block", devno)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no block device %s in %s", devno, filepath.Join(root, "sys/dev/block"))
	}
	return filepath.Base(realPath(p)), nil
}

func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

func readUint(p string) (uint64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

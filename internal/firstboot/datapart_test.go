package firstboot

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/internal/bytesize"
)

// TestExt4Size reads the size of filesystems made and grown by e2fsprogs,
// with the small-filesystem 1 KiB blocks mkfs picks for a fresh 256 MiB
// data partition and with 4 KiB blocks.
func TestExt4Size(t *testing.T) {
	for _, block := range []string{"1024", "4096"} {
		p := filepath.Join(t.TempDir(), "fs.img")
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		resize(t, p, 64*bytesize.MiB)
		run(t, "mkfs.ext4", "-q", "-F", "-b", block, p)
		if got := mustExt4Size(t, p); got != 64*bytesize.MiB {
			t.Errorf("%s-byte blocks: %d bytes, want 64 MiB", block, got)
		}
		resize(t, p, 200*bytesize.MiB)
		run(t, "e2fsck", "-fy", p)
		run(t, "resize2fs", p)
		if got := mustExt4Size(t, p); got != 200*bytesize.MiB {
			t.Errorf("%s-byte blocks, grown: %d bytes, want 200 MiB", block, got)
		}
	}
	if _, err := ext4Size(make([]byte, 1024)); err == nil {
		t.Error("a zeroed superblock was accepted")
	}
}

func mustExt4Size(t *testing.T, p string) uint64 {
	t.Helper()
	n, err := readExt4Size(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func TestMountDevice(t *testing.T) {
	mountinfo := []byte(`22 1 253:0 / / ro,relatime - squashfs /dev/mapper/root ro
23 22 254:4 / /data rw,nosuid,nodev,noatime - ext4 /dev/vda4 rw
24 22 0:21 / /var rw,relatime - overlay overlay rw,lowerdir=/var,upperdir=/data/.nodebake/var/upper
25 22 254:4 /home /home rw,nosuid,nodev,noatime - ext4 /dev/vda4 rw
`)
	if dev, err := mountDevice(mountinfo, "/data"); err != nil || dev != "254:4" {
		t.Errorf("/data: %q, %v", dev, err)
	}
	if _, err := mountDevice(mountinfo, "/srv"); err == nil || !strings.Contains(err.Error(), "nothing is mounted on /srv") {
		t.Errorf("/srv: %v", err)
	}
}

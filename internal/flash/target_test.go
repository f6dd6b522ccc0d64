package flash

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRoot lays out /sys the way the kernel does (class/block and dev/block
// are relative symlinks into devices/) and /proc/self/mountinfo:
//
//	sda (system disk): sda1 on /boot, sda2 under dm-0 on /
//	sdb (the SSD):     sdb1, sdb2 (an LVM member under dm-1)
func fakeRoot(t *testing.T, mountinfo, swaps string) string {
	t.Helper()
	root := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dev := func(dir, name, devno string) {
		t.Helper()
		write(filepath.Join("sys/devices", dir, "dev"), devno+"\n")
		for _, l := range []string{"sys/class/block/" + name, "sys/dev/block/" + devno} {
			p := filepath.Join(root, l)
			os.MkdirAll(filepath.Dir(p), 0o755)
			target, _ := filepath.Rel(filepath.Dir(p), filepath.Join(root, "sys/devices", dir))
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	dev("pci0/block/sda", "sda", "8:0")
	write("sys/devices/pci0/block/sda/size", "500118192\n")
	dev("pci0/block/sda/sda1", "sda1", "8:1")
	write("sys/devices/pci0/block/sda/sda1/partition", "1\n")
	dev("pci0/block/sda/sda2", "sda2", "8:2")
	write("sys/devices/pci0/block/sda/sda2/partition", "2\n")
	write("sys/devices/pci0/block/sda/sda2/holders/dm-0", "")
	dev("virtual/block/dm-0", "dm-0", "253:0")
	write("sys/devices/virtual/block/dm-0/slaves/sda2", "")

	dev("usb1/block/sdb", "sdb", "8:16")
	write("sys/devices/usb1/block/sdb/size", "976773168\n")
	write("sys/devices/usb1/block/sdb/device/vendor", "Samsung \n")
	write("sys/devices/usb1/block/sdb/device/model", "SSD 870 EVO 500GB\n")
	dev("usb1/block/sdb/sdb1", "sdb1", "8:17")
	write("sys/devices/usb1/block/sdb/sdb1/partition", "1\n")
	dev("usb1/block/sdb/sdb2", "sdb2", "8:18")
	write("sys/devices/usb1/block/sdb/sdb2/partition", "2\n")
	write("sys/devices/usb1/block/sdb/sdb2/holders/dm-1", "")
	dev("virtual/block/dm-1", "dm-1", "253:1")
	write("sys/devices/virtual/block/dm-1/slaves/sdb2", "")

	write("proc/self/mountinfo", `22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw
23 22 8:1 / /boot rw,relatime shared:2 - ext4 /dev/sda1 rw
24 22 0:21 / /proc rw - proc proc rw
`+mountinfo)
	write("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n"+swaps)
	return root
}

func TestCheckDisk(t *testing.T) {
	root := fakeRoot(t, "", "")
	tg, err := checkDisk(root, "/dev/sdb", "sdb")
	if err != nil {
		t.Fatalf("an unused SSD: %v", err)
	}
	if tg.Model != "Samsung SSD 870 EVO 500GB" || tg.Size != 976773168*512 || !tg.Block {
		t.Errorf("target %+v: want model %q, %d bytes", tg, "Samsung SSD 870 EVO 500GB", 976773168*512)
	}
	if s := tg.String(); !strings.Contains(s, "Samsung SSD 870 EVO 500GB") || !strings.Contains(s, "500.1 GB") {
		t.Errorf("the confirmation shows %q: want the model and the size", s)
	}
}

func TestFits(t *testing.T) {
	root := fakeRoot(t, "", "")
	ssd, err := checkDisk(root, "/dev/sdb", "sdb")
	if err != nil {
		t.Fatal(err)
	}
	if err := ssd.Fits(ssd.Size); err != nil {
		t.Errorf("an image the disk's size: %v", err)
	}
	if err := ssd.Fits(ssd.Size + 512); err == nil || !strings.Contains(err.Error(), "use a larger disk") {
		t.Errorf("an image larger than the disk: %v", err)
	}
	if err := (&Target{Path: "new.img"}).Fits(1 << 30); err != nil {
		t.Errorf("a new file: %v", err)
	}
	if err := (&Target{Path: "old.img", Size: 4096}).Fits(1 << 30); err == nil || !strings.Contains(err.Error(), "truncate -s") {
		t.Errorf("a small file: %v", err)
	}
}

func TestCheckDiskRefuses(t *testing.T) {
	for _, c := range []struct {
		name, disk, mountinfo, swaps, want string
	}{
		{"system disk (/ through device mapper, /boot)", "sda", "", "", "system disk"},
		{"partition", "sdb1", "", "", "is a partition of /dev/sdb"},
		{"partition mounted", "sdb", "40 22 8:17 / /media/me/USB\\040DISK rw - vfat /dev/sdb1 rw\n", "", "/dev/sdb1 is mounted on /media/me/USB DISK"},
		{"whole disk mounted", "sdb", "40 22 8:16 / /mnt rw - ext4 /dev/sdb rw\n", "", "mounted on /mnt"},
		{"LVM volume on a partition mounted", "sdb", "40 22 253:1 / /srv rw - ext4 /dev/mapper/vg2-srv rw\n", "", "/dev/dm-1 is mounted on /srv"},
		{"mounted by name only (btrfs shows an anonymous device number)", "sdb", "40 22 0:55 / /data rw - btrfs /dev/sdb1 rw\n", "", "mounted on /data"},
		{"swap", "sdb", "", "/dev/sdb2 partition 1000 0 -2\n", "swap"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := fakeRoot(t, c.mountinfo, c.swaps)
			_, err := checkDisk(root, "/dev/"+c.disk, c.disk)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("checkDisk: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestOpenTargetFiles(t *testing.T) {
	dir := t.TempDir()
	tg, err := OpenTarget("/", filepath.Join(dir, "new.img"))
	if err != nil || tg.Block || tg.Size != 0 {
		t.Fatalf("a new file: %+v, %v", tg, err)
	}
	p := filepath.Join(dir, "old.img")
	os.WriteFile(p, make([]byte, 4096), 0o644)
	if tg, err = OpenTarget("/", p); err != nil || tg.Block || tg.Size != 4096 {
		t.Fatalf("a file: %+v, %v", tg, err)
	}
	if _, err := OpenTarget("/", "/dev/null"); err == nil {
		t.Fatal("OpenTarget accepted a character device")
	}
	// A missing disk is not a new file in /dev.
	if _, err := OpenTarget("/", "/dev/sdz-nodebake-test"); err == nil || !strings.Contains(err.Error(), "no such disk") {
		t.Fatalf("a disk that is not there: %v, want no such disk", err)
	}
}

// The device number is read from the stat of the device file (os.Stat
// gives a syscall.Stat_t): /dev/null is 1:3 on every Linux.
func TestDevNumber(t *testing.T) {
	st, err := os.Stat("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := devNumber(st); got != "1:3" || err != nil {
		t.Fatalf("devNumber(/dev/null) = %q, %v; want 1:3", got, err)
	}
}

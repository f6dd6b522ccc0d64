package firstboot

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/bytesize"
	"github.com/nodebake/nodebake/internal/disk"
)

func TestPlanGrow(t *testing.T) {
	const mib = bytesize.MiB / 512
	// A 20 MiB image as nodebake writes it: data from 11 MiB to 19 MiB,
	// backup GPT in the last 33 sectors.
	image := Geometry{SectorSize: 512, DiskSectors: 20 * mib, BackupLBA: 20*mib - 1, EntrySectors: 32, Start: 11 * mib, End: 19*mib - 1}
	grown := func(g Geometry, disk uint64) Geometry { g.DiskSectors = disk; return g }
	tests := []struct {
		name string
		g    Geometry
		want GrowPlan
		err  string
	}{
		{"as written: full", image, GrowPlan{Start: 11 * mib, OldEnd: 19*mib - 1, NewEnd: 19*mib - 1}, ""},
		{"disk of 64 MiB", grown(image, 64*mib), GrowPlan{Start: 11 * mib, OldEnd: 19*mib - 1, NewEnd: 63*mib - 1, MoveBackup: true}, ""},
		// 64 MiB and 3 sectors: the new end stays on a MiB boundary.
		{"unaligned disk", grown(image, 64*mib+3), GrowPlan{Start: 11 * mib, OldEnd: 19*mib - 1, NewEnd: 63*mib - 1, MoveBackup: true}, ""},
		// A few sectors more: nothing to grow, but the backup moves.
		{"disk a little larger", grown(image, 20*mib+20), GrowPlan{Start: 11 * mib, OldEnd: 19*mib - 1, NewEnd: 19*mib - 1, MoveBackup: true}, ""},
		{"4 KiB sectors", Geometry{SectorSize: 4096, DiskSectors: 16384, BackupLBA: 5119, EntrySectors: 4, Start: 2816, End: 4863},
			GrowPlan{Start: 2816, OldEnd: 4863, NewEnd: 16383 - 256, MoveBackup: true}, ""},
		{"disk smaller than the table", grown(image, 10*mib), GrowPlan{}, "written to a smaller disk"},
		{"not the last partition", func() Geometry { g := grown(image, 64*mib); g.NextStart = 30 * mib; return g }(), GrowPlan{}, "not the last"},
		{"odd sector size", Geometry{SectorSize: 520, DiskSectors: 100, BackupLBA: 99}, GrowPlan{}, "does not divide"},
	}
	for _, tt := range tests {
		got, err := PlanGrow(tt.g)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.err)
		case tt.err == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.err == "" && got != tt.want:
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		case tt.err == "" && (got.NewEnd+1)*tt.g.SectorSize%bytesize.MiB != 0:
			t.Errorf("%s: end %d is not on a MiB boundary", tt.name, got.NewEnd)
		}
	}
}

// testImage writes a disk image with nodebake's layout and partition
// table code (package disk), as the build does.
func testImage(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "node.img")
	parts := []disk.Partition{
		{Name: contract.ESP, Type: gpt.EFISystemPartition, UUID: "11111111-2222-4333-8444-555555555555", Size: 2 * bytesize.MiB},
		{Name: contract.RootA, Type: gpt.LinuxRootX86_64, UUID: "22222222-2222-4333-8444-555555555555", Size: 4 * bytesize.MiB},
		{Name: contract.RootB, Type: gpt.LinuxRootX86_64, UUID: "33333333-2222-4333-8444-555555555555", Size: 4 * bytesize.MiB},
		{Name: contract.Data, Type: gpt.LinuxFilesystem, UUID: "44444444-2222-4333-8444-555555555555", Size: 8 * bytesize.MiB},
	}
	if err := disk.Write(p, "55555555-2222-4333-8444-555555555555", parts, nil); err != nil {
		t.Fatal(err)
	}
	return p
}

func resize(t *testing.T, p string, size int64) {
	t.Helper()
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
}

func grow(t *testing.T, p string) GrowPlan {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	plan, err := GrowGPT(f, 512, 4)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// sgdiskOK runs sgdisk's own verification on the image.
func sgdiskOK(t *testing.T, p string) {
	t.Helper()
	out, err := exec.Command("sgdisk", "-v", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Fatalf("sgdisk -v %s: %v\n%s", p, err, out)
	}
}

func readTable(t *testing.T, p string) (*gpt.Table, int64) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, _ := f.Seek(0, io.SeekEnd)
	table, err := gpt.Read(f, 512, 512)
	if err != nil {
		t.Fatal(err)
	}
	if err := table.Verify(f, uint64(size)); err != nil {
		t.Fatalf("go-diskfs: %v", err)
	}
	return table, size
}

func TestGrowGPTImage(t *testing.T) {
	p := testImage(t)
	sgdiskOK(t, p)
	before, _ := readTable(t, p)
	if plan := grow(t, p); plan.Changes() {
		t.Fatalf("an image as written must not change: %+v", plan)
	}

	// Flashed onto a larger disk, not a whole number of MiB.
	const size = 1*bytesize.GiB + 5*512
	resize(t, p, size)
	plan := grow(t, p)
	wantEnd := uint64(1*bytesize.GiB-bytesize.MiB)/512 - 1
	if !plan.MoveBackup || plan.NewEnd != wantEnd || plan.OldEnd != uint64(19*bytesize.MiB)/512-1 {
		t.Fatalf("plan %+v, want data to end at sector %d", plan, wantEnd)
	}
	sgdiskOK(t, p)
	after, _ := readTable(t, p)
	if len(after.Partitions) != 4 {
		t.Fatalf("%d partitions after growing", len(after.Partitions))
	}
	for i, a := range after.Partitions {
		b := before.Partitions[i]
		if a.Start != b.Start || a.GUID != b.GUID || a.Name != b.Name || a.Type != b.Type {
			t.Errorf("partition %d changed: %+v → %+v", i+1, b, a)
		}
		if want := b.End; i == 3 {
			if a.End != wantEnd {
				t.Errorf("data ends at %d, want %d", a.End, wantEnd)
			}
		} else if a.End != want {
			t.Errorf("partition %d end moved: %d → %d", i+1, want, a.End)
		}
	}
	if after.GUID != before.GUID {
		t.Errorf("disk GUID changed: %s → %s", before.GUID, after.GUID)
	}
	// The old backup header, now inside the data partition, is gone.
	f, _ := os.Open(p)
	old := make([]byte, 512)
	f.ReadAt(old, 20*bytesize.MiB-512)
	f.Close()
	if !bytes.Equal(old, make([]byte, 512)) {
		t.Error("the old backup GPT header is still there")
	}

	if plan := grow(t, p); plan.Changes() {
		t.Errorf("second grow changed %+v", plan)
	}
}

// TestGrowGPTInterrupted builds the state a power cut leaves when the new
// backup table was written but the primary was not, and checks that the
// next grow ends where an uninterrupted one does.
func TestGrowGPTInterrupted(t *testing.T) {
	const size = 64 * bytesize.MiB
	done := testImage(t)
	resize(t, done, size)
	grow(t, done)

	cut := testImage(t)
	resize(t, cut, size)
	// Copy the new backup table (the last 33 sectors) onto the cut image.
	tail := make([]byte, 33*512)
	f, _ := os.Open(done)
	f.ReadAt(tail, size-int64(len(tail)))
	f.Close()
	g, _ := os.OpenFile(cut, os.O_RDWR, 0)
	g.WriteAt(tail, size-int64(len(tail)))
	g.Close()

	if plan := grow(t, cut); !plan.Changes() {
		t.Fatal("the interrupted grow was not redone")
	}
	sgdiskOK(t, cut)
	if a, b := sum(t, done), sum(t, cut); a != b {
		t.Error("the completed image differs from one grown without interruption")
	}
}

// TestGrowGPTHugeDisk grows onto a 3 TiB disk (a sparse file), beyond what
// the protective MBR's 32-bit size can say.
func TestGrowGPTHugeDisk(t *testing.T) {
	p := testImage(t)
	const size = 3 << 40
	resize(t, p, size)
	plan := grow(t, p)
	if plan.NewEnd != uint64(size-bytesize.MiB)/512-1 {
		t.Fatalf("plan %+v", plan)
	}
	sgdiskOK(t, p)
	f, _ := os.Open(p)
	defer f.Close()
	mbr := make([]byte, 512)
	f.ReadAt(mbr, 0)
	if got := binary.LittleEndian.Uint32(mbr[446+12:]); got != 0xFFFFFFFF || mbr[446+4] != 0xEE {
		t.Errorf("protective MBR: type %#x size %#x, want 0xee and 0xffffffff", mbr[446+4], got)
	}
}

func sum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

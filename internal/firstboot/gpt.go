package firstboot

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/nodebake/nodebake/internal/bytesize"
)

// Geometry is what decides how far a GPT partition can grow. Sectors are
// logical sectors; ranges are inclusive, as in the GPT itself.
type Geometry struct {
	SectorSize   uint64 // bytes per logical sector
	DiskSectors  uint64 // the disk's size now
	BackupLBA    uint64 // where the primary header says the backup header is
	EntrySectors uint64 // sectors of the partition entry array
	Start, End   uint64 // the partition to grow
	NextStart    uint64 // first sector of a partition after it; 0 if it is the last
}

// GrowPlan is what PlanGrow decided.
type GrowPlan struct {
	Start          uint64 // the partition's first sector
	OldEnd, NewEnd uint64 // the partition's last sector before and after
	MoveBackup     bool   // the backup GPT is not at the end of the disk
}

// Changes reports whether the table must be rewritten.
func (p GrowPlan) Changes() bool { return p.NewEnd != p.OldEnd || p.MoveBackup }

// PlanGrow decides where the partition should end: at the last 1 MiB
// boundary before the backup GPT, which belongs in the disk's last sectors.
// A disk written from an image and then found larger (a bigger SSD, an
// enlarged VM disk) has its backup GPT in the middle; it moves to the end.
// A partition never shrinks.
func PlanGrow(g Geometry) (GrowPlan, error) {
	p := GrowPlan{Start: g.Start, OldEnd: g.End, NewEnd: g.End}
	switch {
	case g.SectorSize == 0 || bytesize.MiB%g.SectorSize != 0:
		return p, fmt.Errorf("sector size %d does not divide 1 MiB", g.SectorSize)
	case g.BackupLBA >= g.DiskSectors:
		return p, fmt.Errorf("the disk has %d sectors but its partition table puts the backup GPT at sector %d: was the image written to a smaller disk? Rewrite it onto one at least as large as the image", g.DiskSectors, g.BackupLBA)
	case g.NextStart != 0:
		return p, fmt.Errorf("the partition (sectors %d-%d) is not the last on the disk: a partition starts at sector %d", g.Start, g.End, g.NextStart)
	case g.DiskSectors < g.EntrySectors+2:
		return p, fmt.Errorf("a disk of %d sectors cannot hold a GPT", g.DiskSectors)
	}
	p.MoveBackup = g.BackupLBA != g.DiskSectors-1
	// The backup header is the last sector; its entry array precedes it.
	lastUsable := g.DiskSectors - 2 - g.EntrySectors
	align := bytesize.MiB / g.SectorSize
	if n := (lastUsable + 1) / align; n > 0 && n*align-1 > g.End {
		p.NewEnd = n*align - 1
	}
	return p, nil
}

// GrowGPT grows partition number index (1-based) of the GPT disk in f, an
// image file or a whole-disk block device, to fill the disk, and moves the
// backup GPT to the disk's end. go-diskfs writes the backup copy first and
// the primary last, each synced: a power cut leaves the old primary table,
// which still points at the old backup, and the next run does it again.
func GrowGPT(f *os.File, sectorSize, index int) (GrowPlan, error) {
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return GrowPlan{}, err
	}
	table, err := gpt.Read(f, sectorSize, sectorSize)
	if err != nil {
		return GrowPlan{}, fmt.Errorf("reading the partition table of %s: %w", f.Name(), err)
	}
	if table.RecoveredFromBackup {
		return GrowPlan{}, fmt.Errorf("%s: the primary GPT is damaged (read from the backup): repair it with `sgdisk -e %s` before growing", f.Name(), f.Name())
	}
	var part *gpt.Partition
	for _, p := range table.Partitions {
		if p != nil && p.Index == index {
			part = p
		}
	}
	if part == nil {
		return GrowPlan{}, fmt.Errorf("%s has no partition %d", f.Name(), index)
	}
	ss := uint64(sectorSize)
	g := Geometry{
		SectorSize:  ss,
		DiskSectors: uint64(size) / ss,
		BackupLBA:   table.TotalSize()/ss - 1,
		Start:       part.Start,
		End:         part.End,
	}
	g.EntrySectors = g.BackupLBA - table.LastDataSector() - 1
	for _, p := range table.Partitions {
		if p != nil && p.Start > part.End && (g.NextStart == 0 || p.Start < g.NextStart) {
			g.NextStart = p.Start
		}
	}
	plan, err := PlanGrow(g)
	if err != nil || !plan.Changes() {
		return plan, err
	}
	table.Resize(g.DiskSectors * ss)
	part.End = plan.NewEnd
	part.Size = (part.End - part.Start + 1) * ss
	table.ProtectiveMBR = true
	if err := table.Write(f, int64(g.DiskSectors*ss)); err != nil {
		return plan, fmt.Errorf("writing the partition table of %s: %w", f.Name(), err)
	}
	if err := fixProtectiveMBR(f, g.DiskSectors); err != nil {
		return plan, err
	}
	// The old backup header now lies in the grown partition, beyond its
	// filesystem: zero it so that no tool mistakes it for a table.
	if plan.MoveBackup {
		if _, err := f.WriteAt(make([]byte, ss), int64(g.BackupLBA*ss)); err != nil {
			return plan, fmt.Errorf("clearing the old backup GPT of %s: %w", f.Name(), err)
		}
	}
	return plan, f.Sync()
}

// fixProtectiveMBR sets the size of the protective MBR's partition to
// 0xFFFFFFFF on disks too large for 32 bits, as the UEFI specification asks;
// go-diskfs writes the size truncated to 32 bits.
func fixProtectiveMBR(f *os.File, diskSectors uint64) error {
	if diskSectors-1 <= math.MaxUint32 {
		return nil
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], math.MaxUint32)
	// Partition record 1 starts at byte 446; its size in sectors at +12.
	if _, err := f.WriteAt(b[:], 446+12); err != nil {
		return fmt.Errorf("writing the protective MBR of %s: %w", f.Name(), err)
	}
	return f.Sync()
}

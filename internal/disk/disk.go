// Package disk lays out the final image: a GPT disk with a protective MBR, a
// FAT32 EFI system partition, two root slots and the data partition, each at
// a fixed 1 MiB-aligned offset with a fixed PARTUUID. It also reads an image
// back for `nodebake inspect`.
//
// The partition table and the ESP come from go-diskfs. Partition contents
// are copied with the kernel's copy_file_range rather than go-diskfs's
// WritePartitionContents, which writes 512 bytes at a time and is ~20× slower.
package disk

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf16"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/uuid"
	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/bytesize"
	"github.com/nodebake/nodebake/internal/sparse"
)

const sectorSize = 512

// Partition is one entry of the disk's partition table.
type Partition struct {
	Name    string   // GPT partition label
	Type    gpt.Type // gpt.EFISystemPartition, gpt.LinuxRootX86_64 (root slots), gpt.LinuxFilesystem (data)
	UUID    string   // PARTUUID, fixed so that boot entries can name it
	Size    int64    // bytes, a positive multiple of MiB
	Content string   // file copied to the start of the partition; "" leaves it zeroed
}

// Write creates the raw disk image at path: a protective MBR, the GPT with
// the given disk GUID, and the partitions in order, the first at 1 MiB and
// each following directly after the previous one. One MiB at the end holds
// the backup GPT. Content is copied in before the partition table is
// written, so an interrupted Write never leaves a file that looks like a
// valid disk; the caller writes to a temporary path and renames it.
//
// progress, if not nil, is called with the content bytes copied so far and
// the total to copy.
func Write(path, diskGUID string, parts []Partition, progress func(done, total int64)) error {
	if _, err := uuid.Parse(diskGUID); err != nil {
		return fmt.Errorf("disk GUID %q: %w", diskGUID, err)
	}
	contentSizes, err := validate(parts)
	if err != nil {
		return err
	}
	size := int64(2 * bytesize.MiB) // first MiB: MBR and primary GPT; last MiB: backup GPT
	var total int64
	for i, p := range parts {
		size += p.Size
		total += contentSizes[i]
	}

	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	// Truncate makes a sparse file: zeroed partitions (an empty root-b, the
	// data partition) cost no disk space and no write time.
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}

	table := &gpt.Table{
		LogicalSectorSize:  sectorSize,
		PhysicalSectorSize: sectorSize,
		GUID:               diskGUID,
		ProtectiveMBR:      true, // without it Linux ignores the GPT
	}
	var done int64
	start := int64(bytesize.MiB)
	for i, p := range parts {
		if p.Content != "" {
			if err := copyAt(f, start, p.Content, contentSizes[i], func(n int64) {
				done += n
				if progress != nil {
					progress(done, total)
				}
			}); err != nil {
				return fmt.Errorf("%s: %w", p.Name, err)
			}
		}
		table.Partitions = append(table.Partitions, &gpt.Partition{
			Index: i + 1,
			Start: uint64(start / sectorSize),
			End:   uint64((start+p.Size)/sectorSize - 1),
			Type:  p.Type,
			Name:  p.Name,
			GUID:  p.UUID,
		})
		start += p.Size
	}
	if err := table.Write(f, size); err != nil {
		return fmt.Errorf("%s: writing partition table: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// validate checks the partitions before anything is written and returns the
// size of each one's content.
func validate(parts []Partition) ([]int64, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("disk has no partitions")
	}
	sizes := make([]int64, len(parts))
	names := map[string]bool{}
	uuids := map[uuid.UUID]string{}
	for i, p := range parts {
		if p.Name == "" || len(utf16.Encode([]rune(p.Name))) > 36 {
			return nil, fmt.Errorf("partition %d: label %q must be 1 to 36 characters", i+1, p.Name)
		}
		if names[p.Name] {
			return nil, fmt.Errorf("partition label %q is used twice", p.Name)
		}
		names[p.Name] = true
		if _, err := uuid.Parse(string(p.Type)); err != nil {
			return nil, fmt.Errorf("%s: partition type %q: %w", p.Name, p.Type, err)
		}
		u, err := uuid.Parse(p.UUID)
		if err != nil {
			return nil, fmt.Errorf("%s: PARTUUID %q: %w", p.Name, p.UUID, err)
		}
		if other, ok := uuids[u]; ok {
			return nil, fmt.Errorf("%s and %s have the same PARTUUID %s", other, p.Name, p.UUID)
		}
		uuids[u] = p.Name
		if p.Size <= 0 || p.Size%bytesize.MiB != 0 {
			return nil, fmt.Errorf("%s: size %d bytes is not a positive multiple of 1 MiB", p.Name, p.Size)
		}
		if p.Content == "" {
			continue
		}
		st, err := os.Stat(p.Content)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		if st.Size() > p.Size {
			return nil, tooLarge(p.Name, st.Size(), p.Size)
		}
		sizes[i] = st.Size()
	}
	return sizes, nil
}

// tooLarge names the image.yaml setting that sizes the partition, so the
// user knows what to change.
func tooLarge(name string, content, size int64) error {
	switch name {
	case contract.ESP:
		return fmt.Errorf("%s: image is %s but the partition holds %s: raise disk.esp_size in image.yaml", name, exact(content), exact(size))
	case contract.RootA, contract.RootB:
		return fmt.Errorf("%s: image is %s but the slot holds %s: raise disk.slot_size in image.yaml", name, exact(content), exact(size))
	}
	return fmt.Errorf("%s: content is %s but the partition holds %s", name, exact(content), exact(size))
}

// exact renders a size for messages that compare sizes: a figure that
// bytesize.Format rounded comes with its byte count, so that "768 MiB" never
// appears on both sides of a failed comparison.
func exact(n int64) string {
	s := bytesize.Format(n)
	if strings.Contains(s, ".") {
		return fmt.Sprintf("%s (%d bytes)", s, n)
	}
	return s
}

// copyAt copies size bytes of the file src into dst at offset off. Copying
// exactly the size that was validated keeps a file that grew meanwhile from
// spilling into the next partition. Only src's data is copied (by
// copy_file_range, never through user space): its holes, such as the ESP's
// free space, stay holes in the sparse image.
func copyAt(dst *os.File, off int64, src string, size int64, progress func(n int64)) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if st, err := in.Stat(); err != nil || st.Size() < size {
		return fmt.Errorf("copying %s: file shrank while being copied", src)
	}
	var copied int64
	err = sparse.Copy(dst, off, in, 0, size, func(n int64) {
		copied += n
		progress(n)
	})
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("copying %s: file shrank while being copied", src)
	}
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	progress(size - copied) // the holes: nothing to write
	return nil
}

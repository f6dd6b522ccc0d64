package disk

import (
	"encoding/binary"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/nodebake/nodebake/internal/bytesize"
)

// ESPLabel is the FAT volume label of the EFI system partition.
const ESPLabel = "ESP"

// minFAT32Clusters is the fewest clusters a FAT32 volume may have. With
// fewer, the FAT specification calls the volume FAT16, and UEFI firmware
// (edk2/OVMF's FAT driver) rejects it as corrupted.
const minFAT32Clusters = 65525

// ESP writes a FAT32 filesystem image of size bytes to out, holding files
// (path inside the ESP → content). Every timestamp in it is mtime and its
// volume serial is zero, so the same inputs give the same bytes.
func ESP(out string, size int64, files map[string][]byte, mtime time.Time) error {
	if size <= 0 || size%bytesize.MiB != 0 {
		return fmt.Errorf("ESP: size %d bytes is not a positive multiple of 1 MiB", size)
	}
	names, err := espNames(files)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("%s: %w", out, err)
	}
	fs, err := fat32.Create(file.New(f, false), size, 0, sectorSize, ESPLabel, true)
	if err != nil {
		return fmt.Errorf("ESP: %w", err)
	}
	l, err := readFATLayout(f)
	if err != nil {
		return err
	}
	if l.clusters < minFAT32Clusters {
		return fmt.Errorf("ESP: %s gives %d FAT32 clusters but UEFI firmware needs at least %d: raise disk.esp_size in image.yaml to at least 33 MiB",
			exact(size), l.clusters, minFAT32Clusters)
	}
	var need int64
	for _, b := range files {
		need += roundUp(int64(len(b)), l.clusterBytes)
	}
	if capacity := l.clusters * l.clusterBytes; need > capacity {
		return fmt.Errorf("ESP: files need %s but the %s ESP holds %s: raise disk.esp_size in image.yaml", exact(need), exact(size), exact(capacity))
	}

	for _, name := range names {
		p := espPath(name)
		if dir := path.Dir(p); dir != "." {
			if err := fs.Mkdir(dir); err != nil {
				return fmt.Errorf("ESP: creating %s: %w", dir, err)
			}
		}
		w, err := fs.OpenFile(p, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fmt.Errorf("ESP: creating %s: %w", p, err)
		}
		if _, err := w.Write(files[name]); err != nil {
			return fmt.Errorf("ESP: writing %s: %w", p, err)
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("ESP: writing %s: %w", p, err)
		}
	}
	// go-diskfs stamps entries with the clock (or with SOURCE_DATE_EPOCH
	// from the environment, which would leak into every child process that
	// the build starts), so the timestamps are set afterwards, in place.
	if err := l.fixup(f, mtime); err != nil {
		return fmt.Errorf("ESP: %w", err)
	}
	return f.Close()
}

// espPath turns a name such as "/EFI/BOOT/BOOTX64.EFI" into the relative
// form go-diskfs expects.
func espPath(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// espNames checks the file names and returns them sorted, so that clusters
// are allocated in the same order every time.
func espNames(files map[string][]byte) ([]string, error) {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	seen := map[string]string{}
	for _, name := range names {
		p := espPath(name)
		if p == "" {
			return nil, fmt.Errorf("ESP: %q is not a file name", name)
		}
		// FAT names are case-insensitive.
		key := strings.ToUpper(p)
		if other, ok := seen[key]; ok {
			return nil, fmt.Errorf("ESP: %q and %q name the same file", other, name)
		}
		seen[key] = name
		// go-diskfs gives an empty file a cluster, which fsck.fat rejects;
		// no boot file is ever empty.
		if len(files[name]) == 0 {
			return nil, fmt.Errorf("ESP: %s is empty", name)
		}
	}
	return names, nil
}

func roundUp(n, unit int64) int64 {
	return (n + unit - 1) / unit * unit
}

// fatLayout is where a FAT32 volume keeps its FAT, FSInfo and clusters,
// read from the boot sector.
type fatLayout struct {
	fatOffset    int64   // byte offset of the first FAT
	fatBytes     int64   // size of one FAT
	fsInfo       []int64 // byte offsets of the FSInfo sector and its backup
	dataOffset   int64   // byte offset of cluster 2
	clusterBytes int64
	clusters     int64 // data clusters
	rootCluster  uint32
}

func readFATLayout(f *os.File) (fatLayout, error) {
	bs := make([]byte, sectorSize)
	if _, err := f.ReadAt(bs, 0); err != nil {
		return fatLayout{}, fmt.Errorf("reading FAT boot sector: %w", err)
	}
	bytesPerSector := int64(binary.LittleEndian.Uint16(bs[11:]))
	sectorsPerCluster := int64(bs[13])
	reserved := int64(binary.LittleEndian.Uint16(bs[14:]))
	fats := int64(bs[16])
	totalSectors := int64(binary.LittleEndian.Uint32(bs[32:]))
	fatSectors := int64(binary.LittleEndian.Uint32(bs[36:]))
	fsInfo := int64(binary.LittleEndian.Uint16(bs[48:]))
	backup := int64(binary.LittleEndian.Uint16(bs[50:]))
	if bytesPerSector == 0 || sectorsPerCluster == 0 || fatSectors == 0 || fsInfo == 0 {
		return fatLayout{}, fmt.Errorf("not a FAT32 boot sector")
	}
	l := fatLayout{
		fatOffset:    reserved * bytesPerSector,
		fatBytes:     fatSectors * bytesPerSector,
		fsInfo:       []int64{fsInfo * bytesPerSector},
		dataOffset:   (reserved + fats*fatSectors) * bytesPerSector,
		clusterBytes: sectorsPerCluster * bytesPerSector,
		clusters:     (totalSectors - reserved - fats*fatSectors) / sectorsPerCluster,
		rootCluster:  binary.LittleEndian.Uint32(bs[44:]),
	}
	if backup != 0 {
		l.fsInfo = append(l.fsInfo, (backup+fsInfo)*bytesPerSector)
	}
	return l, nil
}

// fixup finishes what go-diskfs leaves undone or non-reproducible:
//   - every directory entry's times become t (including "." and "..");
//   - ".." in a directory directly below the root points to cluster 0, as
//     the FAT specification requires (go-diskfs writes the root's cluster,
//     which fsck.fat reports as invalid);
//   - the FSInfo free-cluster count is filled in (go-diskfs leaves it
//     "unknown", which fsck.fat reports as uninitialized).
func (l fatLayout) fixup(f *os.File, t time.Time) error {
	fat := make([]byte, l.fatBytes)
	if _, err := f.ReadAt(fat, l.fatOffset); err != nil {
		return fmt.Errorf("reading FAT: %w", err)
	}
	date, clock := dosTime(t)
	type dir struct{ cluster, parent uint32 }
	dirs := []dir{{cluster: l.rootCluster}}
	for len(dirs) > 0 {
		d := dirs[0]
		dirs = dirs[1:]
		chain, err := l.chain(fat, d.cluster)
		if err != nil {
			return err
		}
		for _, c := range chain {
			off := l.dataOffset + int64(c-2)*l.clusterBytes
			b := make([]byte, l.clusterBytes)
			if _, err := f.ReadAt(b, off); err != nil {
				return fmt.Errorf("reading directory cluster %d: %w", c, err)
			}
			for e := b; len(e) >= 32; e = e[32:] {
				if e[0] == 0x00 {
					break // no entries follow
				}
				if e[0] == 0xe5 || e[11] == 0x0f {
					continue // deleted, or a long-name part without times
				}
				e[13] = 0 // creation time, hundredths
				binary.LittleEndian.PutUint16(e[14:], clock)
				binary.LittleEndian.PutUint16(e[16:], date)
				binary.LittleEndian.PutUint16(e[18:], date) // access date
				binary.LittleEndian.PutUint16(e[22:], clock)
				binary.LittleEndian.PutUint16(e[24:], date)
				switch {
				case string(e[0:11]) == "..         " && d.parent == l.rootCluster:
					binary.LittleEndian.PutUint16(e[20:], 0)
					binary.LittleEndian.PutUint16(e[26:], 0)
				case e[11]&0x10 != 0 && e[0] != '.':
					first := uint32(binary.LittleEndian.Uint16(e[20:]))<<16 | uint32(binary.LittleEndian.Uint16(e[26:]))
					dirs = append(dirs, dir{cluster: first, parent: d.cluster})
				}
			}
			if _, err := f.WriteAt(b, off); err != nil {
				return fmt.Errorf("writing directory cluster %d: %w", c, err)
			}
		}
	}

	var free uint32
	for c := int64(2); c < l.clusters+2; c++ {
		if binary.LittleEndian.Uint32(fat[4*c:])&0x0fffffff == 0 {
			free++
		}
	}
	for _, off := range l.fsInfo {
		b := make([]byte, 4)
		binary.LittleEndian.PutUint32(b, free)
		if _, err := f.WriteAt(b, off+488); err != nil {
			return fmt.Errorf("writing FSInfo: %w", err)
		}
	}
	return nil
}

// chain follows a cluster chain through the FAT.
func (l fatLayout) chain(fat []byte, c uint32) ([]uint32, error) {
	var out []uint32
	for c < 0x0ffffff8 {
		if c < 2 || int64(c)-2 >= l.clusters || len(out) > int(l.clusters) {
			return nil, fmt.Errorf("broken FAT cluster chain at cluster %d", c)
		}
		out = append(out, c)
		c = binary.LittleEndian.Uint32(fat[4*c:]) & 0x0fffffff
	}
	return out, nil
}

// dosTime encodes t in FAT's date and time format (UTC, two-second
// resolution, years 1980–2107).
func dosTime(t time.Time) (date, clock uint16) {
	t = t.UTC()
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	date = uint16((t.Year()-1980)<<9 | int(t.Month())<<5 | t.Day())
	clock = uint16(t.Hour()<<11 | t.Minute()<<5 | t.Second()/2)
	return date, clock
}

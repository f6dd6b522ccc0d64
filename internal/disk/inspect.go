package disk

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	iofs "io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/nodebake/nodebake/contract"
)

// Info is what Inspect reads back from an image.
type Info struct {
	Size          int64 // bytes
	DiskGUID      string
	ProtectiveMBR bool
	Partitions    []PartitionInfo
	ESP           *ESPInfo // nil when the disk has no EFI system partition
}

// PartitionInfo describes one partition and what it holds.
type PartitionInfo struct {
	Number   int
	Name     string
	Type     gpt.Type
	UUID     string // PARTUUID, lower case as on the kernel command line
	Start    int64  // bytes from the start of the disk
	Size     int64  // bytes
	Content  string // "FAT32", "squashfs", "ext4", "empty" or "unknown"
	Manifest []byte // contract.ManifestPath of a squashfs root, nil when absent
}

// ESPInfo is the content of the EFI system partition.
type ESPInfo struct {
	Label      string
	Files      []ESPFile         // every file, sorted by path
	LoaderConf map[string]string // /loader/loader.conf, key → value
	Entries    []Entry           // /loader/entries/*.conf, sorted by file name
}

// ESPFile is one file on the ESP.
type ESPFile struct {
	Path string // absolute, e.g. "/EFI/BOOT/BOOTX64.EFI"
	Size int64
}

// Entry is a Boot Loader Specification Type #1 entry.
type Entry struct {
	File    string // file name; systemd-boot's boot counting renames it (a+3-0.conf → a+2-1.conf)
	Title   string
	Version string
	Linux   string
	Initrd  []string
	Options string // all options lines, joined by spaces
}

// Inspect reads an image back: its partition table, the ESP's files and
// boot configuration, and the manifest of each root slot that holds one.
func Inspect(path string) (*Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	table, err := gpt.Read(f, sectorSize, sectorSize)
	if err != nil {
		return nil, fmt.Errorf("%s: reading GPT: %w", path, err)
	}
	info := &Info{
		Size:          st.Size(),
		DiskGUID:      strings.ToLower(table.GUID),
		ProtectiveMBR: table.ProtectiveMBR,
	}
	storage := file.New(f, true)
	for _, p := range table.Partitions {
		pi := PartitionInfo{
			Number: p.Index,
			Name:   p.Name,
			Type:   p.Type,
			UUID:   strings.ToLower(p.GUID),
			Start:  int64(p.Start) * sectorSize,
			Size:   int64(p.End-p.Start+1) * sectorSize,
		}
		if pi.Content, err = contentType(f, pi.Start); err != nil {
			return nil, fmt.Errorf("%s: %w", pi.Name, err)
		}
		switch {
		case pi.Type == gpt.EFISystemPartition && info.ESP == nil:
			if info.ESP, err = readESP(storage, pi.Start, pi.Size); err != nil {
				return nil, fmt.Errorf("%s: %w", pi.Name, err)
			}
		case pi.Content == "squashfs":
			if pi.Manifest, err = readManifest(storage, pi.Start, pi.Size); err != nil {
				return nil, fmt.Errorf("%s: %w", pi.Name, err)
			}
		}
		info.Partitions = append(info.Partitions, pi)
	}
	slices.SortFunc(info.Partitions, func(a, b PartitionInfo) int { return a.Number - b.Number })
	return info, nil
}

// contentType recognises a filesystem by its magic number.
func contentType(f *os.File, start int64) (string, error) {
	b := make([]byte, 4096)
	if _, err := f.ReadAt(b, start); err != nil {
		return "", err
	}
	switch {
	case string(b[0:4]) == "hsqs":
		return "squashfs", nil
	case string(b[82:90]) == "FAT32   ":
		return "FAT32", nil
	case binary.LittleEndian.Uint16(b[1080:]) == 0xef53:
		return "ext4", nil
	case !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }):
		return "empty", nil
	}
	return "unknown", nil
}

func readESP(b backend.Storage, start, size int64) (*ESPInfo, error) {
	fs, err := fat32.Read(b, size, start, sectorSize)
	if err != nil {
		return nil, fmt.Errorf("reading FAT32: %w", err)
	}
	esp := &ESPInfo{Label: strings.TrimSpace(fs.Label())}
	var walk func(dir string) error
	walk = func(dir string) error {
		entries, err := fs.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("reading directory %s: %w", dir, err)
		}
		for _, e := range entries {
			p := path.Join(dir, e.Name())
			if e.IsDir() {
				if err := walk(p); err != nil {
					return err
				}
				continue
			}
			fi, err := e.Info()
			if err != nil {
				return err
			}
			esp.Files = append(esp.Files, ESPFile{Path: path.Join("/", p), Size: fi.Size()})
		}
		return nil
	}
	if err := walk("."); err != nil {
		return nil, err
	}
	slices.SortFunc(esp.Files, func(a, b ESPFile) int { return strings.Compare(a.Path, b.Path) })

	for _, f := range esp.Files {
		dir, name := path.Split(f.Path)
		isConf := strings.HasSuffix(strings.ToLower(name), ".conf")
		switch {
		case strings.EqualFold(f.Path, "/loader/loader.conf"):
			b, err := fs.ReadFile(f.Path[1:])
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", f.Path, err)
			}
			esp.LoaderConf = map[string]string{}
			for _, kv := range parseConf(b) {
				esp.LoaderConf[kv[0]] = kv[1]
			}
		case strings.EqualFold(dir, "/loader/entries/") && isConf:
			b, err := fs.ReadFile(f.Path[1:])
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", f.Path, err)
			}
			esp.Entries = append(esp.Entries, parseEntry(name, b))
		}
	}
	return esp, nil
}

// parseConf reads systemd-boot's configuration syntax: one "key value" per
// line, "#" starts a comment.
func parseConf(b []byte) [][2]string {
	var kvs [][2]string
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			k, v = line[:i], strings.TrimSpace(line[i+1:])
		}
		kvs = append(kvs, [2]string{k, v})
	}
	return kvs
}

func parseEntry(name string, b []byte) Entry {
	e := Entry{File: name}
	var options []string
	for _, kv := range parseConf(b) {
		switch kv[0] {
		case "title":
			e.Title = kv[1]
		case "version":
			e.Version = kv[1]
		case "linux":
			e.Linux = kv[1]
		case "initrd":
			e.Initrd = append(e.Initrd, kv[1])
		case "options":
			options = append(options, kv[1])
		}
	}
	e.Options = strings.Join(options, " ")
	return e
}

// readManifest reads contract.ManifestPath out of the squashfs at start, or returns
// nil if the filesystem has none. go-diskfs's squashfs reader handles
// mksquashfs and tar2sqfs images with zstd compression.
func readManifest(b backend.Storage, start, size int64) ([]byte, error) {
	fs, err := squashfs.Read(b, size, start, 0)
	if err != nil {
		return nil, fmt.Errorf("reading squashfs: %w", err)
	}
	// The reader's errors do not wrap fs.ErrNotExist, so look before
	// reading to tell "no manifest" from a damaged filesystem.
	dir := "."
	for _, name := range strings.Split(contract.ManifestPath[1:], "/") {
		entries, err := fs.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("reading squashfs: %w", err)
		}
		if !slices.ContainsFunc(entries, func(e iofs.DirEntry) bool { return e.Name() == name }) {
			return nil, nil
		}
		dir = path.Join(dir, name)
	}
	m, err := fs.ReadFile(dir)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", contract.ManifestPath, err)
	}
	return m, nil
}

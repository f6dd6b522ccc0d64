package disk

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/nodebake/nodebake/internal/bytesize"
)

func TestInspect(t *testing.T) {
	ti := newTestImage(t)
	img, _ := ti.write(t, "disk.img")
	info, err := Inspect(img)
	if err != nil {
		t.Fatal(err)
	}

	var files []ESPFile
	for name, content := range testESPFiles() {
		files = append(files, ESPFile{Path: name, Size: int64(len(content))})
	}
	slices.SortFunc(files, func(a, b ESPFile) int { return strings.Compare(a.Path, b.Path) })
	want := &Info{
		Size:          (2 + 33 + 2 + 2 + 3) * bytesize.MiB,
		DiskGUID:      testDiskGUID,
		ProtectiveMBR: true,
		Partitions: []PartitionInfo{
			{Number: 1, Name: "esp", Type: gpt.EFISystemPartition, UUID: "11111111-2222-4333-8444-555555555555", Start: 1 * bytesize.MiB, Size: 33 * bytesize.MiB, Content: "FAT32"},
			{Number: 2, Name: "root-a", Type: gpt.LinuxRootX86_64, UUID: "22222222-2222-4333-8444-555555555555", Start: 34 * bytesize.MiB, Size: 2 * bytesize.MiB, Content: "squashfs", Manifest: []byte(testManifest)},
			{Number: 3, Name: "root-b", Type: gpt.LinuxRootX86_64, UUID: "33333333-2222-4333-8444-555555555555", Start: 36 * bytesize.MiB, Size: 2 * bytesize.MiB, Content: "squashfs"},
			{Number: 4, Name: "data", Type: gpt.LinuxFilesystem, UUID: "44444444-2222-4333-8444-555555555555", Start: 38 * bytesize.MiB, Size: 3 * bytesize.MiB, Content: "empty"},
		},
		ESP: &ESPInfo{
			Label:      "ESP",
			Files:      files,
			LoaderConf: map[string]string{"default": "nodebake-a*", "timeout": "0"},
			Entries: []Entry{
				{File: "nodebake-a+3-0.conf", Title: "Node A", Version: "1.2.3", Linux: "/nodebake/a/vmlinuz",
					Initrd: []string{"/nodebake/a/initrd.zst"}, Options: "console=ttyS0 nodebake.slot=a"},
				{File: "nodebake-b.conf", Title: "Node B", Linux: "/nodebake/b/vmlinuz"},
			},
		},
	}
	if !reflect.DeepEqual(info, want) {
		t.Errorf("Inspect:\n got %+v\nwant %+v", info, want)
		t.Errorf("ESP:\n got %+v\nwant %+v", info.ESP, want.ESP)
	}

	var out bytes.Buffer
	if err := info.Print(&out); err != nil {
		t.Fatal(err)
	}
	// Compare words, not column padding.
	var lines []string
	for _, l := range strings.Split(out.String(), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	for _, l := range []string{
		"disk GUID " + testDiskGUID,
		"MBR protective",
		"# NAME TYPE START SIZE PARTUUID CONTENT",
		"1 esp EFI System 1 MiB 33 MiB 11111111-2222-4333-8444-555555555555 FAT32",
		"2 root-a Linux root (x86-64) 34 MiB 2 MiB 22222222-2222-4333-8444-555555555555 squashfs",
		"4 data Linux filesystem 38 MiB 3 MiB 44444444-2222-4333-8444-555555555555 empty",
		`ESP files (volume label "ESP")`,
		"/nodebake/a/vmlinuz 2.0 MiB",
		"default nodebake-a*",
		"/loader/entries/nodebake-a+3-0.conf",
		"options console=ttyS0 nodebake.slot=a",
		"root-a /usr/share/nodebake/manifest.json",
		"packages [1 items]",
		"version 1.2.3",
		"(none)",
	} {
		if !slices.Contains(lines, l) {
			t.Errorf("Print lacks the line %q:\n%s", l, out.String())
		}
	}
}

func TestInspectRefusesNonDisk(t *testing.T) {
	img := filepath.Join(t.TempDir(), "not-a-disk.img")
	if err := os.WriteFile(img, bytes.Repeat([]byte("x"), 2*bytesize.MiB), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Inspect(img); err == nil || !strings.Contains(err.Error(), "reading GPT") {
		t.Errorf("got error %v, want one about reading the GPT", err)
	}
}

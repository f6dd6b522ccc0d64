package disk

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/bytesize"
)

const (
	testDiskGUID = "8a4c2d1e-5b6f-4a70-9c1d-2e3f4a5b6c7d"
	testManifest = `{"name":"node","version":"1.2.3","packages":[{"name":"tor","version":"0.4.7"}]}`
)

// testImage holds the inputs of a small real disk image.
type testImage struct {
	dir   string
	parts []Partition
}

// newTestImage builds the partition contents: a real ESP and real zstd
// squashfs roots (root-a with a manifest, root-b without).
func newTestImage(t *testing.T) testImage {
	t.Helper()
	dir := t.TempDir()
	esp := filepath.Join(dir, "esp.img")
	if err := ESP(esp, testESPSize, testESPFiles(), testMtime); err != nil {
		t.Fatal(err)
	}
	rootA := squashfsImage(t, dir, "root-a", map[string]string{
		"usr/share/nodebake/manifest.json": testManifest,
		"etc/hostname":                     "node\n",
	})
	rootB := squashfsImage(t, dir, "root-b", map[string]string{"etc/hostname": "node\n"})
	return testImage{dir: dir, parts: []Partition{
		{Name: contract.ESP, Type: gpt.EFISystemPartition, UUID: "11111111-2222-4333-8444-555555555555", Size: testESPSize, Content: esp},
		{Name: contract.RootA, Type: gpt.LinuxRootX86_64, UUID: "22222222-2222-4333-8444-555555555555", Size: 2 * bytesize.MiB, Content: rootA},
		{Name: contract.RootB, Type: gpt.LinuxRootX86_64, UUID: "33333333-2222-4333-8444-555555555555", Size: 2 * bytesize.MiB, Content: rootB},
		{Name: contract.Data, Type: gpt.LinuxFilesystem, UUID: "44444444-2222-4333-8444-555555555555", Size: 3 * bytesize.MiB},
	}}
}

func squashfsImage(t *testing.T, dir, name string, files map[string]string) string {
	t.Helper()
	tree := filepath.Join(dir, name+".tree")
	for p, content := range files {
		p = filepath.Join(tree, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, name+".sqfs")
	cmd := exec.Command("mksquashfs", tree, img, "-comp", "zstd", "-reproducible", "-mkfs-time", "0", "-all-time", "0",
		"-all-root", "-quiet", "-no-progress")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	return img
}

func (ti testImage) write(t *testing.T, name string) (string, [][2]int64) {
	t.Helper()
	img := filepath.Join(ti.dir, name)
	var calls [][2]int64
	if err := Write(img, testDiskGUID, ti.parts, func(done, total int64) {
		calls = append(calls, [2]int64{done, total})
	}); err != nil {
		t.Fatal(err)
	}
	return img, calls
}

func TestWriteReadBack(t *testing.T) {
	ti := newTestImage(t)
	img, progress := ti.write(t, "disk.img")
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	wantSize := int64(2 * bytesize.MiB)
	var contentTotal int64
	for _, p := range ti.parts {
		wantSize += p.Size
		if p.Content != "" {
			st, err := os.Stat(p.Content)
			if err != nil {
				t.Fatal(err)
			}
			contentTotal += st.Size()
		}
	}
	if int64(len(b)) != wantSize {
		t.Fatalf("image is %d bytes, want %d", len(b), wantSize)
	}
	if len(progress) == 0 || progress[len(progress)-1] != [2]int64{contentTotal, contentTotal} {
		t.Errorf("progress calls %v, want the last to be {%d %d}", progress, contentTotal, contentTotal)
	}

	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	table, err := gpt.Read(f, 512, 512)
	if err != nil {
		t.Fatal(err)
	}
	if !table.ProtectiveMBR {
		t.Error("no protective MBR")
	}
	if !strings.EqualFold(table.GUID, testDiskGUID) {
		t.Errorf("disk GUID %s, want %s", table.GUID, testDiskGUID)
	}
	if len(table.Partitions) != len(ti.parts) {
		t.Fatalf("%d partitions, want %d", len(table.Partitions), len(ti.parts))
	}
	start := int64(bytesize.MiB)
	for i, want := range ti.parts {
		got := table.Partitions[i]
		if got.Index != i+1 || got.Name != want.Name || got.Type != want.Type || !strings.EqualFold(got.GUID, want.UUID) ||
			int64(got.Start)*512 != start || int64(got.End+1)*512 != start+want.Size {
			t.Errorf("partition %d: got %d %s %s %s sectors %d-%d, want %d %s %s %s bytes %d+%d",
				i+1, got.Index, got.Name, got.Type, got.GUID, got.Start, got.End, i+1, want.Name, want.Type, want.UUID, start, want.Size)
		}
		region := b[start : start+want.Size]
		content := []byte{}
		if want.Content != "" {
			if content, err = os.ReadFile(want.Content); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(region[:len(content)], content) {
			t.Errorf("%s: bytes at offset %d differ from %s", want.Name, start, want.Content)
		}
		if bytes.ContainsFunc(region[len(content):], func(r rune) bool { return r != 0 }) {
			t.Errorf("%s: not zero after its content", want.Name)
		}
		start += want.Size
	}
}

// sfdisk and sgdisk (util-linux, gdisk) are what Linux users will point at
// the image; both must accept it without complaint.
func TestWriteAcceptedByPartitioners(t *testing.T) {
	ti := newTestImage(t)
	img, _ := ti.write(t, "disk.img")

	out, err := exec.Command("sgdisk", "--verify", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk --verify: %v\n%s", err, out)
	}

	out, err = exec.Command("sfdisk", "--json", img).Output()
	if err != nil {
		t.Fatalf("sfdisk --json: %v\n%s", err, out)
	}
	var dump struct {
		PartitionTable struct {
			Label      string
			ID         string
			SectorSize int
			Partitions []struct {
				Start, Size int64
				Type, UUID  string
				Name        string
			}
		}
	}
	if err := json.Unmarshal(out, &dump); err != nil {
		t.Fatalf("sfdisk --json: %v\n%s", err, out)
	}
	pt := dump.PartitionTable
	if pt.Label != "gpt" || !strings.EqualFold(pt.ID, testDiskGUID) || pt.SectorSize != 512 {
		t.Errorf("sfdisk sees label %q id %q sector size %d", pt.Label, pt.ID, pt.SectorSize)
	}
	if len(pt.Partitions) != len(ti.parts) {
		t.Fatalf("sfdisk sees %d partitions, want %d:\n%s", len(pt.Partitions), len(ti.parts), out)
	}
	start := int64(bytesize.MiB)
	for i, want := range ti.parts {
		got := pt.Partitions[i]
		if got.Start*512 != start || got.Size*512 != want.Size || got.Name != want.Name ||
			!strings.EqualFold(got.Type, string(want.Type)) || !strings.EqualFold(got.UUID, want.UUID) {
			t.Errorf("sfdisk sees partition %d as %+v, want %+v at byte %d", i+1, got, want, start)
		}
		start += want.Size
	}
}

func TestWriteReproducible(t *testing.T) {
	ti := newTestImage(t)
	a, _ := ti.write(t, "a.img")
	b, _ := ti.write(t, "b.img")
	sameBytes(t, a, b)
}

func TestWriteRefuses(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 3*bytesize.MiB+1), 0o644); err != nil {
		t.Fatal(err)
	}
	part := func(name, uuid string, size int64, content string) Partition {
		return Partition{Name: name, Type: gpt.LinuxRootX86_64, UUID: uuid, Size: size, Content: content}
	}
	const u1, u2 = "22222222-2222-4333-8444-555555555555", "33333333-2222-4333-8444-555555555555"
	for _, tc := range []struct {
		name  string
		guid  string
		parts []Partition
		want  string
	}{
		{"slot too small", testDiskGUID, []Partition{part(contract.RootA, u1, 3*bytesize.MiB, big)},
			"root-a: image is 3.0 MiB (3145729 bytes) but the slot holds 3 MiB: raise disk.slot_size in image.yaml"},
		{"ESP too small", testDiskGUID, []Partition{part(contract.ESP, u1, 2*bytesize.MiB, big)},
			"esp: image is 3.0 MiB (3145729 bytes) but the partition holds 2 MiB: raise disk.esp_size in image.yaml"},
		{"size not whole MiB", testDiskGUID, []Partition{part(contract.Data, u1, bytesize.MiB+512, "")},
			"data: size 1049088 bytes is not a positive multiple of 1 MiB"},
		{"same label", testDiskGUID, []Partition{part(contract.Data, u1, bytesize.MiB, ""), part(contract.Data, u2, bytesize.MiB, "")},
			`partition label "data" is used twice`},
		{"same PARTUUID", testDiskGUID, []Partition{part(contract.RootA, u1, bytesize.MiB, ""), part(contract.RootB, strings.ToUpper(u1), bytesize.MiB, "")},
			"root-a and root-b have the same PARTUUID"},
		{"bad PARTUUID", testDiskGUID, []Partition{part(contract.RootA, "x", bytesize.MiB, "")}, `root-a: PARTUUID "x"`},
		{"bad disk GUID", "nope", []Partition{part(contract.RootA, u1, bytesize.MiB, "")}, `disk GUID "nope"`},
		{"no partitions", testDiskGUID, nil, "disk has no partitions"},
		{"missing content", testDiskGUID, []Partition{part(contract.RootA, u1, bytesize.MiB, filepath.Join(dir, "missing"))}, "root-a: stat"},
	} {
		img := filepath.Join(dir, "disk.img")
		err := Write(img, tc.guid, tc.parts, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got error %v, want %q", tc.name, err, tc.want)
		}
		if _, err := os.Stat(img); !os.IsNotExist(err) {
			t.Errorf("%s: Write created %s before refusing", tc.name, img)
		}
	}
}

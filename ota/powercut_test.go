package ota_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/disk"
	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
)

// espOp is one change Apply, Rollback, systemd-boot or systemd-bless-boot
// makes to the ESP, as a recordingESP saw it. Kind "root" marks the moment
// the new slot's root was written and read back; it changes no file.
type espOp struct {
	kind     string // "create" (with data, when the file was closed), "rename", "remove", "root"
	name, to string
	data     []byte
}

func (o espOp) String() string {
	switch o.kind {
	case "rename":
		return "rename " + o.name + " → " + o.to
	case "root":
		return "root written"
	}
	return o.kind + " " + o.name
}

// recordingESP passes every call to an ESP and records the changes.
type recordingESP struct {
	ota.ESP
	ops *[]espOp
}

func (r recordingESP) Create(name string) (io.WriteCloser, error) {
	w, err := r.ESP.Create(name)
	if err != nil {
		return nil, err
	}
	return &recordingWriter{w: w, name: name, ops: r.ops}, nil
}

func (r recordingESP) Rename(oldname, newname string) error {
	*r.ops = append(*r.ops, espOp{kind: "rename", name: oldname, to: newname})
	return r.ESP.Rename(oldname, newname)
}

func (r recordingESP) Remove(name string) error {
	if names, err := r.ReadDir(path.Dir(name)); err == nil && slices.Contains(names, path.Base(name)) {
		*r.ops = append(*r.ops, espOp{kind: "remove", name: name})
	}
	return r.ESP.Remove(name)
}

type recordingWriter struct {
	w    io.WriteCloser
	name string
	buf  bytes.Buffer
	ops  *[]espOp
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	return w.w.Write(p)
}

func (w *recordingWriter) Close() error {
	*w.ops = append(*w.ops, espOp{kind: "create", name: w.name, data: bytes.Clone(w.buf.Bytes())})
	return w.w.Close()
}

// cut is what a power cut leaves of an operation on FAT: nothing of it,
// or part of it.
type cut int

const (
	before cut = iota // the operation never reached the disk
	half              // create: the name with half the content; rename: the new name added, the old one's removal lost
	// lost is a rename whose two directory writes the drive reordered:
	// the old name is gone, the new one never reached the disk.
	lost
)

// medium is what the ESPs of a test live on: a folder, or a FAT
// filesystem written by go-diskfs.
type medium interface {
	empty(t *testing.T) ota.ESP
	clone(t *testing.T, esp ota.ESP) ota.ESP
}

type dirMedium struct{}

func (dirMedium) empty(t *testing.T) ota.ESP { return ota.ESPDir(ramDir(t)) }
func (dirMedium) clone(t *testing.T, esp ota.ESP) ota.ESP {
	dst := ota.ESPDir(ramDir(t))
	if err := os.CopyFS(string(dst), os.DirFS(string(esp.(ota.ESPDir)))); err != nil {
		t.Fatal(err)
	}
	return dst
}

// ramDir is a temporary folder in RAM where there is one (/dev/shm): the
// hundreds of ESPs and slots this test writes are synced on every change,
// which on a busy disk takes minutes and proves nothing here.
func ramDir(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err != nil || !fi.IsDir() {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("/dev/shm", "nodebake-ota-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// fatMedium is a FAT32 partition file: the ESP of a test image, emptied.
type fatMedium struct{ blank []byte }

func newFATMedium(t *testing.T) fatMedium {
	img := otatest.Image{Name: testName, Version: "1.0.0"}.Build(t, t.TempDir())
	info, err := disk.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	p := otatest.Part(t, info, contract.ESP)
	m := fatMedium{blank: otatest.ReadRegion(t, img, p.Start, p.Size)}
	esp := m.open(t, m.blank)
	for _, dir := range []string{contract.EntriesDir, contract.SlotDir("a")} {
		names, err := esp.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := esp.Remove(dir + "/" + n); err != nil {
				t.Fatal(err)
			}
		}
	}
	m.blank = otatest.ReadFile(t, esp.f.Name())
	return m
}

func (m fatMedium) open(t *testing.T, content []byte) *fatESP {
	name := filepath.Join(ramDir(t), "esp.img")
	if err := os.WriteFile(name, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fs, err := fat32.Read(file.New(f, false), int64(len(content)), 0, 512)
	if err != nil {
		t.Fatal(err)
	}
	return &fatESP{f: f, fs: fs}
}

func (m fatMedium) empty(t *testing.T) ota.ESP { return m.open(t, m.blank) }
func (m fatMedium) clone(t *testing.T, esp ota.ESP) ota.ESP {
	return m.open(t, otatest.ReadFile(t, esp.(*fatESP).f.Name()))
}

// replay applies ops to a copy of the ESP start, the last one only as far
// as c says.
func replay(t *testing.T, m medium, start ota.ESP, ops []espOp, last *espOp, c cut) ota.ESP {
	t.Helper()
	esp := m.clone(t, start)
	apply := func(o espOp, c cut) {
		var err error
		switch {
		case o.kind == "create":
			data := o.data
			if c == half {
				data = data[:len(data)/2]
			}
			err = createESP(esp, o.name, data)
		case o.kind == "rename" && c == before:
			err = esp.Rename(o.name, o.to)
		case o.kind == "rename" && c == lost:
			err = esp.Remove(o.name)
		case o.kind == "rename":
			var b []byte
			if b, err = readESP(esp, o.name); err == nil {
				err = createESP(esp, o.to, b)
			}
		case o.kind == "remove" && c == before:
			err = esp.Remove(o.name)
		}
		if err != nil {
			t.Fatalf("replaying %v: %v", o, err)
		}
	}
	for _, o := range ops {
		apply(o, before)
	}
	if last != nil && c != before {
		apply(*last, c)
	}
	return esp
}

func createESP(esp ota.ESP, name string, data []byte) error {
	w, err := esp.Create(name)
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

func readESP(esp ota.ESP, name string) ([]byte, error) {
	r, err := esp.Open(name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// powerCut is one scenario: an ESP as it stands, the change made to it
// (recorded), and what must hold after a cut anywhere in it.
type powerCut struct {
	name    string
	running string // the slot running while the change is made
	target  string // the slot the change makes boot next
	change  func(esp ota.ESP, root func()) error
	// again runs the change once more on what a cut left, as a later
	// nodectl run does; nil for systemd's own renames.
	again func(esp ota.ESP) error
	// keeps is the slot that must keep a complete entry throughout: the
	// fallback ("" means the running slot).
	keeps string
	// stands, if set, is the name that must stand for target's slot
	// (ota.SlotEntry) when the change's rename was cut in half.
	stands string
}

// TestPowerCut records the ESP operations of Apply, Rollback, the
// demotion and promotion in them, systemd-boot's counting and
// systemd-bless-boot's blessing, on a folder and on a FAT filesystem
// written by go-diskfs, then replays every prefix onto a copy,
// with the next operation lost or half done (a create with half its
// bytes; a rename whose removal of the old name is lost, or whose new name
// is, as on FAT, whose two directory writes a drive's cache may reorder).
// After each cut the ESP must hold a complete entry, the fallback slot
// must still have one, the one systemd-boot picks must be complete and be
// the running slot or the target, and running the change again must end
// where the uninterrupted change ended.
func TestPowerCut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bundles := map[string]*ota.Bundle{}
	for _, v := range []string{"1.0.0", "2.0.0", "3.0.0"} {
		bundles[v] = makeBundle(t, v)
	}
	devices := map[string]string{}
	for _, slot := range []string{"a", "b"} {
		devices[slot] = filepath.Join(ramDir(t), "root-"+slot)
		if err := os.WriteFile(devices[slot], make([]byte, otatest.SlotSize), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// layout writes an ESP: entry file name → version, each slot's
	// kernel and initramfs of that version.
	layout := func(m medium, entries map[string]string) ota.ESP {
		esp := m.empty(t)
		for file, v := range entries {
			slot, _ := ota.EntrySlot(file)
			mf := &bundles[v].Manifest
			writeESP(t, esp, contract.EntriesDir+"/"+file, contract.EntryConf(mf.Name, mf.Version, mf.KernelArgs, mf.Slot(slot)))
			for _, f := range [][2]string{{contract.KernelFile, ota.KernelFile}, {contract.InitrdFile, ota.InitrdFile}} {
				writeESP(t, esp, contract.SlotDir(slot)+"/"+f[0], bundleFile(t, bundles[v], f[1]))
			}
		}
		return esp
	}
	media := []struct {
		name string
		medium
	}{{"folder", dirMedium{}}, {"fat", newFATMedium(t)}}
	apply := func(v, running, version string) func(ota.ESP, func()) error {
		return func(esp ota.ESP, root func()) error {
			return ota.Apply(ctx, verified(t, bundles[v], version), ota.Target{Active: running, Device: devices[ota.Other(running)], ESP: esp},
				func(step string, done, total int64) {
					if step == "check root" && done == total {
						root()
					}
				})
		}
	}
	noRoot := func(f func(ota.ESP) error) func(ota.ESP, func()) error {
		return func(esp ota.ESP, _ func()) error { return f(esp) }
	}
	rename := func(from, to string) func(ota.ESP) error {
		return func(esp ota.ESP) error { return esp.Rename(contract.EntriesDir+"/"+from, contract.EntriesDir+"/"+to) }
	}
	rollback := func(running string) func(ota.ESP) error {
		return func(esp ota.ESP) error { return ota.Rollback(esp, running) }
	}

	for _, pc := range []struct {
		powerCut
		start map[string]string
	}{
		{powerCut{name: "update", running: "a", target: "b", change: apply("2.0.0", "a", "1.0.0"),
			again: func(esp ota.ESP) error { return apply("2.0.0", "a", "1.0.0")(esp, func() {}) }},
			map[string]string{"nodebake-a.conf": "1.0.0", "nodebake-b+0-3.conf": "3.0.0"}},
		{powerCut{name: "downgrade demotes the running entry", running: "b", target: "a", change: apply("1.0.0", "b", "2.0.0"),
			again: func(esp ota.ESP) error { return apply("1.0.0", "b", "2.0.0")(esp, func() {}) }},
			map[string]string{"nodebake-a.conf": "1.0.0", "nodebake-b.conf": "2.0.0"}},
		{powerCut{name: "update promotes a standby entry", running: "b", target: "a", change: apply("3.0.0", "b", "2.0.0"),
			again: func(esp ota.ESP) error { return apply("3.0.0", "b", "2.0.0")(esp, func() {}) }},
			map[string]string{"nodebake-a+3.conf": "1.0.0", "nodebake-b+0.conf": "2.0.0"}},
		{powerCut{name: "rollback to an older slot", running: "b", target: "a", change: noRoot(rollback("b")), again: rollback("b")},
			map[string]string{"nodebake-a.conf": "1.0.0", "nodebake-b.conf": "2.0.0"}},
		{powerCut{name: "rollback to a standby slot", running: "a", target: "b", change: noRoot(rollback("a")), again: rollback("a")},
			map[string]string{"nodebake-a.conf": "1.0.0", "nodebake-b+0.conf": "2.0.0"}},
		{powerCut{name: "rollback while on trial", running: "b", target: "a", change: noRoot(rollback("b")), again: rollback("b")},
			map[string]string{"nodebake-a.conf": "1.0.0", "nodebake-b+2-1.conf": "2.0.0"}},
		// systemd's own renames are not power-safe on FAT: what holds is
		// that the other slot's entry is untouched.
		{powerCut{name: "systemd-boot counts a try", running: "a", target: "b", keeps: "a", change: noRoot(rename("nodebake-b+3.conf", "nodebake-b+2-1.conf"))},
			map[string]string{"nodebake-a.conf": "1.0.0", "nodebake-b+3.conf": "2.0.0"}},
		// Once the try is counted slot a boots next: "running" is b, the
		// slot systemd-boot starts.
		{powerCut{name: "systemd-boot counts the last try", running: "b", target: "a", keeps: "a", change: noRoot(rename("nodebake-b+1-2.conf", "nodebake-b+0-3.conf")),
			stands: "nodebake-b+1-2.conf"},
			map[string]string{"nodebake-a.conf": "1.0.0", "nodebake-b+1-2.conf": "2.0.0"}},
		{powerCut{name: "systemd-bless-boot blesses", running: "b", target: "b", keeps: "a", change: noRoot(rename("nodebake-b+2-1.conf", "nodebake-b.conf")),
			stands: "nodebake-b.conf"},
			map[string]string{"nodebake-a.conf": "1.0.0", "nodebake-b+2-1.conf": "2.0.0"}},
	} {
		for _, m := range media {
			t.Run(m.name+"/"+strings.ReplaceAll(pc.name, " ", "_"), func(t *testing.T) {
				pc.check(t, m.medium, layout(m.medium, pc.start), pc.start, bundles)
			})
		}
	}
}

func (pc powerCut) check(t *testing.T, m medium, start ota.ESP, startEntries map[string]string, bundles map[string]*ota.Bundle) {
	was := map[string]string{} // slot → version before the change
	for file, v := range startEntries {
		slot, _ := ota.EntrySlot(file)
		was[slot] = v
	}
	var ops []espOp
	done := m.clone(t, start)
	if err := pc.change(recordingESP{done, &ops}, func() { ops = append(ops, espOp{kind: "root"}) }); err != nil {
		t.Fatal(err)
	}
	final := entryFiles(t, done)
	if next := nextSlot(t, done); next != pc.target {
		t.Fatalf("after the change slot %s boots next, want %s", next, pc.target)
	}
	t.Logf("%d operations, ending in %v", len(ops), final)
	rootAt := slices.IndexFunc(ops, func(o espOp) bool { return o.kind == "root" })
	states := 0
	for i := 0; i <= len(ops); i++ {
		cuts := []cut{before}
		var last *espOp
		if i < len(ops) {
			last = &ops[i]
			if last.kind == "create" || last.kind == "rename" {
				cuts = append(cuts, half)
			}
			if last.kind == "rename" {
				cuts = append(cuts, lost)
			}
		}
		for _, c := range cuts {
			what := "after all operations"
			if last != nil {
				what = fmt.Sprintf("cut before operation %d (%v)", i, last)
				switch c {
				case half:
					what = fmt.Sprintf("cut in the middle of operation %d (%v)", i, last)
				case lost:
					what = fmt.Sprintf("cut in operation %d (%v) after the old name's removal, before the new name", i, last)
				}
			}
			esp := replay(t, m, start, ops[:i], last, c)
			states++
			pc.bootable(t, what, esp, bundles, was, rootAt < 0 || rootAt < i)
			if pc.stands != "" && c == half {
				entries, err := ota.ReadEntries(esp)
				if err != nil {
					t.Fatal(err)
				}
				slot, _ := ota.EntrySlot(pc.stands)
				if e, _ := ota.SlotEntry(entries, slot); e.File != pc.stands {
					t.Errorf("%s: %s stands for slot %s, want %s", what, e.File, slot, pc.stands)
				}
			}
			if pc.again == nil {
				continue
			}
			if err := pc.again(esp); err != nil {
				t.Errorf("%s: running the change again: %v", what, err)
				continue
			}
			if got := entryFiles(t, esp); !slices.Equal(got, final) {
				t.Errorf("%s: running the change again leaves %v, want %v", what, got, final)
			}
		}
	}
	t.Logf("%d states checked", states)
}

// bootable checks what systemd-boot finds on esp: some complete entry,
// and first in its order a complete one of the running or the target
// slot. A complete entry is exactly what Apply writes for its version and
// slot, and the slot's kernel and initramfs are that version's. The target
// may boot a version other than the one it held before (was) only once
// the change wrote its root (rootDone).
func (pc powerCut) bootable(t *testing.T, what string, esp ota.ESP, bundles map[string]*ota.Bundle, was map[string]string, rootDone bool) {
	t.Helper()
	entries, err := ota.ReadEntries(esp)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	complete := func(e ota.Entry) error {
		b, ok := bundles[e.Version]
		if !ok || e.Slot == "" {
			return fmt.Errorf("entry %s names version %q and slot %q", e.File, e.Version, e.Slot)
		}
		m := &b.Manifest
		if got, err := readESP(esp, contract.EntriesDir+"/"+e.File); err != nil || !bytes.Equal(got, contract.EntryConf(m.Name, m.Version, m.KernelArgs, m.Slot(e.Slot))) {
			return fmt.Errorf("entry %s is not whole:\n%s", e.File, got)
		}
		for _, f := range [][2]string{{contract.KernelFile, ota.KernelFile}, {contract.InitrdFile, ota.InitrdFile}} {
			got, err := readESP(esp, contract.SlotDir(e.Slot)+"/"+f[0])
			if err != nil || !bytes.Equal(got, bundleFile(t, b, f[1])) {
				return fmt.Errorf("entry %s: /%s/%s is not version %s's (%v)", e.File, contract.SlotDir(e.Slot), f[0], e.Version, err)
			}
		}
		return nil
	}
	if !slices.ContainsFunc(entries, func(e ota.Entry) bool { return complete(e) == nil }) {
		t.Errorf("%s: no complete entry in %v", what, entryFiles(t, esp))
	}
	keeps := cmp.Or(pc.keeps, pc.running)
	if !slices.ContainsFunc(entries, func(e ota.Entry) bool { return e.Slot == keeps && complete(e) == nil }) {
		t.Errorf("%s: slot %s, the fallback, has no complete entry in %v", what, keeps, entryFiles(t, esp))
	}
	next, ok := ota.NextBoot(entries)
	switch {
	case !ok:
		t.Errorf("%s: no entry to boot", what)
	case complete(next) != nil:
		t.Errorf("%s: systemd-boot picks %s: %v", what, next.File, complete(next))
	case next.Slot != pc.running && next.Slot != pc.target && next.Slot != keeps:
		t.Errorf("%s: systemd-boot picks %s, of neither the running slot %s nor the target %s", what, next.File, pc.running, pc.target)
	case next.Slot != pc.running && next.Version != was[next.Slot] && !rootDone:
		t.Errorf("%s: systemd-boot picks %s before its root was written", what, next.File)
	}
}

// bundleFile is the content of one of a bundle's files.
func bundleFile(t *testing.T, b *ota.Bundle, name string) []byte {
	t.Helper()
	r, _, err := b.OpenFile(name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestSlotEntryTwoNames checks which of a slot's two names (a change of
// name cut off) stands for it, whichever way round systemd-boot sorts
// them: the most trusted, so that a good slot keeps its good name.
func TestSlotEntryTwoNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ a, b, want string }{
		{"nodebake-a.conf", "nodebake-a+0.conf", "nodebake-a.conf"},     // demotion or promotion of the running slot
		{"nodebake-a.conf", "nodebake-a+3.conf", "nodebake-a.conf"},     // rollback's fresh tries
		{"nodebake-a.conf", "nodebake-a+2-1.conf", "nodebake-a.conf"},   // systemd-bless-boot
		{"nodebake-a+0.conf", "nodebake-a+3.conf", "nodebake-a+0.conf"}, // rollback to a standby slot
		{"nodebake-a+3.conf", "nodebake-a+2-1.conf", "nodebake-a+2-1.conf"},
		{"nodebake-a+1-2.conf", "nodebake-a+0-3.conf", "nodebake-a+1-2.conf"},
		{"nodebake-a+2-1.conf", "nodebake-a+0-1.conf", "nodebake-a+2-1.conf"}, // demotion of a slot on trial
	} {
		for _, names := range [][]string{{tc.a, tc.b}, {tc.b, tc.a}} {
			var entries []ota.Entry
			for _, n := range append(names, "nodebake-b.conf") {
				e := ota.Entry{File: n, Version: "1.0.0", SortKey: contract.SortKey, TriesLeft: -1}
				e.Slot, _ = ota.EntrySlot(n)
				if l, d, ok := counter(n); ok {
					e.TriesLeft, e.TriesDone = l, d
				}
				entries = append(entries, e)
			}
			if got, ok := ota.SlotEntry(entries, "a"); !ok || got.File != tc.want {
				t.Errorf("%v: %s stands for slot a, want %s", names, got.File, tc.want)
			}
		}
	}
}

// counter reads "+LEFT[-DONE]" from an entry name.
func counter(name string) (left, done int, ok bool) {
	_, c, ok := strings.Cut(strings.TrimSuffix(name, ".conf"), "+")
	if !ok {
		return 0, 0, false
	}
	l, d, _ := strings.Cut(c, "-")
	fmt.Sscan(l, &left)
	fmt.Sscan(d, &done)
	return left, done, true
}

package ota_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/bytesize"
	"github.com/nodebake/nodebake/internal/disk"
	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
)

func TestApplyToDiskImage(t *testing.T) {
	t.Parallel()
	img := otatest.Image{Name: testName, Version: "1.0.0"}.Build(t, t.TempDir())
	b := verified(t, makeBundle(t, "2.0.0"), "1.0.0")
	before, err := disk.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	rootA, rootB, data := otatest.Part(t, before, contract.RootA), otatest.Part(t, before, contract.RootB), otatest.Part(t, before, contract.Data)

	// Fill data with bytes that must survive.
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(otatest.Random("data", int(data.Size)), data.Start); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sum := func(p disk.PartitionInfo) [32]byte { return sha256.Sum256(otatest.ReadRegion(t, img, p.Start, p.Size)) }
	rootASum, dataSum := sum(rootA), sum(data)

	esp := openFATESP(t, img)
	var steps []string
	err = ota.Apply(context.Background(), b, ota.Target{Active: "a", Device: img, Offset: rootB.Start, Size: rootB.Size, ESP: esp},
		func(step string, done, total int64) {
			if done == total {
				steps = append(steps, step)
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(steps, ", "); got != "write root, check root, write vmlinuz, check vmlinuz, write initrd.img, check initrd.img" {
		t.Errorf("progress steps: %s", got)
	}

	after, err := disk.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	// The slot holds root.img, byte for byte, and reads as the new root.
	rb, _, err := b.OpenFile(ota.RootFile)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := io.ReadAll(rb)
	rb.Close()
	slotBytes := otatest.ReadRegion(t, img, rootB.Start, int64(len(want)))
	if !bytes.Equal(slotBytes, want) {
		t.Fatal("slot b does not hold root.img")
	}
	pb := otatest.Part(t, after, contract.RootB)
	var id struct{ Name, Version string }
	if err := json.Unmarshal(pb.Manifest, &id); err != nil || id.Name != testName || id.Version != "2.0.0" || pb.Content != "squashfs" {
		t.Errorf("root-b: %s holding %s (%v)", pb.Content, pb.Manifest, err)
	}
	// veritysetup accepts the slot with the parameters the entry passes.
	slotFile := filepath.Join(t.TempDir(), "slot-b")
	if err := os.WriteFile(slotFile, slotBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	v := b.Manifest.Verity
	if out, err := exec.Command("veritysetup", "verify", slotFile, slotFile, v.RootHash,
		"--hash-offset="+strconv.FormatUint(v.HashOffset, 10), "--data-blocks="+strconv.FormatUint(v.DataBlocks, 10)).CombinedOutput(); err != nil {
		t.Errorf("veritysetup verify: %v\n%s", err, out)
	}

	// The ESP has slot b's files and entry, and nothing temporary.
	var espFiles []string
	for _, f := range after.ESP.Files {
		espFiles = append(espFiles, f.Path+":"+strconv.FormatInt(f.Size, 10))
	}
	for _, want := range []string{
		"/nodebake/b/vmlinuz:" + strconv.FormatInt(b.Manifest.Kernel.Size, 10),
		"/nodebake/b/initrd.img:" + strconv.FormatInt(b.Manifest.Initrd.Size, 10),
		"/nodebake/a/vmlinuz:" + strconv.Itoa(otatest.KernelSize),
		"/nodebake/a/initrd.img:" + strconv.Itoa(otatest.InitrdSize),
	} {
		if !slices.Contains(espFiles, want) {
			t.Errorf("ESP lacks %s: %v", want, espFiles)
		}
	}
	if slices.ContainsFunc(espFiles, func(s string) bool { return strings.Contains(s, ".tmp") }) {
		t.Errorf("ESP keeps temporary files: %v", espFiles)
	}
	var entryNames []string
	for _, e := range after.ESP.Entries {
		entryNames = append(entryNames, e.File)
	}
	if !slices.Equal(entryNames, []string{"nodebake-a.conf", "nodebake-b+3.conf"}) {
		t.Fatalf("entries %v, want nodebake-a.conf and nodebake-b+3.conf", entryNames)
	}
	eb := after.ESP.Entries[1]
	slot, err := contract.Parse(eb.Options)
	if err != nil {
		t.Fatal(err)
	}
	if slot != b.Manifest.Slot("b") || slot.RootPartUUID != rootB.UUID || slot.DataPartUUID != data.UUID {
		t.Errorf("entry's slot %+v, want root-b %s, data %s", slot, rootB.UUID, data.UUID)
	}
	if eb.Linux != "/nodebake/b/vmlinuz" || !slices.Equal(eb.Initrd, []string{"/nodebake/b/initrd.img"}) || eb.Version != "2.0.0" ||
		kernelArgs(eb.Options) != otatest.KernelArgs {
		t.Errorf("entry: %+v", eb)
	}
	if !reflect.DeepEqual(after.ESP.Entries[0], before.ESP.Entries[0]) {
		t.Errorf("slot a's entry changed: %+v", after.ESP.Entries[0])
	}
	if next := nextSlot(t, esp); next != "b" {
		t.Errorf("systemd-boot would boot slot %s next, want b", next)
	}

	if sum(rootA) != rootASum {
		t.Error("the running slot a was written")
	}
	if sum(data) != dataSum {
		t.Error("the data partition was written")
	}
}

func TestApplyInterrupted(t *testing.T) {
	t.Parallel()
	img := otatest.Image{Name: testName, Version: "1.0.0"}.Build(t, t.TempDir())
	info, err := disk.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	rootB := otatest.Part(t, info, contract.RootB)
	esp := openFATESP(t, img)
	target := ota.Target{Active: "a", Device: img, Offset: rootB.Start, Size: rootB.Size, ESP: esp}

	// A first update is applied but not booted yet: slot b has an entry.
	if err := ota.Apply(context.Background(), verified(t, makeBundle(t, "2.0.0"), "1.0.0"), target, nil); err != nil {
		t.Fatal(err)
	}
	if got := entryFiles(t, esp); !slices.Equal(got, []string{"nodebake-a.conf", "nodebake-b+3.conf"}) {
		t.Fatalf("after the first update: %v", got)
	}

	// A second one is cut off in the middle of writing the root.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err = ota.Apply(ctx, verified(t, makeBundle(t, "3.0.0"), "1.0.0"), target, func(step string, done, total int64) {
		if step == "write root" && done >= 2*ota.Chunk {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Apply: %v", err)
	}
	// Slot b, half overwritten, has no entry, no kernel and no leftovers;
	// slot a boots.
	if got := entryFiles(t, esp); !slices.Equal(got, []string{"nodebake-a.conf"}) {
		t.Errorf("after the interruption the entries are %v, want only nodebake-a.conf", got)
	}
	if got, _ := esp.ReadDir("nodebake/b"); len(got) != 0 {
		t.Errorf("after the interruption nodebake/b holds %v", got)
	}
	if next := nextSlot(t, esp); next != "a" {
		t.Errorf("systemd-boot would boot slot %s", next)
	}
	after, err := disk.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(after.ESP.Entries); got != 1 {
		t.Errorf("the ESP read back has %d entries", got)
	}
}

func TestApplyRefuses(t *testing.T) {
	t.Parallel()
	b := makeBundle(t, "2.0.0")
	dir := t.TempDir()
	esp := ota.ESPDir(filepath.Join(dir, "esp"))
	writeESP(t, esp, "loader/entries/nodebake-a+2-1.conf", builtEntry("1.0.0", b.Manifest.Slot("a")))
	dev := filepath.Join(dir, "root-b")
	if err := os.WriteFile(dev, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	target := ota.Target{Active: "a", Device: dev, Size: otatest.SlotSize, ESP: esp}
	ctx := context.Background()
	if err := ota.Apply(ctx, b, target, nil); err == nil || !strings.Contains(err.Error(), "call Verify first") {
		t.Errorf("unverified bundle: %v", err)
	}
	verified(t, b, "1.0.0")
	if err := ota.Apply(ctx, b, target, nil); err == nil || !strings.Contains(err.Error(), "the running slot a is not marked good (entry nodebake-a+2-1.conf is pending)") {
		t.Errorf("running slot on trial: %v", err)
	}
	if err := esp.Rename("loader/entries/nodebake-a+2-1.conf", "loader/entries/nodebake-a.conf"); err != nil {
		t.Fatal(err)
	}
	small := target
	small.Size = bytesize.MiB
	if err := ota.Apply(ctx, b, small, nil); err == nil || !strings.Contains(err.Error(), "but the slot holds 1048576: this device's slots are too small") {
		t.Errorf("slot too small: %v", err)
	}
	if err := ota.Apply(ctx, b, ota.Target{Active: "a", Device: filepath.Join(dir, "none"), ESP: esp}, nil); err == nil || !strings.Contains(err.Error(), "root-b: open") {
		t.Errorf("missing device: %v", err)
	}
}

// copyESP copies an ESP directory, to try a branch of events on the copy.
func copyESP(t *testing.T, esp ota.ESPDir) ota.ESPDir {
	t.Helper()
	dst := ota.ESPDir(t.TempDir())
	if err := os.CopyFS(string(dst), os.DirFS(string(esp))); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestBootCycle follows a device through updates, a failed update, a
// downgrade and rollbacks, with systemd-boot's renames and
// systemd-bless-boot's simulated, and checks which slot boots at each step.
func TestBootCycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	v1, v2, v3 := makeBundle(t, "1.0.0"), makeBundle(t, "2.0.0"), makeBundle(t, "3.0.0")
	dir := t.TempDir()
	esp := ota.ESPDir(filepath.Join(dir, "esp"))
	// As built: slot a holds v1, its entry without a counter.
	writeESP(t, esp, "loader/entries/nodebake-a.conf", builtEntry("1.0.0", v1.Manifest.Slot("a")))
	devices := map[string]string{"a": filepath.Join(dir, "root-a"), "b": filepath.Join(dir, "root-b")}
	for _, p := range devices {
		if err := os.WriteFile(p, make([]byte, otatest.SlotSize), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	apply := func(b *ota.Bundle, running, version string) error {
		verified(t, b, version)
		return ota.Apply(ctx, b, ota.Target{Active: running, Device: devices[ota.Other(running)], ESP: esp}, nil)
	}
	expect := func(step string, esp ota.ESPDir, entries []string, next string) {
		t.Helper()
		if got := entryFiles(t, esp); !slices.Equal(got, entries) {
			t.Errorf("%s: entries %v, want %v", step, got, entries)
		}
		if got := nextSlot(t, esp); got != next {
			t.Errorf("%s: slot %s boots next, want %s", step, got, next)
		}
	}
	boot := func(esp ota.ESPDir, want string) {
		t.Helper()
		if e := bootAttempt(t, esp); e.Slot != want {
			t.Fatalf("booted slot %s (%s), want %s", e.Slot, e.File, want)
		}
	}

	if err := apply(v2, "a", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	expect("v2 applied to b", esp, []string{"nodebake-a.conf", "nodebake-b+3.conf"}, "b")
	if got := otatest.ReadRegion(t, devices["b"], 0, 4); string(got) != "hsqs" {
		t.Errorf("slot b starts with %q, want a squashfs", got)
	}
	boot(esp, "b")
	if err := apply(v3, "b", "2.0.0"); err == nil || !strings.Contains(err.Error(), "not marked good") {
		t.Errorf("update while slot b is on trial: %v", err)
	}
	bless(t, esp, "b")
	expect("v2 blessed", esp, []string{"nodebake-a.conf", "nodebake-b.conf"}, "b")

	// v3 goes to slot a and never gets blessed: after three tries slot b
	// boots again, and v3 cannot be rolled back to.
	if err := apply(v3, "b", "2.0.0"); err != nil {
		t.Fatal(err)
	}
	expect("v3 applied to a", esp, []string{"nodebake-a+3.conf", "nodebake-b.conf"}, "a")
	for range ota.TriesNew {
		boot(esp, "a")
	}
	expect("v3 failed", esp, []string{"nodebake-a+0-3.conf", "nodebake-b.conf"}, "b")
	boot(esp, "b")
	if err := ota.Rollback(esp, "b"); err == nil || !strings.Contains(err.Error(), "slot a failed to boot (entry nodebake-a+0-3.conf)") {
		t.Errorf("rollback to a failed slot: %v", err)
	}

	// A downgrade to v1 sorts below v2, so v2's entry is set aside. Should
	// v1 fail too, both entries are out of tries and v2 boots again.
	if err := apply(v1, "b", "2.0.0"); err != nil {
		t.Fatal(err)
	}
	expect("v1 applied to a", esp, []string{"nodebake-a+3.conf", "nodebake-b+0.conf"}, "a")
	failed := copyESP(t, esp)
	for range ota.TriesNew {
		boot(failed, "a")
	}
	expect("v1 failed", failed, []string{"nodebake-a+0-3.conf", "nodebake-b+0.conf"}, "b")

	// v1 boots fine instead; rollback returns to v2 (newer: no demotion),
	// and calling it twice changes nothing.
	boot(esp, "a")
	bless(t, esp, "a")
	if err := ota.Rollback(esp, "a"); err != nil {
		t.Fatal(err)
	}
	expect("rolled back to v2", esp, []string{"nodebake-a.conf", "nodebake-b+3.conf"}, "b")
	if err := ota.Rollback(esp, "a"); err != nil {
		t.Fatal(err)
	}
	expect("rolled back twice", esp, []string{"nodebake-a.conf", "nodebake-b+3.conf"}, "b")
	boot(esp, "b")
	bless(t, esp, "b")

	// Rolling back from v2 to the older v1 sets v2 aside; if v1 then
	// fails, v2 boots again.
	if err := ota.Rollback(esp, "b"); err != nil {
		t.Fatal(err)
	}
	expect("rolled back to v1", esp, []string{"nodebake-a+3.conf", "nodebake-b+0.conf"}, "a")
	failed = copyESP(t, esp)
	for range ota.TriesNew {
		boot(failed, "a")
	}
	expect("v1 failed after rollback", failed, []string{"nodebake-a+0-3.conf", "nodebake-b+0.conf"}, "b")

	// Before rebooting into the rollback, v3 is applied over slot a: the
	// running slot b gets its good entry back and v3 boots next.
	if err := apply(v3, "b", "2.0.0"); err != nil {
		t.Fatal(err)
	}
	expect("v3 over a pending rollback", esp, []string{"nodebake-a+3.conf", "nodebake-b.conf"}, "a")
	if got := otatest.ReadFile(t, filepath.Join(string(esp), "loader/entries/nodebake-a+3.conf")); !bytes.Contains(got, []byte("version 3.0.0\nsort-key nodebake\n")) {
		t.Errorf("slot a's entry:\n%s", got)
	}
}

func TestActiveSlot(t *testing.T) {
	t.Parallel()
	b := makeBundle(t, "2.0.0")
	cmdline := "BOOT_IMAGE=/nodebake/b/vmlinuz " + otatest.KernelArgs + " " + b.Manifest.Slot("b").Format() + "\n"
	if got, err := ota.ActiveSlot(cmdline); err != nil || got != "b" {
		t.Errorf("ActiveSlot = %q, %v; want b", got, err)
	}
	if _, err := ota.ActiveSlot("BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro"); err == nil || !strings.Contains(err.Error(), "lacks nodebake.slot") {
		t.Errorf("ActiveSlot of a foreign command line: %v", err)
	}
}

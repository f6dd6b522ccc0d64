package ota

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/contract"
)

// FuzzManifest decodes and validates any manifest bytes: never a panic,
// and a manifest validate accepts makes a boot entry of exactly its six
// lines whose options /init reads back as the slot.
func FuzzManifest(f *testing.F) {
	good := goodManifest()
	raw, err := json.Marshal(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	for _, edit := range []func(m *Manifest){
		func(m *Manifest) { m.Version = "2.0\noptions init=/bin/sh" },
		func(m *Manifest) { m.KernelArgs = "nodebake.slot=b" },
		func(m *Manifest) { m.Verity.HashOffset = 1 << 63 },
		func(m *Manifest) { m.Root.Size = -1 },
	} {
		m := goodManifest()
		edit(&m)
		b, _ := json.Marshal(m)
		f.Add(b)
	}
	f.Add([]byte(`{"format":1,"extra":true}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := parseManifest(raw)
		if err != nil || m.validate() != nil {
			return
		}
		for _, slot := range []string{"a", "b"} {
			entry := string(contract.EntryConf(m.Name, m.Version, m.KernelArgs, m.Slot(slot)))
			lines := strings.Split(strings.TrimSuffix(entry, "\n"), "\n")
			if len(lines) != 6 || strings.ContainsRune(entry, '\r') {
				t.Fatalf("an accepted manifest makes an entry of %d lines:\n%s", len(lines), entry)
			}
			options, _ := strings.CutPrefix(lines[5], "options ")
			if s, err := contract.Parse(options); err != nil || s != m.Slot(slot) {
				t.Fatalf("the entry's options %q read back as %+v, %v; want %+v", options, s, err, m.Slot(slot))
			}
		}
	})
}

// FuzzOpenTar opens any file as a bundle tar: never a panic, and a bundle
// it opens has its manifest and signature, within the size bound.
func FuzzOpenTar(f *testing.F) {
	raw, _ := json.Marshal(goodManifest())
	var good bytes.Buffer
	tw := tar.NewWriter(&good)
	for _, file := range []struct {
		name string
		data []byte
	}{{ManifestFile, raw}, {SignatureFile, []byte("ed25519 0011223344556677 AAAA\n")}, {KernelFile, []byte{1}}} {
		if err := tw.WriteHeader(&tar.Header{Name: file.name, Mode: 0o644, Size: int64(len(file.data)), Typeflag: tar.TypeReg}); err != nil {
			f.Fatal(err)
		}
		tw.Write(file.data)
	}
	tw.Close()
	f.Add(good.Bytes())
	f.Add(good.Bytes()[:700])
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0}, 1024))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "bundle.tar")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		bundle, err := Open(p)
		if err != nil {
			return
		}
		raw, sig := bundle.Signed()
		if len(raw) > maxManifest || len(sig) > maxManifest {
			t.Fatalf("read %d and %d bytes of manifest and signature, more than %d", len(raw), len(sig), maxManifest)
		}
		if r, _, err := bundle.OpenFile(RootFile); err == nil {
			r.Close()
		}
	})
}

// FuzzEntryName reads any file name as systemd-boot's boot counter and a
// nodebake entry name: never a panic, and what it reads is written back to
// a name that reads the same.
func FuzzEntryName(f *testing.F) {
	for _, seed := range []string{"nodebake-a.conf", "nodebake-b+3.conf", "nodebake-a+0-3.conf", "nodebake-a+2-1.conf",
		"nodebake-c.conf", "other+1.conf", "nodebake-a+-1.conf", "nodebake-a+99999999999999999999.conf", "+.conf", "nodebake-a+1-.conf"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, file string) {
		left, done := parseCounter(file)
		if left < -1 || done < 0 || left < 0 && done != 0 {
			t.Fatalf("parseCounter(%q) = %d, %d", file, left, done)
		}
		n, ok := parseEntryName(file)
		if !ok {
			return
		}
		again, ok := parseEntryName(n.file())
		if !ok || again != n {
			t.Fatalf("%q reads as %+v, written back as %q, which reads as %+v", file, n, n.file(), again)
		}
	})
}

// FuzzReadEntries reads any entry file from an ESP folder: never a panic,
// and no field it reads holds a line break.
func FuzzReadEntries(f *testing.F) {
	good := goodManifest()
	slot := good.Slot("a")
	f.Add("nodebake-a+3.conf", contract.EntryConf("node", "2.0.0", "quiet", slot))
	f.Add("nodebake-b.conf", []byte("title x\r\nversion 1\rsort-key nodebake\n\nmachine-id\n"))
	f.Add("auto-windows.conf", []byte("title Windows\n"))
	f.Fuzz(func(t *testing.T, name string, content []byte) {
		if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." || len(name) > 200 {
			return
		}
		esp := ESPDir(t.TempDir())
		p := esp.path(contract.EntriesDir + "/" + name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			return // a name this file system refuses
		}
		entries, err := ReadEntries(esp)
		if err != nil {
			return
		}
		for _, e := range entries {
			if strings.ContainsAny(e.Title+e.Version+e.SortKey+e.MachineID, "\n") {
				t.Fatalf("entry %+v holds a line break", e)
			}
		}
		BootOrder(entries)
	})
}

// FuzzCompareVersions checks that any two versions are ordered one way:
// CompareVersions(a, b) is -CompareVersions(b, a), and 0 against itself.
func FuzzCompareVersions(f *testing.F) {
	for _, p := range [][2]string{{"2.0", "2.beta"}, {"1.0~rc1", "1.0"}, {"", "~"}, {"1-0", "1^0"}, {"007", "7"}} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if ab, ba := CompareVersions(a, b), CompareVersions(b, a); ab != -ba || ab < -1 || ab > 1 {
			t.Fatalf("CompareVersions(%q, %q) = %d, but the reverse is %d", a, b, ab, ba)
		}
		if CompareVersions(a, a) != 0 {
			t.Fatalf("CompareVersions(%q, itself) != 0", a)
		}
	})
}

package tree

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

var (
	old   = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	newer = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// writeBase makes a tar shaped like mmdebstrap's: "./" prefixes, a hard
// link, a setuid binary with a file capability, a device node.
func writeBase(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		if h.ModTime.IsZero() {
			h.ModTime = old
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755}, "")
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "./usr/", Mode: 0o755}, "")
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "./usr/bin/", Mode: 0o755}, "")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "./usr/bin/perl", Mode: 0o755, ModTime: newer}, strings.Repeat("perl", 300))
	add(&tar.Header{Typeflag: tar.TypeLink, Name: "./usr/bin/perl5.36.0", Linkname: "./usr/bin/perl"}, "")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "./usr/bin/ping", Mode: 0o4755,
		PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}}, "ping")
	add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "./bin", Linkname: "usr/bin"}, "")
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "./dev/", Mode: 0o755}, "")
	add(&tar.Header{Typeflag: tar.TypeChar, Name: "./dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}, "")
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "./etc/", Mode: 0o755}, "")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "./etc/hostname", Mode: 0o644}, "buildhost\n")
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "base.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T) *Tree {
	t.Helper()
	tr, err := FromTar(writeBase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestFromTarIndexesContentInPlace(t *testing.T) {
	tr := load(t)
	b, err := tr.ReadFile("usr/bin/perl")
	if err != nil || string(b) != strings.Repeat("perl", 300) {
		t.Fatalf("perl = %q, %v", b, err)
	}
	if b, _ := tr.ReadFile("/etc/hostname"); string(b) != "buildhost\n" {
		t.Fatalf("hostname = %q", b)
	}
	ping, _ := tr.Get("usr/bin/ping")
	if ping.Mode&fs.ModeSetuid == 0 || ping.Mode.Perm() != 0o755 || ping.Xattrs["security.capability"] == "" {
		t.Fatalf("ping lost its setuid bit or capability: %v %v", ping.Mode, ping.Xattrs)
	}
	if l, _ := tr.Get("usr/bin/perl5.36.0"); l.Type != tar.TypeLink || l.Link != "usr/bin/perl" {
		t.Fatalf("hard link = %+v", l)
	}
	if _, err := tr.ReadFile("bin"); err == nil {
		t.Fatal("ReadFile followed a symlink")
	}
}

func TestEditAndWriteTar(t *testing.T) {
	tr := load(t)
	tr.WriteFile("etc/hostname", []byte("minibolt\n"), 0o644, Root)
	tr.WriteFile("etc/nodebake/deep/file", []byte("x"), 0o600, Owner{1001, 1001})
	tr.Symlink("/run/systemd/resolve/stub-resolv.conf", "etc/resolv.conf")
	tr.Remove("dev")

	var out bytes.Buffer
	if err := tr.WriteTar(&out, epoch); err != nil {
		t.Fatal(err)
	}
	r := tar.NewReader(&out)
	var names []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.ModTime.After(epoch) {
			t.Errorf("%s: mtime %v not clamped to %v", h.Name, h.ModTime, epoch)
		}
		if h.Uname != "" || h.Gname != "" || !h.AccessTime.IsZero() {
			t.Errorf("%s: header carries build-host data: %+v", h.Name, h)
		}
		body, _ := io.ReadAll(r)
		switch h.Name {
		case "usr/bin/perl":
			if !h.ModTime.Equal(epoch) || len(body) != 1200 {
				t.Errorf("perl: mtime %v, %d bytes", h.ModTime, len(body))
			}
		case "usr/bin/ping":
			if h.Mode != 0o4755 || h.PAXRecords["SCHILY.xattr.security.capability"] == "" {
				t.Errorf("ping header %+v", h)
			}
		case "etc/hostname":
			if string(body) != "minibolt\n" || !h.ModTime.Equal(epoch) {
				t.Errorf("hostname %q at %v", body, h.ModTime)
			}
		case "etc/nodebake/deep/file":
			if h.Uid != 1001 || h.Mode != 0o600 {
				t.Errorf("file owner/mode %d %o", h.Uid, h.Mode)
			}
		case "etc/":
			if !h.ModTime.Equal(old) {
				t.Errorf("old mtime changed: %v", h.ModTime)
			}
		}
	}
	want := "./ bin etc/ etc/hostname etc/nodebake/ etc/nodebake/deep/ etc/nodebake/deep/file etc/resolv.conf usr/ usr/bin/ usr/bin/perl usr/bin/perl5.36.0 usr/bin/ping"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("entries:\n got %s\nwant %s", got, want)
	}
}

func TestWriteTarIsDeterministic(t *testing.T) {
	sum := func() [32]byte {
		tr := load(t)
		tr.WriteFile("etc/a", []byte("a"), 0o644, Root)
		tr.WriteFile("etc/b", []byte("b"), 0o644, Root)
		h := sha256.New()
		if err := tr.WriteTar(h, epoch); err != nil {
			t.Fatal(err)
		}
		return [32]byte(h.Sum(nil))
	}
	if sum() != sum() {
		t.Fatal("two writes of the same tree differ")
	}
}

func TestDanglingHardLinkRefused(t *testing.T) {
	tr := load(t)
	tr.Remove("usr/bin/perl")
	err := tr.WriteTar(io.Discard, epoch)
	if err == nil || !strings.Contains(err.Error(), "usr/bin/perl5.36.0 is a hard link to usr/bin/perl") {
		t.Fatalf("err = %v", err)
	}
}

func TestRemoveMatchAndGlob(t *testing.T) {
	tr := load(t)
	tr.RemoveMatch(func(p string, e *Entry) bool { return e.Type == tar.TypeChar })
	if _, ok := tr.Get("dev/null"); ok {
		t.Fatal("device node kept")
	}
	if got := tr.Glob("usr/bin/p*"); strings.Join(got, ",") != "usr/bin/perl,usr/bin/perl5.36.0,usr/bin/ping" {
		t.Fatalf("glob = %v", got)
	}
}

func TestFS(t *testing.T) {
	tr := load(t)
	tr.Remove("usr/bin/perl5.36.0") // fstest expects link-free trees
	if err := fstest.TestFS(tr.FS(), "usr/bin/perl", "etc/hostname", "dev/null"); err != nil {
		t.Fatal(err)
	}
}

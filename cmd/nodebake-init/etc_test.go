package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMergeShadow(t *testing.T) {
	image := "root:*:20000:0:99999:7:::\nadmin:*::0:99999:7:::\nnewuser:*::0:99999:7:::\n"
	device := "root:*:20000:0:99999:7:::\nadmin:$y$j9T$chosen:20420:0:11111:7:::\ngone:$y$x:1:0:99999:7:::\n"
	got := string(mergeShadow([]byte(image), []byte(device)))
	want := "root:*:20000:0:99999:7:::\nadmin:$y$j9T$chosen:20420:0:99999:7:::\nnewuser:*::0:99999:7:::\n"
	if got != want {
		t.Fatalf("merged:\n%s\nwant:\n%s", got, want)
	}
}

// Only the device's passwords survive a boot; any other change to /etc is
// dropped, and the kept shadow follows the image's accounts.
func TestPrepareEtcUpper(t *testing.T) {
	upper, image := t.TempDir(), t.TempDir()
	for name, content := range map[string]string{
		"shadow":            "admin:$y$chosen:20420:0:99999:7:::\n",
		"hostname":          "changed-by-hand\n",
		"ssh/sshd_config.d": "",
	} {
		p := filepath.Join(upper, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if content != "" {
			os.WriteFile(p, []byte(content), 0o644)
		}
	}
	os.WriteFile(filepath.Join(image, "shadow"), []byte("root:*:1:0:99999:7:::\nadmin:*::0:99999:7:::\n"), 0o640)
	if err := prepareEtcUpper(upper, image); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(upper)
	if len(left) != 1 || left[0].Name() != "shadow" {
		t.Fatalf("upper keeps %v, want only shadow", left)
	}
	b, _ := os.ReadFile(filepath.Join(upper, "shadow"))
	if string(b) != "root:*:1:0:99999:7:::\nadmin:$y$chosen:20420:0:99999:7:::\n" {
		t.Fatalf("shadow:\n%s", b)
	}
	if st, _ := os.Stat(filepath.Join(upper, "shadow")); st.Mode().Perm() != 0o640 {
		t.Fatalf("shadow mode %v", st.Mode())
	}
	if err := prepareEtcUpper(t.TempDir(), image); err != nil {
		t.Fatalf("empty upper: %v", err)
	}
}

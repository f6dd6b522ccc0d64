package spec

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// errorLine is the form of every line of a spec error.
var errorLine = regexp.MustCompile(`^image\.yaml:[0-9]+: `)

// FuzzParse feeds Parse any bytes: it never panics, and every line of
// every error it returns is "image.yaml:LINE: …".
func FuzzParse(f *testing.F) {
	repo, err := os.ReadFile("../image.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(repo), minimal, "", "apiVersion: [\n", "\t", "a: b\na: c\n", "- 1\n", "&a [*a]\n",
		minimal + "users:\n  - name: admin\n    uid: 1000\n    shell: \"/bin/sh\\nx\"\n",
		minimal + "disk:\n  slot_size: 17179869185GiB\n  esp_size: -1\n  data_size: 1KiB\n",
		minimal + "firewall:\n  allow_tcp: [ssh]\nzram:\n  enabled: maybe\n",
		minimal + "overlays: [., /, ../x]\n",
		minimal + "update:\n  public_key: ed25519:x\n  source: oci://\n",
		minimal + "artifacts:\n  bitcoin-core:\n    signers: [{}]\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b, "image.yaml", dir)
		if err == nil {
			if s == nil {
				t.Fatal("no spec and no error")
			}
			return
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if !errorLine.MatchString(line) {
				t.Fatalf("error line %q is not image.yaml:LINE: …; whole error:\n%v", line, err)
			}
		}
	})
}

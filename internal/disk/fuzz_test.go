package disk

import (
	"strings"
	"testing"

	"github.com/nodebake/nodebake/contract"
)

// FuzzParseEntry reads any boot entry file as `nodebake inspect` does:
// never a panic, and no field holds a line break (each is one line of the
// file), so what inspect prints is what systemd-boot reads.
func FuzzParseEntry(f *testing.F) {
	slot := contract.Slot{Name: "a", RootPartUUID: "0b7c9a52-2c0e-4d7e-9a39-7f6b0c1e2d3a", DataPartUUID: "5f1d7c2e-8a44-4b0b-b6c1-0d2e3f4a5b6c",
		Verity: contract.Verity{RootHash: strings.Repeat("ab", 32), Salt: "00", DataBlocks: 1, HashOffset: 4096}}
	f.Add([]byte(contract.EntryConf("node", "1.0.0", "console=ttyS0", slot)))
	f.Add([]byte("# comment\n\ttitle\tx\r\noptions a\noptions b\ninitrd /a\ninitrd /b\nlinux\n"))
	f.Add([]byte(strings.Repeat("x", 70000) + "\ntitle after a long line\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e := parseEntry("nodebake-a.conf", b)
		fields := append([]string{e.Title, e.Version, e.Linux, e.Options}, e.Initrd...)
		for _, v := range fields {
			if strings.ContainsAny(v, "\n") {
				t.Fatalf("field %q of %+v holds a line break", v, e)
			}
		}
	})
}

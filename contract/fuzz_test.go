package contract

import (
	"strings"
	"testing"
)

// FuzzParse reads any kernel command line: Parse never panics, and a slot
// it accepts survives Format and Parse unchanged, as /init reads what the
// builder and an update write.
func FuzzParse(f *testing.F) {
	good := Slot{Name: "a", RootPartUUID: "0b7c9a52-2c0e-4d7e-9a39-7f6b0c1e2d3a", DataPartUUID: "5f1d7c2e-8a44-4b0b-b6c1-0d2e3f4a5b6c",
		Verity: Verity{RootHash: strings.Repeat("ab", 32), Salt: "00", DataBlocks: 1, HashOffset: 4096}}.Format()
	for _, seed := range []string{
		good, "console=ttyS0 " + good + " quiet", "", "nodebake.slot=", strings.Replace(good, "PARTUUID=0B7C", "PARTUUID=0b7c", 1),
		strings.ToUpper(good), good + " nodebake.slot=b", "nodebake.slot=a=b nodebake.root=PARTUUID=" + strings.Repeat("x", 36),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, cmdline string) {
		s, err := Parse(cmdline)
		if err != nil {
			return
		}
		again, err := Parse(s.Format())
		if err != nil {
			t.Fatalf("Parse(%q) accepted %+v, but not its Format %q: %v", cmdline, s, s.Format(), err)
		}
		if again != s {
			t.Fatalf("round trip of %q: %+v became %+v", cmdline, s, again)
		}
	})
}

package contract

import (
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	in := Slot{
		Name:         "a",
		RootPartUUID: "0b7c9a52-2c0e-4d7e-9a39-7f6b0c1e2d3a",
		DataPartUUID: "5f1d7c2e-8a44-4b0b-b6c1-0d2e3f4a5b6c",
		Verity: Verity{
			RootHash:   strings.Repeat("ab", 32),
			Salt:       strings.Repeat("01", 32),
			DataBlocks: 37000,
			HashOffset: 37000 * 4096,
		},
	}
	cmdline := "console=ttyS0 " + in.Format() + " quiet"
	out, err := Parse(cmdline)
	if err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
}

func TestParseErrors(t *testing.T) {
	good := Slot{Name: "a", RootPartUUID: "0b7c9a52-2c0e-4d7e-9a39-7f6b0c1e2d3a", DataPartUUID: "5f1d7c2e-8a44-4b0b-b6c1-0d2e3f4a5b6c",
		Verity: Verity{RootHash: strings.Repeat("ab", 32), Salt: "00", DataBlocks: 1, HashOffset: 4096}}.Format()
	cases := map[string]struct{ cmdline, want string }{
		"missing":   {"console=ttyS0", "lacks nodebake.slot"},
		"roothash":  {strings.Replace(good, strings.Repeat("ab", 32), "zz", 1), "nodebake.verity.roothash"},
		"partuuid":  {strings.Replace(good, "PARTUUID=0b7c", "LABEL=0b7c", 1), "want PARTUUID="},
		"zeroblock": {strings.Replace(good, "blocks=1", "blocks=0", 1), "positive block count"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(c.cmdline)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse(%q) = %v, want error containing %q", c.cmdline, err, c.want)
			}
		})
	}
}

package bytesize

import "testing"

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{
		0:          "0 B",
		1023:       "1023 B",
		1024:       "1 KiB",
		1536:       "1.5 KiB",
		768 << 20:  "768 MiB",
		3145729:    "3.0 MiB", // rounded, not exact: keeps its decimal
		1932735283: "1.8 GiB",
		3 << 40:    "3 TiB",
		5000 << 40: "5000 TiB",
	} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}

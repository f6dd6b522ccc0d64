// Package bytesize names the binary units sizes are counted in and renders
// byte counts for people. The builder and the device (the initramfs /init
// among them) share it, so it imports nothing beyond the standard library.
package bytesize

import "fmt"

// The binary units. Partitions are aligned to MiB, memory is sized in MiB.
const (
	KiB = 1 << 10
	MiB = 1 << 20
	GiB = 1 << 30
)

// units are the names Format picks from, each 1024 times the one before.
var units = [...]string{"B", "KiB", "MiB", "GiB", "TiB"}

// Format renders n bytes in the largest unit n reaches: "1023 B", "768 MiB",
// "1.8 GiB". A whole number of the unit is exact; anything else has one
// decimal and is rounded, so a figure with a decimal point is never exact.
func Format(n int64) string {
	unit, i := int64(1), 0
	for i < len(units)-1 && n >= unit*1024 {
		unit *= 1024
		i++
	}
	if n%unit == 0 {
		return fmt.Sprintf("%d %s", n/unit, units[i])
	}
	return fmt.Sprintf("%.1f %s", float64(n)/float64(unit), units[i])
}

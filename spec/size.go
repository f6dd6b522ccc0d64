package spec

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/nodebake/nodebake/internal/bytesize"
)

// Size is a byte count written in image.yaml as "512MiB", "2GiB" or bytes.
type Size int64

// UnmarshalYAML accepts an integer byte count or a number with a binary unit.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*s = v
	return nil
}

// ParseSize parses "123", "64KiB", "512MiB" or "2GiB". Only binary units:
// partitions are aligned to MiB.
func ParseSize(v string) (Size, error) {
	v = strings.TrimSpace(v)
	mult, unit := Size(1), ""
	for _, u := range []struct {
		suffix string
		mult   Size
	}{{"KiB", bytesize.KiB}, {"MiB", bytesize.MiB}, {"GiB", bytesize.GiB}} {
		if num, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult, unit = strings.TrimSpace(num), u.mult, u.suffix
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a whole number with KiB, MiB or GiB (e.g. 2GiB)", v)
	}
	// The product must not wrap: 17179869185GiB would read as 1GiB.
	if Size(n) > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: too large for a byte count (at most %d%s)", v, math.MaxInt64/mult, unit)
	}
	return Size(n) * mult, nil
}

// String writes s the way image.yaml does, so that ParseSize reads it back
// and messages about a setting echo its notation: "2GiB", "1536MiB", or bytes
// when s is no whole MiB. bytesize.Format would round ("1.5 GiB").
func (s Size) String() string {
	switch {
	case s != 0 && s%bytesize.GiB == 0:
		return fmt.Sprintf("%dGiB", s/bytesize.GiB)
	case s != 0 && s%bytesize.MiB == 0:
		return fmt.Sprintf("%dMiB", s/bytesize.MiB)
	}
	return fmt.Sprintf("%d", int64(s))
}

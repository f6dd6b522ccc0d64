package spec

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Size is a byte count written in image.yaml as "512MiB", "2GiB" or bytes.
type Size int64

// Units accepted in sizes. Only binary units: partitions are aligned to MiB.
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
)

// UnmarshalYAML accepts an integer byte count or a number with a binary unit.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*s = v
	return nil
}

// ParseSize parses "123", "64KiB", "512MiB" or "2GiB".
func ParseSize(v string) (Size, error) {
	v = strings.TrimSpace(v)
	mult := Size(1)
	for _, u := range []struct {
		suffix string
		mult   Size
	}{{"KiB", KiB}, {"MiB", MiB}, {"GiB", GiB}} {
		if num, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a whole number with KiB, MiB or GiB (e.g. 2GiB)", v)
	}
	return Size(n) * mult, nil
}

func (s Size) String() string {
	switch {
	case s != 0 && s%GiB == 0:
		return fmt.Sprintf("%dGiB", s/GiB)
	case s != 0 && s%MiB == 0:
		return fmt.Sprintf("%dMiB", s/MiB)
	}
	return fmt.Sprintf("%d", int64(s))
}

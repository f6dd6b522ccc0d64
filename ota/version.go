package ota

import (
	"cmp"
	"strings"
)

// CompareVersions orders two version strings the way systemd-boot orders
// boot entries by version, so that "newer" for an update and "boots first"
// for the boot loader are the same thing. It returns -1 if a is older than
// b, 0 if equal, +1 if newer. It follows systemd's strverscmp_improved (the
// UAPI Version Format Specification) step by step, since any difference
// would let an update count as newer yet boot second, or the reverse.
//
// Versions split into numeric and alphabetic segments; numbers compare by
// value (1.10 > 1.9, 007 = 7), letters alphabetically, and a numeric
// segment is newer than an alphabetic one, even a numeric segment of zeros
// (2.0 > 2.beta). A segment may be prefixed:
//
//	"~"  pre-release, older than anything else, even the end: 1.0~rc1 < 1.0
//	"-"  release suffix, older than "^" or ".": 1.0 < 1.0-1 < 1.0^p1 < 1.0.1
//	"^"  patch release, older than ".".
//
// Any other character separates segments and is otherwise ignored. Where
// one string runs out, the longer one is newer, except against "~".
// Write pre-releases with "~" (as Debian does): "1.0-rc1" is newer than 1.0.
func CompareVersions(a, b string) int {
	for {
		a = strings.TrimLeftFunc(a, notVersionChar)
		b = strings.TrimLeftFunc(b, notVersionChar)
		if first(a) == '~' || first(b) == '~' {
			if r := cmpBool(first(a) != '~', first(b) != '~'); r != 0 {
				return r
			}
			a, b = a[1:], b[1:]
		}
		// The end is checked after "~", which alone is older than the end.
		if a == "" || b == "" {
			return cmp.Compare(first(a), first(b))
		}
		for _, sep := range []byte{'-', '^', '.'} {
			if first(a) == sep || first(b) == sep {
				if r := cmpBool(first(a) != sep, first(b) != sep); r != 0 {
					return r
				}
				a, b = a[1:], b[1:]
			}
		}
		var sa, sb string
		if isDigit(first(a)) || isDigit(first(b)) {
			sa, sb = leading(a, isDigit), leading(b, isDigit)
			// A number, even 0, is newer than no number: this comes
			// before leading zeros are dropped.
			if r := cmpBool(sa != "", sb != ""); r != 0 {
				return r
			}
			na, nb := strings.TrimLeft(sa, "0"), strings.TrimLeft(sb, "0")
			// Without leading zeros, the longer number is the larger.
			if r := cmp.Compare(len(na), len(nb)); r != 0 {
				return r
			}
			if r := strings.Compare(na, nb); r != 0 {
				return r
			}
		} else {
			sa, sb = leading(a, isAlpha), leading(b, isAlpha)
			n := min(len(sa), len(sb))
			if r := strings.Compare(sa[:n], sb[:n]); r != 0 {
				return r
			}
			if r := cmp.Compare(len(sa), len(sb)); r != 0 {
				return r
			}
		}
		a, b = a[len(sa):], b[len(sb):]
	}
}

func first(s string) byte {
	if s == "" {
		return 0
	}
	return s[0]
}

func leading(s string, class func(byte) bool) string {
	i := 0
	for i < len(s) && class(s[i]) {
		i++
	}
	return s[:i]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func notVersionChar(r rune) bool {
	return r > 0x7f || !(isDigit(byte(r)) || isAlpha(byte(r)) || strings.ContainsRune("~-^.", r))
}

// cmpBool orders false before true.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

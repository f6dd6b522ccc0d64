// An image's name and version: the builder writes them into os-release,
// the boot entry (title, version), file names and the manifest, and an
// update carries them into a new boot entry on the device. Each of those is
// a line-based format, so both are held to short character sets in which no
// line break, space, quote, '$' or '/' can appear.

package contract

import (
	"fmt"
	"strings"
)

// CheckName accepts an image name: a DNS label (RFC 1123) of lower-case
// letters, digits and '-' that starts with a letter, since the name is also
// the compatibility id and the seed of the disk's GUIDs.
func CheckName(s string) error {
	ok := len(s) >= 1 && len(s) <= 63 && s[0] >= 'a' && s[0] <= 'z' && s[len(s)-1] != '-'
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
	}
	if !ok {
		return fmt.Errorf("%q: want 1–63 lower-case letters, digits and '-', starting with a letter and not ending with '-'", clip(s))
	}
	return nil
}

// versionPunct are the characters besides letters and digits a version may
// hold: the separators of systemd's version order ('.', '~', '^', '-') and
// two it ignores ('+', '_').
const versionPunct = ".~^+-_"

// CheckVersion accepts an image version: 1–64 letters, digits and
// .~^+-_, starting with a letter or digit, which systemd-boot orders
// (CompareVersions in package ota) and every file it lands in takes as is.
func CheckVersion(s string) error {
	ok := len(s) >= 1 && len(s) <= 64 && isAlnum(s[0])
	for i := 0; ok && i < len(s); i++ {
		ok = isAlnum(s[i]) || strings.IndexByte(versionPunct, s[i]) >= 0
	}
	if !ok {
		return fmt.Errorf("%q: want a version such as 1.0.0: 1–64 letters, digits and %s, starting with a letter or digit", clip(s), versionPunct)
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// clip shortens a value quoted in a message: a hostile one may be long.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

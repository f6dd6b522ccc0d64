package build

import (
	"crypto/sha256"

	"github.com/google/uuid"

	"github.com/nodebake/nodebake/spec"
)

// namespace for nodebake's name-based UUIDs (RFC 4122 version 5).
var namespace = uuid.MustParse("6f3b1c2a-9d4e-5b7a-8c1d-2e3f4a5b6c7d")

// PartIDs are the fixed GUIDs of an image's disk and partitions. They come
// from the image name alone, not its version, so every version of an image
// agrees on them — an update written into a slot keeps the slot's PARTUUID.
type PartIDs struct {
	Disk, ESP, RootA, RootB, Data string
	name, version                 string
}

// IDs derives the identifiers of s.
func IDs(s *spec.Spec) PartIDs {
	id := func(role string) string { return uuid.NewSHA1(namespace, []byte(s.Name+"/"+role)).String() }
	return PartIDs{
		Disk: id("disk"), ESP: id("esp"), RootA: id("root-a"), RootB: id("root-b"), Data: id("data"),
		name: s.Name, version: s.Version,
	}
}

// veritySalt is fixed per image version: reproducible builds need it fixed,
// and a salt per version still keeps hash trees of different versions apart.
func (p PartIDs) veritySalt() []byte {
	sum := sha256.Sum256([]byte("nodebake verity salt\x00" + p.name + "\x00" + p.version))
	return sum[:]
}

func (p PartIDs) verityUUID() [16]byte {
	return uuid.NewSHA1(namespace, []byte(p.name+"/"+p.version+"/verity"))
}

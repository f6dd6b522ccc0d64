package build

import (
	"crypto/sha256"

	"github.com/google/uuid"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/spec"
)

// PartIDs are the fixed GUIDs of an image's disk and partitions
// (contract.UUID), and the name and version its verity parameters derive
// from.
type PartIDs struct {
	Disk, ESP, RootA, RootB, Data string
	name, version                 string
}

// IDs derives the identifiers of s.
func IDs(s *spec.Spec) PartIDs {
	id := func(role string) string { return contract.UUID(s.Name, role) }
	return PartIDs{
		Disk: id(contract.Disk), ESP: id(contract.ESP), RootA: id(contract.RootA), RootB: id(contract.RootB), Data: id(contract.Data),
		name: s.Name, version: s.Version,
	}
}

// veritySalt is fixed per image version: reproducible builds need it fixed,
// and a salt per version still keeps hash trees of different versions apart.
func (p PartIDs) veritySalt() []byte {
	sum := sha256.Sum256([]byte("nodebake verity salt\x00" + p.name + "\x00" + p.version))
	return sum[:]
}

// verityUUID is the verity superblock's UUID, fixed by name and version for
// the same reason.
func (p PartIDs) verityUUID() [16]byte {
	return uuid.MustParse(contract.UUID(p.name, p.version+"/verity"))
}

// Package partid derives the fixed GUIDs of an image's disk and partitions
// from the image name alone. The builder writes them into the GPT, and the
// root filesystem names the ESP by its PARTUUID (efi.mount), so both must
// derive them the same way; every version of an image agrees on them, which
// is what lets an update written into a slot keep the slot's PARTUUID.
package partid

import "github.com/google/uuid"

// namespace for nodebake's name-based UUIDs (RFC 4122 version 5).
var namespace = uuid.MustParse("6f3b1c2a-9d4e-5b7a-8c1d-2e3f4a5b6c7d")

// Roles of the GUIDs of an image: the disk and its four partitions.
const (
	Disk  = "disk"
	ESP   = "esp"
	RootA = "root-a"
	RootB = "root-b"
	Data  = "data"
)

// UUID is the GUID of role (Disk, ESP, …) in the image called name.
func UUID(name, role string) string {
	return uuid.NewSHA1(namespace, []byte(name+"/"+role)).String()
}

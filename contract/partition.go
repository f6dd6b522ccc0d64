package contract

import "github.com/google/uuid"

// namespace for nodebake's name-based UUIDs (RFC 4122 version 5).
var namespace = uuid.MustParse("6f3b1c2a-9d4e-5b7a-8c1d-2e3f4a5b6c7d")

// The parts of an image's disk. Each partition's GPT name is its role, and
// every GUID is derived from the image name and the role (UUID).
const (
	Disk  = "disk"
	ESP   = "esp"
	RootA = "root-a"
	RootB = "root-b"
	Data  = "data"
)

// UUID is the GUID of role (Disk, ESP, …) in the image called name. It
// comes from the name alone, not the version, so every version of an image
// agrees on it: an update written into a slot keeps the slot's PARTUUID,
// and the root filesystem can name the ESP by its PARTUUID (efi.mount).
func UUID(name, role string) string {
	return uuid.NewSHA1(namespace, []byte(name+"/"+role)).String()
}

package build

import (
	"testing"

	"github.com/nodebake/nodebake/partid"
	"github.com/nodebake/nodebake/spec"
)

// The root filesystem names the ESP by the PARTUUID partid derives
// (efi.mount); the GPT must carry the same GUIDs.
func TestIDsMatchPartid(t *testing.T) {
	s := &spec.Spec{Name: "minibolt", Version: "1.0.0"}
	ids := IDs(s)
	for role, got := range map[string]string{
		partid.Disk: ids.Disk, partid.ESP: ids.ESP, partid.RootA: ids.RootA, partid.RootB: ids.RootB, partid.Data: ids.Data,
	} {
		if want := partid.UUID(s.Name, role); got != want {
			t.Errorf("%s: the GPT gets %s, partid says %s", role, got, want)
		}
	}
}

package contract

import "testing"

func TestUUID(t *testing.T) {
	// Images already built carry these GUIDs: a change here would give
	// every new build of "minibolt" slots that its devices cannot update.
	if got, want := UUID("minibolt", ESP), "0eb45818-8f96-53e1-a3dc-9cb7c5c814d9"; got != want {
		t.Errorf("UUID(minibolt, esp) = %s, want %s", got, want)
	}
	seen := map[string]string{}
	for _, name := range []string{"minibolt", "node"} {
		for _, role := range []string{Disk, ESP, RootA, RootB, Data} {
			id := UUID(name, role)
			if other, dup := seen[id]; dup {
				t.Errorf("%s/%s and %s share %s", name, role, other, id)
			}
			seen[id] = name + "/" + role
			if UUID(name, role) != id {
				t.Errorf("%s/%s is not stable", name, role)
			}
		}
	}
}

package build

import (
	"strings"
	"testing"

	"github.com/nodebake/nodebake/contract"
)

func TestDataFormats(t *testing.T) {
	for _, c := range []struct {
		fulcrum string
		want    int
	}{{"1.11.1", 1}, {"2.1.1", 2}, {"", 0}} {
		arts := []contract.Artifact{{Kind: contract.BitcoinCore, Version: "30.2"}}
		if c.fulcrum != "" {
			arts = append(arts, contract.Artifact{Kind: contract.Fulcrum, Version: c.fulcrum})
		}
		got, err := dataFormats(arts)
		if err != nil {
			t.Fatal(err)
		}
		if got[contract.FulcrumDB] != c.want || len(got) > 1 {
			t.Errorf("Fulcrum %q: data formats %v, want fulcrum-db %d and nothing for bitcoind", c.fulcrum, got, c.want)
		}
		m := contract.Manifest{Name: "node", Version: "1", Artifacts: arts, DataFormats: got}
		if want := `"fulcrum-db": 2`; c.want == 2 && !strings.Contains(string(m.JSON()), want) {
			t.Errorf("manifest lacks %s:\n%s", want, m.JSON())
		}
		if back, err := contract.ParseManifest(m.JSON()); err != nil || back.Formats()[contract.FulcrumDB] != c.want {
			t.Errorf("read back: %v %v", back, err)
		}
	}
	if _, err := dataFormats([]contract.Artifact{{Kind: contract.Fulcrum, Version: "3.0.0"}}); err == nil || !strings.Contains(err.Error(), "FulcrumDBFormat") {
		t.Errorf("Fulcrum 3.0.0: %v, want an error", err)
	}
	// An image built before data formats were recorded: derived.
	old := contract.Manifest{Artifacts: []contract.Artifact{{Kind: contract.Fulcrum, Version: "1.11.1"}}}
	if old.Formats()[contract.FulcrumDB] != 1 {
		t.Errorf("derived formats: %v", old.Formats())
	}
}

package bundler_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

// TestBundleCarriesDataFormats: the signed manifest carries the image's
// data formats, so a device sees them before it downloads the rest.
func TestBundleCarriesDataFormats(t *testing.T) {
	t.Parallel()
	img := otatest.Image{Name: testName, Version: "3.0.0", DataFormats: map[string]int{contract.FulcrumDB: 2}}.Build(t, t.TempDir())
	dir := filepath.Join(t.TempDir(), "bundle")
	b, err := bundler.Create(context.Background(), img, testPriv, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Manifest.Format != ota.Format || b.Manifest.DataFormats[contract.FulcrumDB] != 2 {
		t.Errorf("manifest: format %d, data formats %v", b.Manifest.Format, b.Manifest.DataFormats)
	}
	if raw := string(otatest.ReadFile(t, filepath.Join(dir, ota.ManifestFile))); !strings.Contains(raw, `"data_formats": {`) || !strings.Contains(raw, `"fulcrum-db": 2`) {
		t.Errorf("manifest.json lacks the data formats:\n%s", raw)
	}
	back, err := ota.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ota.VerifyManifest(back, ota.Policy{Key: testPub, Running: ota.Identity{Name: testName, Version: "1.0.0"}}); err != nil {
		t.Errorf("the bundle read back does not verify: %v", err)
	}
	if back.Manifest.DataFormats[contract.FulcrumDB] != 2 {
		t.Errorf("read back: %v", back.Manifest.DataFormats)
	}
}

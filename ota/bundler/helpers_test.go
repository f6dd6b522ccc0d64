package bundler_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodebake/nodebake/internal/disk"
	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

const testName = "node"

// testKey is one signing key for the whole test binary.
var testPub, testPriv = ota.GenerateKey()

// testSigner signs the channels the tests publish.
var testSigner = bundler.Signer{Key: testPriv}

// buildImage builds a test image (otatest.Image) of version.
func buildImage(t *testing.T, version string) string {
	t.Helper()
	return otatest.Image{Name: testName, Version: version}.Build(t, t.TempDir())
}

// makeBundle builds an image of version and a bundle from it.
func makeBundle(t *testing.T, version string) *ota.Bundle {
	t.Helper()
	b, err := bundler.Create(context.Background(), buildImage(t, version), testPriv, filepath.Join(t.TempDir(), "bundle"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameFiles checks that two bundles hold the same bytes.
func sameFiles(t *testing.T, want, got *ota.Bundle) {
	t.Helper()
	wantRaw, wantSig := want.Signed()
	gotRaw, gotSig := got.Signed()
	if !bytes.Equal(wantRaw, gotRaw) || !bytes.Equal(wantSig, gotSig) {
		t.Error("manifest or signature differs")
	}
	for _, f := range []string{ota.KernelFile, ota.InitrdFile, ota.RootFile} {
		a, _, err := want.OpenFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := got.OpenFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ab, _ := io.ReadAll(a)
		bb, _ := io.ReadAll(b)
		a.Close()
		b.Close()
		if !bytes.Equal(ab, bb) {
			t.Errorf("%s differs", f)
		}
	}
}

// part finds a partition of an image.
func part(t *testing.T, info *disk.Info, name string) disk.PartitionInfo {
	t.Helper()
	for _, p := range info.Partitions {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no partition %s", name)
	return disk.PartitionInfo{}
}

// readRegion reads n bytes of a file at off.
func readRegion(t *testing.T, path string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package bundler_test

import (
	"testing"

	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

const testName = "node"

// testKey is one signing key for the whole test binary.
var testPub, testPriv = ota.GenerateKey()

// testSigner signs the channels the tests publish.
var testSigner = bundler.Signer{Key: testPriv}

// makeBundle builds an image of version and a bundle from it.
func makeBundle(t *testing.T, version string) *ota.Bundle {
	t.Helper()
	return otatest.Bundle(t, testName, version, testPriv)
}

package ota

import "crypto/x509"

// What the external tests (package ota_test, which may import ota/bundler
// and ota/otatest) need of this package's internals.

// TriesNew is how many boots Apply gives a new slot.
const TriesNew = triesNew

// Chunk is how many bytes are copied between progress reports.
const Chunk = chunk

// Sign makes the signature file of manifest bytes.
var Sign = sign

// EntryFile is the file name of slot's entry with a boot counter (left < 0:
// none).
func EntryFile(slot string, left, done int) string {
	return entryName{slot: slot, left: left, done: done}.file()
}

// Verified reports whether Verify accepted b.
func Verified(b *Bundle) bool { return b.verified }

// SourceTrusting is ParseSource for a source whose TLS certificates roots
// sign (a test server's).
func SourceTrusting(text string, insecure bool, roots *x509.CertPool) (Source, error) {
	return newSource(text, insecure, roots)
}

// ManifestOnly makes a bundle of which only the manifest and signature
// were fetched.
var ManifestOnly = manifestOnly

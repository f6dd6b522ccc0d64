package sbom

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/contract"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	"github.com/spdx/tools-golang/spdxlib"
)

var testImage = Image{
	File: "minibolt-0.1.0.img", Name: "minibolt", Version: "0.1.0", SHA256: strings.Repeat("ab", 32), Suite: "bookworm",
	Created: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
	Packages: []contract.Package{
		{Name: "tor", Version: "0.4.9.11-0+deb12u1", Architecture: "amd64"},
		{Name: "libstdc++6", Version: "12.2.0-14+deb12u1", Architecture: "amd64"},
		{Name: "tzdata", Version: "2025b-0+deb12u1", Architecture: "all"},
	},
	Releases: []Release{
		{Kind: contract.BitcoinCore, Version: "30.2", URL: "https://bitcoincore.org/bin/bitcoin-core-30.2/bitcoin-30.2-x86_64-linux-gnu.tar.gz", SHA256: strings.Repeat("cd", 32)},
		{Kind: contract.Fulcrum, Version: "2.1.0", URL: "https://github.com/cculianu/Fulcrum/releases/download/v2.1.0/Fulcrum-2.1.0-x86_64-linux.tar.gz", SHA256: strings.Repeat("ef", 32)},
	},
}

// The document parses back with the SPDX library, passes its validation,
// describes the image and lists every package and release as it came in.
func TestDocumentRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, Document(testImage, "nodebake-test")); err != nil {
		t.Fatal(err)
	}
	doc, err := spdxjson.Read(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatalf("reading the document back: %v\n%s", err, b.String())
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Fatalf("spdxlib.ValidateDocument: %v", err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.DocumentNamespace == "" ||
		doc.CreationInfo == nil || doc.CreationInfo.Created != "2024-01-01T00:00:00Z" || len(doc.CreationInfo.Creators) != 1 {
		t.Errorf("document header: %s %s %q %+v", doc.SPDXVersion, doc.DataLicense, doc.DocumentNamespace, doc.CreationInfo)
	}
	described, err := spdxlib.GetDescribedPackageIDs(doc)
	if err != nil || len(described) != 1 {
		t.Fatalf("described packages: %v, %v; want the image alone", described, err)
	}
	byID := map[common.ElementID]int{}
	for i, p := range doc.Packages {
		byID[p.PackageSPDXIdentifier] = i
		if p.PackageDownloadLocation == "" || p.PackageName == "" {
			t.Errorf("package %s misses a required field: %+v", p.PackageSPDXIdentifier, p)
		}
	}
	img := doc.Packages[byID[described[0]]]
	if img.PackageName != "minibolt" || len(img.PackageChecksums) != 1 || img.PackageChecksums[0].Value != testImage.SHA256 {
		t.Errorf("described package %+v: want the image with its sha256", img)
	}
	contained := map[string]string{} // name → version
	for _, r := range doc.Relationships {
		if r.Relationship == common.TypeRelationshipContains && r.RefA.ElementRefID == described[0] {
			p := doc.Packages[byID[r.RefB.ElementRefID]]
			contained[p.PackageName] = p.PackageVersion
			if strings.HasPrefix(p.PackageName, "bitcoin") || p.PackageName == "fulcrum" {
				if len(p.PackageChecksums) != 1 || p.PackageChecksums[0].Algorithm != common.SHA256 || !strings.HasPrefix(p.PackageDownloadLocation, "https://") {
					t.Errorf("release %s: checksums %+v, download %q", p.PackageName, p.PackageChecksums, p.PackageDownloadLocation)
				}
			}
		}
	}
	for _, p := range testImage.Packages {
		if contained[p.Name] != p.Version {
			t.Errorf("Debian package %s: image contains version %q, want %q", p.Name, contained[p.Name], p.Version)
		}
	}
	for _, r := range testImage.Releases {
		if contained[r.Kind] != r.Version {
			t.Errorf("release %s: image contains version %q, want %q", r.Kind, contained[r.Kind], r.Version)
		}
	}
	if !strings.Contains(b.String(), `"pkg:deb/debian/libstdc++6@12.2.0-14+deb12u1?arch=amd64&distro=debian-bookworm"`) {
		t.Errorf("no purl for libstdc++6 in:\n%s", b.String())
	}
}

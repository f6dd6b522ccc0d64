// Package sbom writes an image's bill of materials as an SPDX 2.3 JSON
// document (github.com/spdx/tools-golang): the disk image as the package
// the document describes, containing every Debian package installed in its
// root (name, version, architecture, as a deb purl) and every verified
// release tarball (Bitcoin Core, Fulcrum) with its download URL and sha256.
package sbom

import (
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/nodebake/nodebake/contract"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"
)

// Image is what the bill of materials is about.
type Image struct {
	File     string // the image's file name, e.g. minibolt-0.1.0.img
	Name     string // image.yaml name
	Version  string
	SHA256   string // of the image file
	Suite    string // Debian suite, e.g. bookworm
	Created  time.Time
	Packages []contract.Package // from the root's dpkg status
	Releases []Release
}

// Release is a verified upstream release tarball.
type Release struct {
	Kind    string // contract.BitcoinCore, contract.Fulcrum
	Version string
	URL     string // where it was downloaded from
	SHA256  string
}

// imageID is the SPDX identifier of the image package.
const imageID = "image"

// Document builds the SPDX document for img.
func Document(img Image, creator string) *spdx.Document {
	doc := &spdx.Document{
		SPDXVersion:    spdx.Version,
		DataLicense:    spdx.DataLicense,
		SPDXIdentifier: "DOCUMENT",
		DocumentName:   img.File,
		// Unique per image content, as SPDX asks, and the same for the same
		// image (reproducible builds give the same document).
		DocumentNamespace: fmt.Sprintf("https://nodebake.invalid/spdx/%s-%s-%s", url.PathEscape(img.Name), url.PathEscape(img.Version), img.SHA256),
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: creator}},
			Created:  img.Created.UTC().Format(time.RFC3339),
		},
	}
	doc.Packages = append(doc.Packages, &spdx.Package{
		PackageName:             img.Name,
		PackageSPDXIdentifier:   imageID,
		PackageVersion:          img.Version,
		PackageFileName:         img.File,
		PackageDownloadLocation: "NOASSERTION",
		PackageChecksums:        []common.Checksum{{Algorithm: common.SHA256, Value: img.SHA256}},
		PackageLicenseConcluded: "NOASSERTION",
		PackageLicenseDeclared:  "NOASSERTION",
		PackageCopyrightText:    "NOASSERTION",
		PrimaryPackagePurpose:   "OPERATING-SYSTEM",
	})
	doc.Relationships = append(doc.Relationships, &spdx.Relationship{
		RefA:         common.MakeDocElementID("", "DOCUMENT"),
		RefB:         common.MakeDocElementID("", imageID),
		Relationship: common.TypeRelationshipDescribe,
	})
	ids := map[string]bool{imageID: true}
	contains := func(p *spdx.Package) {
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA:         common.MakeDocElementID("", imageID),
			RefB:         common.MakeDocElementID("", string(p.PackageSPDXIdentifier)),
			Relationship: common.TypeRelationshipContains,
		})
	}
	for _, r := range img.Releases {
		contains(&spdx.Package{
			PackageName:             r.Kind,
			PackageSPDXIdentifier:   common.ElementID(uniqueID(ids, "release-"+r.Kind)),
			PackageVersion:          r.Version,
			PackageFileName:         r.URL[strings.LastIndex(r.URL, "/")+1:],
			PackageDownloadLocation: r.URL,
			PackageChecksums:        []common.Checksum{{Algorithm: common.SHA256, Value: r.SHA256}},
			PackageLicenseConcluded: "NOASSERTION",
			PackageLicenseDeclared:  "NOASSERTION",
			PackageCopyrightText:    "NOASSERTION",
			PrimaryPackagePurpose:   "ARCHIVE",
			PackageComment:          "release tarball; its signatures and sha256 were verified by nodebake build",
			PackageExternalReferences: []*spdx.PackageExternalReference{{
				Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL,
				Locator: fmt.Sprintf("pkg:generic/%s@%s?download_url=%s&checksum=sha256:%s", r.Kind, url.PathEscape(r.Version), url.QueryEscape(r.URL), r.SHA256),
			}},
		})
	}
	for _, p := range img.Packages {
		contains(&spdx.Package{
			PackageName:             p.Name,
			PackageSPDXIdentifier:   common.ElementID(uniqueID(ids, "deb-"+p.Name+"-"+p.Architecture)),
			PackageVersion:          p.Version,
			PackageSupplier:         &common.Supplier{SupplierType: "Organization", Supplier: "Debian"},
			PackageDownloadLocation: "NOASSERTION",
			PackageLicenseConcluded: "NOASSERTION",
			PackageLicenseDeclared:  "NOASSERTION",
			PackageCopyrightText:    "NOASSERTION",
			PackageExternalReferences: []*spdx.PackageExternalReference{{
				Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL,
				Locator: debPURL(p, img.Suite),
			}},
		})
	}
	return doc
}

// Write writes doc as indented JSON.
func Write(w io.Writer, doc *spdx.Document) error {
	return spdxjson.Write(doc, w, spdxjson.Indent("  "), spdxjson.EscapeHTML(false))
}

// debPURL is the package URL of a Debian package (purl-spec, type deb).
func debPURL(p contract.Package, suite string) string {
	q := url.Values{}
	if p.Architecture != "" {
		q.Set("arch", p.Architecture)
	}
	if suite != "" {
		q.Set("distro", "debian-"+suite)
	}
	s := fmt.Sprintf("pkg:deb/debian/%s@%s", url.PathEscape(p.Name), url.PathEscape(p.Version))
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}

// notID is what SPDX identifiers may not hold: they are letters, digits,
// "." and "-" (Debian names have "+", versions ":" and "~").
var notID = regexp.MustCompile(`[^A-Za-z0-9.-]`)

func uniqueID(seen map[string]bool, s string) string {
	id := notID.ReplaceAllString(s, "-")
	for i := 2; seen[id]; i++ {
		id = fmt.Sprintf("%s-%d", notID.ReplaceAllString(s, "-"), i)
	}
	seen[id] = true
	return id
}

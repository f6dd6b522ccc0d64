// Package artifact fetches the official Bitcoin Core and Fulcrum release
// tarballs and proves them authentic before they go into an image: the
// signers' keys must have the pinned fingerprints, enough of them must have
// signed the release's sums file, and the tarball's sha256 must be listed in
// that file. Downloads are cached by content, but the cache is never trusted:
// every build verifies everything again.
package artifact

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/nodebake/nodebake/contract"
)

// Default versions; Fulcrum 1.11.1 (the MiniBolt guide's) builds as well.
const (
	DefaultBitcoinCoreVersion = "30.2"
	DefaultFulcrumVersion     = "2.1.1"
)

// Config pins one release in image.yaml, under artifacts.<kind>.
type Config struct {
	Version string `yaml:"version"`
	// BaseURL is the folder the release files are downloaded from.
	BaseURL string `yaml:"base_url"`
	// Tarball, Sums and Signature are file names inside BaseURL.
	Tarball   string `yaml:"tarball"`
	Sums      string `yaml:"sums"`
	Signature string `yaml:"signature"`
	// SHA256 optionally pins the tarball's hash on top of the signatures.
	SHA256 string `yaml:"sha256"`
	// MinSignatures distinct pinned keys must have signed Sums.
	MinSignatures int      `yaml:"min_signatures"`
	Signers       []Signer `yaml:"signers"`
}

// Signer is one pinned release-signing key.
type Signer struct {
	Name string `yaml:"name"`
	// Fingerprint is the key's full 40-hex-digit v4 fingerprint; spaces are
	// allowed so it can be pasted from gpg's output.
	Fingerprint string `yaml:"fingerprint"`
	// Key is where the public key comes from: an http(s) URL or a file path
	// relative to image.yaml's folder. Its content is trusted only if its
	// fingerprint equals Fingerprint.
	Key string `yaml:"key"`
}

// FieldError is one problem in a Config; Path is relative to the artifact
// (e.g. "signers[1].fingerprint").
type FieldError struct {
	Path string
	Msg  string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Msg }

const guixKeys = "https://raw.githubusercontent.com/bitcoin-core/guix.sigs/main/builder-keys/"

// bitcoinCoreSigners are builders whose guix attestations are regular; 4 of
// these 5 signed 30.2's SHA256SUMS (willcl-ark did not), so the default
// quorum of 3 leaves room for one more to be missing from a release.
var bitcoinCoreSigners = []Signer{
	{Name: "achow101", Fingerprint: "152812300785C96444D3334D17565732E08E5E41", Key: guixKeys + "achow101.gpg"},
	{Name: "fanquake", Fingerprint: "E777299FC265DD04793070EB944D35F9AC3DB76A", Key: guixKeys + "fanquake.gpg"},
	{Name: "guggero", Fingerprint: "F4FC70F07310028424EFC20A8E4256593F177720", Key: guixKeys + "guggero.gpg"},
	{Name: "hebasto", Fingerprint: "D1DBF2C4B96F2DEBF4C16654410108112E7EA81F", Key: guixKeys + "hebasto.gpg"},
	{Name: "willcl-ark", Fingerprint: "67AA5B46E7AF78053167FE343B8F814A784218F8", Key: guixKeys + "willcl-ark.gpg"},
}

var fulcrumSigners = []Signer{{
	Name:        "Calin Culianu",
	Fingerprint: "D465135F97D0047E18E99DC321810A542031C02C",
	Key:         "https://raw.githubusercontent.com/Electron-Cash/keys-n-hashes/master/pubkeys/calinkey.txt",
}}

// Defaults fills what c leaves empty with the official release of kind
// (BitcoinCore or contract.Fulcrum): version, location, file names, quorum and
// signers. Other kinds are left as they are; Validate then names what is
// missing.
func Defaults(kind string, c *Config) {
	switch kind {
	case contract.BitcoinCore:
		fill(&c.Version, DefaultBitcoinCoreVersion)
		fill(&c.BaseURL, "https://bitcoincore.org/bin/bitcoin-core-"+c.Version+"/")
		fill(&c.Tarball, "bitcoin-"+c.Version+"-x86_64-linux-gnu.tar.gz")
		fill(&c.Sums, "SHA256SUMS")
		fill(&c.Signature, "SHA256SUMS.asc")
		if c.MinSignatures == 0 {
			c.MinSignatures = 3
		}
		if c.Signers == nil {
			c.Signers = append([]Signer(nil), bitcoinCoreSigners...)
		}
	case contract.Fulcrum:
		fill(&c.Version, DefaultFulcrumVersion)
		fill(&c.BaseURL, "https://github.com/cculianu/Fulcrum/releases/download/v"+c.Version+"/")
		fill(&c.Tarball, "Fulcrum-"+c.Version+"-x86_64-linux.tar.gz")
		fill(&c.Sums, "Fulcrum-"+c.Version+"-shasums.txt")
		fill(&c.Signature, "Fulcrum-"+c.Version+"-shasums.txt.asc")
		if c.MinSignatures == 0 {
			c.MinSignatures = 1
		}
		if c.Signers == nil {
			c.Signers = append([]Signer(nil), fulcrumSigners...)
		}
	}
}

func fill(field *string, value string) {
	if *field == "" {
		*field = value
	}
}

var (
	reVersion = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+~-]{0,63}$`)
	reSHA256  = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	reFpr     = regexp.MustCompile(`^[0-9A-F]{40}$`)
)

// Validate returns every problem in c (after Defaults).
func (c Config) Validate() []FieldError {
	var errs []FieldError
	bad := func(path, format string, args ...any) {
		errs = append(errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if !reVersion.MatchString(c.Version) {
		bad("version", "%q: want a release version such as 30.2", c.Version)
	}
	if !isHTTP(c.BaseURL) {
		bad("base_url", "%q: want an http:// or https:// URL of the release folder", c.BaseURL)
	}
	for _, f := range []struct{ path, name string }{
		{"tarball", c.Tarball}, {"sums", c.Sums}, {"signature", c.Signature},
	} {
		if f.name == "" || f.name != path.Base(f.name) || f.name == "." || f.name == ".." {
			bad(f.path, "%q: want a file name inside base_url", f.name)
		}
	}
	if c.SHA256 != "" && !reSHA256.MatchString(c.SHA256) {
		bad("sha256", "%q: want 64 hex digits (sha256sum's output)", c.SHA256)
	}
	switch {
	case len(c.Signers) == 0:
		bad("signers", "no signer pinned: a release is only trusted if pinned keys signed it")
	case c.MinSignatures < 1:
		bad("min_signatures", "%d: want at least 1", c.MinSignatures)
	case c.MinSignatures > len(c.Signers):
		bad("min_signatures", "%d signatures required but only %d signers pinned", c.MinSignatures, len(c.Signers))
	}
	names, fprs := map[string]int{}, map[string]int{}
	for i, s := range c.Signers {
		p := fmt.Sprintf("signers[%d]", i)
		if strings.TrimSpace(s.Name) == "" {
			bad(p+".name", "empty: name the signer (it is shown in errors and the image manifest)")
		} else if j, dup := names[s.Name]; dup {
			bad(p+".name", "%q is also signers[%d]", s.Name, j)
		} else {
			names[s.Name] = i
		}
		fpr := normFingerprint(s.Fingerprint)
		if !reFpr.MatchString(fpr) {
			bad(p+".fingerprint", "%q: want the key's full 40-hex-digit fingerprint (gpg --fingerprint)", s.Fingerprint)
		} else if j, dup := fprs[fpr]; dup {
			// A key listed twice would count twice towards the quorum.
			bad(p+".fingerprint", "same key as signers[%d]", j)
		} else {
			fprs[fpr] = i
		}
		if s.Key == "" {
			bad(p+".key", "empty: want the URL or file path of the signer's public key")
		} else if strings.Contains(s.Key, "://") && !isHTTP(s.Key) {
			bad(p+".key", "%q: want an http:// or https:// URL or a file path", s.Key)
		}
	}
	return errs
}

func isHTTP(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// normFingerprint makes a fingerprint comparable: upper case, no spaces.
func normFingerprint(s string) string {
	return strings.ToUpper(strings.Join(strings.Fields(s), ""))
}

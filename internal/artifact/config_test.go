package artifact

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/contract"
)

func TestDefaults(t *testing.T) {
	var btc, ful, guide Config
	Defaults(contract.BitcoinCore, &btc)
	Defaults(contract.Fulcrum, &ful)
	guide.Version = "1.11.1"
	Defaults(contract.Fulcrum, &guide)
	for _, tc := range []struct {
		got  Config
		want Config
	}{{btc, Config{
		Version: "30.2", BaseURL: "https://bitcoincore.org/bin/bitcoin-core-30.2/",
		Tarball: "bitcoin-30.2-x86_64-linux-gnu.tar.gz", Sums: "SHA256SUMS", Signature: "SHA256SUMS.asc", MinSignatures: 3,
	}}, {ful, Config{
		Version: "2.1.1", BaseURL: "https://github.com/cculianu/Fulcrum/releases/download/v2.1.1/",
		Tarball: "Fulcrum-2.1.1-x86_64-linux.tar.gz", Sums: "Fulcrum-2.1.1-shasums.txt", Signature: "Fulcrum-2.1.1-shasums.txt.asc", MinSignatures: 1,
	}}, {guide, Config{
		Version: "1.11.1", BaseURL: "https://github.com/cculianu/Fulcrum/releases/download/v1.11.1/",
		Tarball: "Fulcrum-1.11.1-x86_64-linux.tar.gz", Sums: "Fulcrum-1.11.1-shasums.txt", Signature: "Fulcrum-1.11.1-shasums.txt.asc", MinSignatures: 1,
	}}} {
		got := tc.got
		got.Signers = nil
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("defaults:\ngot  %+v\nwant %+v", got, tc.want)
		}
		if errs := tc.got.Validate(); len(errs) > 0 {
			t.Errorf("%s: defaults do not validate: %v", tc.got.Tarball, errs)
		}
	}
	if len(btc.Signers) != 5 || btc.Signers[0].Key != "https://raw.githubusercontent.com/bitcoin-core/guix.sigs/main/builder-keys/achow101.gpg" {
		t.Errorf("bitcoin-core signers: %+v", btc.Signers)
	}
	if len(ful.Signers) != 1 || ful.Signers[0].Fingerprint != "D465135F97D0047E18E99DC321810A542031C02C" {
		t.Errorf("fulcrum signers: %+v", ful.Signers)
	}
	// Defaults do not override what image.yaml says, and hand out copies.
	mine := Config{MinSignatures: 2, Signers: []Signer{{Name: "me"}}}
	Defaults(contract.BitcoinCore, &mine)
	btc.Signers[0].Name = "changed"
	if mine.MinSignatures != 2 || len(mine.Signers) != 1 || bitcoinCoreSigners[0].Name != "achow101" {
		t.Errorf("defaults overrode the spec or shared the pin list: %+v", mine)
	}
}

func TestValidate(t *testing.T) {
	var c Config
	Defaults(contract.BitcoinCore, &c)
	c.BaseURL = "ftp://bitcoincore.org/bin/"
	c.Tarball = "../bitcoin.tar.gz"
	c.SHA256 = "6aa7bb"
	c.Signers = []Signer{
		{Name: "a", Fingerprint: "1528 1230 0785 C964 44D3  334D 1756 5732 E08E 5E41", Key: "keys/a.asc"},
		{Name: "a", Fingerprint: "152812300785c96444d3334d17565732e08e5e41", Key: "https://example.org/a.asc"},
		{Name: "", Fingerprint: "17565732E08E5E41", Key: "file:///etc/key"},
	}
	var got []string
	for _, e := range c.Validate() {
		got = append(got, e.Error())
	}
	want := []string{
		`base_url: "ftp://bitcoincore.org/bin/": want an http:// or https:// URL of the release folder`,
		`tarball: "../bitcoin.tar.gz": want a file name inside base_url`,
		`sha256: "6aa7bb": want 64 hex digits (sha256sum's output)`,
		`signers[1].name: "a" is also signers[0]`,
		`signers[1].fingerprint: same key as signers[0]`,
		`signers[2].name: empty: name the signer (it is shown in errors and the image manifest)`,
		`signers[2].fingerprint: "17565732E08E5E41": want the key's full 40-hex-digit fingerprint (gpg --fingerprint)`,
		`signers[2].key: "file:///etc/key": want an http:// or https:// URL or a file path`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	for _, tc := range []struct {
		min     int
		signers []Signer
		want    string
	}{
		{3, nil, "signers: no signer pinned: a release is only trusted if pinned keys signed it"},
		{3, bitcoinCoreSigners[:2], "min_signatures: 3 signatures required but only 2 signers pinned"},
		{-1, bitcoinCoreSigners, "min_signatures: -1: want at least 1"},
	} {
		var c Config
		Defaults(contract.BitcoinCore, &c)
		c.MinSignatures, c.Signers = tc.min, tc.signers
		errs := c.Validate()
		if len(errs) != 1 || errs[0].Error() != tc.want {
			t.Errorf("min %d, %d signers: %v, want %s", tc.min, len(tc.signers), errs, tc.want)
		}
	}
}

package artifact

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// pgpConfig is go-crypto's default policy except that DSA is allowed:
// Fulcrum's release key is DSA-2048. Trust comes from the pinned
// fingerprint, not from the algorithm.
var pgpConfig = &packet.Config{
	RejectPublicKeyAlgorithms: map[packet.PublicKeyAlgorithm]bool{packet.PubKeyAlgoElGamal: true},
}

// pinnedKey is a signer's public key whose fingerprint matched the pin.
type pinnedKey struct {
	signer Signer
	entity *openpgp.Entity
}

// pinKey finds the pinned key in a key file fetched from where. A file
// holding only other keys is refused: someone changed the key at that URL,
// or image.yaml points at the wrong one.
func pinKey(s Signer, data []byte, where string) (pinnedKey, error) {
	keys, err := readKeys(data)
	if err != nil {
		return pinnedKey{}, fmt.Errorf("signer %s: key from %s: %v", s.Name, where, err)
	}
	want := normFingerprint(s.Fingerprint)
	var got []string
	for _, e := range keys {
		fpr := fingerprint(e.PrimaryKey.Fingerprint)
		if fpr == want {
			return pinnedKey{signer: s, entity: e}, nil
		}
		got = append(got, fpr)
	}
	return pinnedKey{}, fmt.Errorf("signer %s: key from %s has fingerprint %s, pinned %s: refusing it (check the key's URL and the pinned fingerprint in image.yaml)",
		s.Name, where, strings.Join(got, ", "), want)
}

// readKeys reads armored or binary public keys; an armored file may hold
// several blocks and text around them.
func readKeys(data []byte) (openpgp.EntityList, error) {
	blocks, bad := armorBlocks(data, "PGP PUBLIC KEY BLOCK")
	if len(blocks) == 0 && len(bad) == 0 {
		return openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	var all openpgp.EntityList
	for _, b := range blocks {
		el, err := openpgp.ReadKeyRing(bytes.NewReader(b))
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		all = append(all, el...)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("no readable public key (%s)", strings.Join(bad, "; "))
	}
	return all, nil
}

// armorBlocks decodes every ASCII-armored block of one type in data (text
// between blocks is ignored) and describes the blocks it could not decode.
func armorBlocks(data []byte, typ string) (bodies [][]byte, bad []string) {
	begin, end := []byte("-----BEGIN "+typ+"-----"), []byte("-----END "+typ+"-----")
	for n := 1; ; n++ {
		i := bytes.Index(data, begin)
		if i < 0 {
			return bodies, bad
		}
		j := bytes.Index(data[i:], end)
		if j < 0 {
			return bodies, append(bad, fmt.Sprintf("block %d: no END line", n))
		}
		block := data[i : i+j+len(end)]
		data = data[i+j+len(end):]
		dec, err := armor.Decode(bytes.NewReader(block))
		if err != nil {
			bad = append(bad, fmt.Sprintf("block %d: %v", n, err))
			continue
		}
		body, err := io.ReadAll(dec.Body) // also checks the armor checksum
		if err != nil {
			bad = append(bad, fmt.Sprintf("block %d: %v", n, err))
			continue
		}
		bodies = append(bodies, body)
	}
}

// tally is what the signatures over a sums file came to.
type tally struct {
	good    map[string]int // pinned signer name → good signatures
	order   []string       // signers with good signatures, in pin order
	unknown []string       // issuers that are not pinned
	bad     []string       // pinned signers' signatures that did not count, with the reason
}

// checkSignatures checks every signature in sig (a detached signature
// file; Bitcoin Core's holds one armored block per builder) over signed,
// made by one of keys. go-crypto's one-shot verification stops at the
// first good signature, so each block is verified on its own and every
// candidate in it is looked at. A signature counts only if it verifies and
// the key (and signing subkey) was valid — not expired, not revoked — when
// it was made; go-crypto's v2 API checks the key at the signature's time.
func checkSignatures(signedName string, signed, sig []byte, keys []pinnedKey) tally {
	t := tally{good: map[string]int{}}
	ring := make(openpgp.EntityList, len(keys))
	names := map[*openpgp.Entity]string{}
	for i, k := range keys {
		ring[i] = k.entity
		names[k.entity] = k.signer.Name
	}
	blocks, bad := armorBlocks(sig, "PGP SIGNATURE")
	switch {
	case len(bytes.TrimSpace(sig)) == 0:
		bad = append(bad, "the signature file is empty")
	case len(blocks) == 0 && len(bad) == 0:
		blocks = [][]byte{sig} // binary .sig
	}
	t.bad = bad
	for n, block := range blocks {
		md, err := openpgp.VerifyDetachedSignatureReader(ring, bytes.NewReader(signed), bytes.NewReader(block), pgpConfig)
		if err == nil {
			_, err = io.Copy(io.Discard, md.UnverifiedBody)
		}
		if err != nil {
			t.bad = append(t.bad, fmt.Sprintf("signature block %d: %v", n+1, err))
			continue
		}
		for _, c := range md.SignatureCandidates {
			name, pinned := names[c.SignedByEntity]
			switch {
			case !pinned:
				t.unknown = append(t.unknown, issuer(c))
			case c.SignedBy != nil && c.SignatureError == nil:
				t.good[name]++
			default:
				t.bad = append(t.bad, name+": "+whyBad(c, signedName))
			}
		}
	}
	for _, k := range keys {
		if t.good[k.signer.Name] > 0 {
			t.order = append(t.order, k.signer.Name)
		}
	}
	return t
}

// quorum fails unless at least min distinct pinned keys signed.
func (t tally) quorum(file, signedName string, min int) error {
	if len(t.order) >= min {
		return nil
	}
	var parts []string
	if len(t.order) > 0 {
		good := make([]string, len(t.order))
		for i, n := range t.order {
			good[i] = n
			if c := t.good[n]; c > 1 {
				good[i] += fmt.Sprintf(" (%d signatures, counted once)", c)
			}
		}
		parts = append(parts, "good: "+strings.Join(good, ", "))
	}
	if len(t.unknown) > 0 {
		parts = append(parts, "unknown: "+strings.Join(t.unknown, ", "))
	}
	if len(t.bad) > 0 {
		parts = append(parts, "bad: "+strings.Join(t.bad, ", "))
	}
	detail := ""
	if len(parts) > 0 {
		detail = " (" + strings.Join(parts, "; ") + ")"
	}
	return fmt.Errorf("%s: %d good signatures over %s from pinned keys, %d required%s",
		file, len(t.order), signedName, min, detail)
}

// issuer names a signature's key for a person who may want to pin it.
func issuer(c *openpgp.SignatureCandidate) string {
	if len(c.IssuerFingerprint) > 0 {
		return "0x" + fingerprint(c.IssuerFingerprint)
	}
	return fmt.Sprintf("0x%016X", c.IssuerKeyId)
}

// whyBad explains why a pinned key's signature does not count.
func whyBad(c *openpgp.SignatureCandidate, signedName string) string {
	sig, e := c.CorrespondingSig, c.SignedByEntity
	if sig == nil || c.SignatureError == nil {
		// Only one-pass signed messages have candidates without a packet.
		return fmt.Sprintf("signature not checked (%v)", c.SignatureError)
	}
	if c.SignedBy == nil {
		// No key of the entity could sign at the signature's time: say which
		// and why.
		at := sig.CreationTime
		if self, err := e.VerifyPrimaryKey(at, pgpConfig); err != nil {
			return keyProblem("key", err, e.PrimaryKey, self, at)
		}
		for _, sub := range e.Subkeys {
			if sub.PublicKey.KeyId == c.IssuerKeyId {
				self, err := sub.Verify(at, pgpConfig)
				if err != nil {
					self, _ = sub.LatestValidBindingSignature(time.Time{}, pgpConfig)
					return keyProblem(fmt.Sprintf("signing subkey 0x%016X", sub.PublicKey.KeyId), err, sub.PublicKey, self, at)
				}
			}
		}
		return c.SignatureError.Error()
	}
	err := c.SignatureError
	switch {
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		return "signature expired"
	case errors.Is(err, pgperrors.ErrSignatureOlderThanKey):
		return "signature is dated before the key was made"
	case errors.Is(err, pgperrors.ErrKeyExpired), errors.Is(err, pgperrors.ErrKeyRevoked):
		return keyProblem("key", err, nil, nil, sig.CreationTime)
	case pgpConfig.RejectMessageHashAlgorithm(sig.Hash):
		return "signature uses the weak hash " + sig.Hash.String()
	}
	var se pgperrors.SignatureError
	if errors.As(err, &se) {
		return "signature does not match " + signedName + " (the file or the signature was altered)"
	}
	return err.Error()
}

// keyProblem words an expired or revoked key for the signature made at.
func keyProblem(what string, err error, pub *packet.PublicKey, self *packet.Signature, at time.Time) string {
	day := func(t time.Time) string { return t.UTC().Format(time.DateOnly) }
	switch {
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return what + " revoked"
	case errors.Is(err, pgperrors.ErrKeyExpired):
		if pub != nil && self != nil && self.KeyLifetimeSecs != nil && *self.KeyLifetimeSecs > 0 {
			exp := pub.CreationTime.Add(time.Duration(*self.KeyLifetimeSecs) * time.Second)
			return fmt.Sprintf("%s expired on %s (signature made %s)", what, day(exp), day(at))
		}
		return fmt.Sprintf("%s expired before the signature was made (%s)", what, day(at))
	}
	return fmt.Sprintf("%s not valid when the signature was made (%s): %v", what, day(at), err)
}

// listedSum finds the sha256 that a sums file (sha256sum's format, "HASH
// NAME" or "HASH *NAME") lists for name.
func listedSum(sums []byte, sumsName, name string) (string, error) {
	var found string
	sc := bufio.NewScanner(bytes.NewReader(sums))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || !reSHA256.MatchString(f[0]) {
			continue
		}
		if path.Base(strings.TrimPrefix(f[1], "*")) != name {
			continue
		}
		sum := strings.ToLower(f[0])
		if found != "" && found != sum {
			return "", fmt.Errorf("%s: %s lists two different hashes for it (%s and %s)", name, sumsName, found, sum)
		}
		found = sum
	}
	if found == "" {
		return "", fmt.Errorf("%s: not listed in %s: check the tarball name and version in image.yaml", name, sumsName)
	}
	return found, nil
}

// checkTarball compares the tarball's actual hash with the one the signed
// sums file lists and with the optional pin.
func checkTarball(c Config, listed, got string) error {
	if got != listed {
		return fmt.Errorf("%s: sha256 mismatch: want %s (listed in the signed %s), got %s: the download is corrupt or was tampered with",
			c.Tarball, listed, c.Sums, got)
	}
	if c.SHA256 != "" && got != strings.ToLower(c.SHA256) {
		return fmt.Errorf("%s: sha256 mismatch: want %s (pinned in image.yaml), got %s (the hash the signed %s lists): update the pin only if you meant to change the release",
			c.Tarball, strings.ToLower(c.SHA256), got, c.Sums)
	}
	return nil
}

func fingerprint(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

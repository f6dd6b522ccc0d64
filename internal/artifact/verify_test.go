package artifact

import (
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/nodebake/nodebake/contract"
)

// realBuilderKeys pins the five default builder keys read from the vectors.
func realBuilderKeys(t *testing.T) []pinnedKey {
	t.Helper()
	var keys []pinnedKey
	for _, s := range bitcoinCoreSigners {
		k, err := pinKey(s, readVector(t, "keys/bitcoin-core-builders/"+s.Name+".gpg"), s.Name+".gpg")
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

func TestRealBitcoinCoreQuorum(t *testing.T) {
	sums := readVector(t, "bitcoin-core-30.2/SHA256SUMS")
	asc := readVector(t, "bitcoin-core-30.2/SHA256SUMS.asc")
	tally := checkSignatures("SHA256SUMS", sums, asc, realBuilderKeys(t))
	t.Logf("good: %v; unknown: %d; bad: %v", tally.order, len(tally.unknown), tally.bad)

	// Measured: gpg agrees — 4 of the 5 pinned builders signed 30.2, the
	// other 11 signatures are from builders not pinned by default.
	if got := strings.Join(tally.order, " "); got != "achow101 fanquake guggero hebasto" {
		t.Errorf("good signers = %q, want achow101 fanquake guggero hebasto", got)
	}
	if len(tally.unknown) != 11 || len(tally.bad) != 0 {
		t.Errorf("unknown = %d, bad = %v; want 11 unknown, none bad", len(tally.unknown), tally.bad)
	}
	if err := tally.quorum("bitcoin-30.2-x86_64-linux-gnu.tar.gz", "SHA256SUMS", 3); err != nil {
		t.Errorf("default quorum of 3: %v", err)
	}
	err := tally.quorum("bitcoin-30.2-x86_64-linux-gnu.tar.gz", "SHA256SUMS", 5)
	want := "bitcoin-30.2-x86_64-linux-gnu.tar.gz: 4 good signatures over SHA256SUMS from pinned keys, 5 required (good: achow101, fanquake, guggero, hebasto; unknown: 0x"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("quorum of 5: got %v, want %q…", err, want)
	}

	// The signatures are over these exact bytes: one changed digit and none
	// of them counts.
	tampered := []byte(strings.Replace(string(sums), "6aa7bb", "6aa7bc", 1))
	bad := checkSignatures("SHA256SUMS", tampered, asc, realBuilderKeys(t))
	if len(bad.order) != 0 || len(bad.bad) != 4 {
		t.Errorf("tampered SHA256SUMS: good %v, bad %v; want none good, 4 bad", bad.order, bad.bad)
	}
	for _, b := range bad.bad {
		if !strings.Contains(b, "signature does not match SHA256SUMS") {
			t.Errorf("tampered SHA256SUMS: %q", b)
		}
	}
}

func TestRealSumsListTarball(t *testing.T) {
	sums := readVector(t, "bitcoin-core-30.2/SHA256SUMS")
	var c Config
	Defaults(contract.BitcoinCore, &c)
	got, err := listedSum(sums, c.Sums, c.Tarball)
	if err != nil {
		t.Fatal(err)
	}
	if want := "6aa7bb4feb699c4c6262dd23e4004191f6df7f373b5d5978b5bcdd4bb72f75d8"; got != want {
		t.Errorf("%s: %s, want %s", c.Tarball, got, want)
	}
	_, err = listedSum(sums, "SHA256SUMS", "bitcoin-30.2-x86_64-linux-musl.tar.gz")
	if err == nil || err.Error() != "bitcoin-30.2-x86_64-linux-musl.tar.gz: not listed in SHA256SUMS: check the tarball name and version in image.yaml" {
		t.Errorf("unlisted tarball: %v", err)
	}
}

func TestRealFulcrumKey(t *testing.T) {
	e := realFulcrumKey(t)
	if e.PrimaryKey.PubKeyAlgo != packet.PubKeyAlgoDSA {
		t.Errorf("algorithm %v, want DSA", e.PrimaryKey.PubKeyAlgo)
	}
	// Calin's primary key signs the shasums file: it must be usable for
	// signatures under our policy, which go-crypto's default (no DSA) is not.
	if _, ok := e.SigningKeyById(time.Now(), e.PrimaryKey.KeyId, pgpConfig); !ok {
		t.Error("Fulcrum's key cannot verify signatures under pgpConfig")
	}
	if _, ok := e.SigningKeyById(time.Now(), e.PrimaryKey.KeyId, nil); ok {
		t.Error("go-crypto's default policy accepts DSA now: pgpConfig's exception may be dropped")
	}
}

func TestDSASignatureCounts(t *testing.T) {
	now := time.Now()
	k := newDSAKey(t, "dsa", now.Add(-time.Hour))
	pinned, err := pinKey(Signer{Name: "dsa", Fingerprint: k.fingerprint()}, k.public(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	sums := []byte("0000000000000000000000000000000000000000000000000000000000000000  Fulcrum-2.1.1-x86_64-linux.tar.gz\n")
	tally := checkSignatures("shasums", sums, k.sign(t, now, sums), []pinnedKey{pinned})
	if len(tally.order) != 1 || len(tally.bad) != 0 {
		t.Errorf("DSA signature: good %v, bad %v", tally.order, tally.bad)
	}
	tally = checkSignatures("shasums", append(sums, '\n'), k.sign(t, now, sums), []pinnedKey{pinned})
	if len(tally.order) != 0 || len(tally.bad) != 1 || !strings.Contains(tally.bad[0], "signature does not match shasums") {
		t.Errorf("DSA signature over other bytes: good %v, bad %v", tally.order, tally.bad)
	}
}

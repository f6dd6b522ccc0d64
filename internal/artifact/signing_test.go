package artifact

import (
	"bytes"
	"crypto"
	"crypto/dsa"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// testKey is an OpenPGP key made for a test, standing in for a release
// signer.
type testKey struct {
	name   string
	entity *openpgp.Entity
	signer *packet.PrivateKey // the primary key or a signing subkey
}

// newKey makes an Ed25519 key created at created; lifetime 0 never expires.
func newKey(t *testing.T, name string, created time.Time, lifetime time.Duration) *testKey {
	t.Helper()
	cfg := &packet.Config{
		Algorithm:       packet.PubKeyAlgoEdDSA,
		Time:            func() time.Time { return created },
		KeyLifetimeSecs: uint32(lifetime / time.Second),
	}
	e, err := openpgp.NewEntity(name, "test signer", name+"@example.org", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{name: name, entity: e, signer: e.PrivateKey}
}

// newDSAKey makes a DSA key in the group of Fulcrum's real key (DSA-2048,
// 256-bit q): generating DSA parameters takes seconds, a key in known
// parameters is instant.
func newDSAKey(t *testing.T, name string, created time.Time) *testKey {
	t.Helper()
	real := realFulcrumKey(t)
	params := real.PrimaryKey.PublicKey.(*dsa.PublicKey).Parameters
	priv := &dsa.PrivateKey{PublicKey: dsa.PublicKey{Parameters: params}}
	if err := dsa.GenerateKey(priv, rand.Reader); err != nil {
		t.Fatal(err)
	}
	pk := packet.NewDSAPrivateKey(created, priv)
	e := &openpgp.Entity{PrimaryKey: &pk.PublicKey, PrivateKey: pk, Identities: map[string]*openpgp.Identity{}}
	cfg := &packet.Config{Time: func() time.Time { return created }, DefaultHash: crypto.SHA256}
	if err := e.AddUserId(name, "test signer", name+"@example.org", cfg); err != nil {
		t.Fatal(err)
	}
	return &testKey{name: name, entity: e, signer: pk}
}

// addSigningSubkey gives k a signing subkey that expires after lifetime
// and makes it the key k signs with.
func (k *testKey) addSigningSubkey(t *testing.T, created time.Time, lifetime time.Duration) {
	t.Helper()
	cfg := &packet.Config{
		Algorithm:       packet.PubKeyAlgoEdDSA,
		Time:            func() time.Time { return created },
		KeyLifetimeSecs: uint32(lifetime / time.Second),
	}
	if err := k.entity.AddSigningSubkey(cfg); err != nil {
		t.Fatal(err)
	}
	k.signer = k.entity.Subkeys[len(k.entity.Subkeys)-1].PrivateKey
}

func (k *testKey) revoke(t *testing.T, at time.Time) {
	t.Helper()
	cfg := &packet.Config{Time: func() time.Time { return at }}
	if err := k.entity.Revoke(packet.KeyCompromised, "test", cfg); err != nil {
		t.Fatal(err)
	}
}

func (k *testKey) fingerprint() string { return fingerprint(k.entity.PrimaryKey.Fingerprint) }

// public is the armored public key, as a key server or URL serves it.
func (k *testKey) public(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := armor.Encode(&b, "PGP PUBLIC KEY BLOCK", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.entity.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return b.Bytes()
}

// sign makes an armored detached signature over data dated at. It does not
// ask whether the key may sign then — as someone holding an expired or
// revoked key could do.
func (k *testKey) sign(t *testing.T, at time.Time, data []byte) []byte {
	t.Helper()
	sig := &packet.Signature{
		Version:      4,
		SigType:      packet.SigTypeBinary,
		PubKeyAlgo:   k.signer.PubKeyAlgo,
		Hash:         crypto.SHA256,
		CreationTime: at,
		IssuerKeyId:  &k.signer.KeyId,
	}
	h := sha256.New()
	h.Write(data)
	if err := sig.Sign(h, k.signer, &packet.Config{Time: func() time.Time { return at }}); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w, err := armor.Encode(&b, "PGP SIGNATURE", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sig.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	b.WriteByte('\n')
	return b.Bytes()
}

// vectors is ../shared/vectors, found by walking up from the package
// folder (here /work/shared; in CI a clone has shared/ beside it).
func vectors(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		v := filepath.Join(dir, "shared", "vectors")
		if st, err := os.Stat(v); err == nil && st.IsDir() {
			return v
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("no shared/vectors in any folder above the package: check out the shared folder beside the repository")
		}
		dir = up
	}
}

func readVector(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectors(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func realFulcrumKey(t *testing.T) *openpgp.Entity {
	t.Helper()
	k, err := pinKey(fulcrumSigners[0], readVector(t, "keys/fulcrum-calin-culianu.asc"), "vectors")
	if err != nil {
		t.Fatal(err)
	}
	return k.entity
}

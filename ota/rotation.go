package ota

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/nodebake/nodebake/internal/atomicfile"
)

// rotationType marks a key rotation statement (see channelType).
const rotationType = "nodebake.key-rotation.v1"

// Rotation is a key rotation: a statement, signed by the old update key,
// that the new key replaces it. A device that trusts the old key and
// meets the rotation in a channel trusts the new key from then on, and
// only it (see Device.AcceptChannel).
type Rotation struct {
	Statement []byte `json:"statement"` // rotationStatement, as signed (base64 in JSON)
	Signature string `json:"signature"` // its signature file's line, by the old key
}

type rotationStatement struct {
	Type   string    `json:"type"`
	OldKey string    `json:"old_key"` // text form (FormatPublicKey)
	NewKey string    `json:"new_key"`
	Issued time.Time `json:"issued"`
}

// RotateKey signs, with the old key, that newKey replaces it.
func RotateKey(old ed25519.PrivateKey, newKey ed25519.PublicKey, now time.Time) Rotation {
	st, err := json.Marshal(rotationStatement{
		Type:   rotationType,
		OldKey: FormatPublicKey(old.Public().(ed25519.PublicKey)),
		NewKey: FormatPublicKey(newKey),
		Issued: now.UTC().Truncate(time.Second),
	})
	if err != nil {
		panic("ota: encoding a rotation statement: " + err.Error())
	}
	return Rotation{Statement: st, Signature: string(bytes.TrimSpace(sign(st, old)))}
}

// keys decodes the statement, unverified.
func (r Rotation) keys() (old, new ed25519.PublicKey, err error) {
	var st rotationStatement
	d := json.NewDecoder(bytes.NewReader(r.Statement))
	d.DisallowUnknownFields()
	if err := d.Decode(&st); err != nil {
		return nil, nil, fmt.Errorf("key rotation: %w", err)
	}
	if st.Type != rotationType {
		return nil, nil, fmt.Errorf("key rotation: type %q, want %q", clip(st.Type), rotationType)
	}
	if old, err = ParsePublicKey(st.OldKey); err != nil {
		return nil, nil, fmt.Errorf("key rotation: %w", err)
	}
	if new, err = ParsePublicKey(st.NewKey); err != nil {
		return nil, nil, fmt.Errorf("key rotation: %w", err)
	}
	return old, new, nil
}

// Describe names the two keys of a rotation, for messages.
func (r Rotation) Describe() string {
	old, new, err := r.keys()
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("key %s → key %s", KeyID(old), KeyID(new))
}

// followRotations starts from the trusted key and follows every rotation
// from it, then from the key it leads to, and so on. A rotation from the
// current key must be signed by it. Each key is left at most once, so the
// first rotation from a key that a device accepted keeps counting: one
// that a thief of the old key signs later leads nowhere.
func followRotations(key ed25519.PublicKey, rs []Rotation) (ed25519.PublicKey, []Rotation, error) {
	var used []Rotation
	left := map[string]bool{}
	for again := true; again; {
		again = false
		for _, r := range rs {
			old, new, err := r.keys()
			if err != nil {
				return nil, nil, err
			}
			if !old.Equal(key) || left[KeyID(key)] {
				continue
			}
			if err := checkSigned("key rotation "+r.Describe(), "the key rotation", RotationsFile, r.Statement, []byte(r.Signature), key); err != nil {
				return nil, nil, err
			}
			left[KeyID(key)] = true
			key, used, again = new, append(used, r), true
		}
	}
	return key, used, nil
}

// SaveRotations writes rotations to a file (a JSON list).
func SaveRotations(path string, rs []Rotation) error {
	b, err := json.MarshalIndent(rs, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}

// LoadRotations reads a file written by SaveRotations; a missing file
// holds none.
func LoadRotations(path string) ([]Rotation, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rs, err := parseRotations(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rs, nil
}

func parseRotations(b []byte) ([]Rotation, error) {
	var rs []Rotation
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&rs); err != nil {
		return nil, fmt.Errorf("%s: %w", RotationsFile, err)
	}
	return rs, nil
}

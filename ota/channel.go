package ota

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The files of a channel, beside a bundle's in a published folder or as
// layers of the OCI artifact. Like the bundle's, their names are fixed.
const (
	ChannelFile          = "channel.json"   // the signed channel statement
	ChannelSignatureFile = "channel.sig"    // its detached signature
	RotationsFile        = "rotations.json" // key rotations (optional)
)

// channelType marks a channel statement. A statement, a manifest and a
// rotation are all signed with the update key; each decodes strictly and
// names its kind, so that none can pass for another.
const channelType = "nodebake.channel.v1"

// DefaultExpiry is how long a channel statement stays valid unless the
// publisher says otherwise: a device that cannot get a fresh one for
// longer than that stops updating from the channel.
const DefaultExpiry = 7 * 24 * time.Hour

// Channel is a channel statement: which bundle is the current one on a
// channel, signed with the update key, with a counter that grows with
// every statement and an expiry. It is TUF's timestamp role for a channel
// that holds one bundle: a mirror can neither keep a device on an old
// statement past its expiry, nor go back to an older statement, nor offer
// any bundle but the one it names.
type Channel struct {
	Type    string    `json:"type"`
	Counter uint64    `json:"counter"`
	Issued  time.Time `json:"issued"`
	Expires time.Time `json:"expires"`
	// Name and Version are the bundle's, for messages; ManifestSHA256
	// (the sha256 of its manifest.json) is what binds it.
	Name           string `json:"name"`
	Version        string `json:"version"`
	ManifestSHA256 string `json:"manifest_sha256"`
}

// NewChannel is a statement that names the bundle b; the signer sets its
// counter and times.
func NewChannel(b *Bundle) Channel {
	sum := sha256.Sum256(b.raw)
	return Channel{Type: channelType, Name: b.Manifest.Name, Version: b.Manifest.Version, ManifestSHA256: hex.EncodeToString(sum[:])}
}

// SealChannel checks and encodes a statement and signs it: it returns the
// channel file and its signature file.
func SealChannel(c Channel, priv ed25519.PrivateKey) (raw, sig []byte, err error) {
	if err := c.validate(); err != nil {
		return nil, nil, err
	}
	if raw, err = json.MarshalIndent(c, "", "  "); err != nil {
		return nil, nil, err
	}
	raw = append(raw, '\n')
	return raw, sign(raw, priv), nil
}

// ParseChannel decodes a channel file without checking its signature:
// for the publisher, who reads its own channel back to count on from it.
func ParseChannel(raw []byte) (Channel, error) {
	var c Channel
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return Channel{}, fmt.Errorf("%s: %w", ChannelFile, err)
	}
	return c, c.validate()
}

func (c Channel) validate() error {
	if c.Type != channelType {
		return fmt.Errorf("%s: type %q, want %q", ChannelFile, clip(c.Type), channelType)
	}
	if c.Counter == 0 {
		return fmt.Errorf("%s: counter 0: counters start at 1", ChannelFile)
	}
	if !c.Expires.After(c.Issued) {
		return fmt.Errorf("%s: expires %s, not after it was issued (%s)", ChannelFile, c.Expires.Format(time.RFC3339), c.Issued.Format(time.RFC3339))
	}
	if b, err := hex.DecodeString(c.ManifestSHA256); err != nil || len(b) != sha256.Size || c.ManifestSHA256 != strings.ToLower(c.ManifestSHA256) {
		return fmt.Errorf("%s: manifest_sha256 %q: want 64 lower-case hex digits", ChannelFile, clip(c.ManifestSHA256))
	}
	return nil
}

// VerifyChannelSignature checks that key signed a channel file and
// decodes it: for the publisher, who refreshes only a statement of its
// own.
func VerifyChannelSignature(raw, sig []byte, key ed25519.PublicKey) (Channel, error) {
	if err := checkSigned("the channel statement", ChannelFile, ChannelSignatureFile, raw, sig, key); err != nil {
		return Channel{}, err
	}
	return ParseChannel(raw)
}

// ChannelState is what a device remembers of the newest statement it
// accepted from a source.
type ChannelState struct {
	KeyID           string    `json:"key_id"` // the key that signed it: a new key starts a new count
	Counter         uint64    `json:"counter"`
	StatementSHA256 string    `json:"statement_sha256"`
	Version         string    `json:"version"`
	Issued          time.Time `json:"issued"`
	Expires         time.Time `json:"expires"`
	Checked         time.Time `json:"checked"` // when the device accepted it
}

// Offer is what a source offers, as fetched: the channel statement, the
// key rotations published with it, and the manifest of the bundle.
// Nothing in it is trusted before VerifyChannel and VerifyManifest.
type Offer struct {
	Bundle     *Bundle // the manifest and signature only
	channel    []byte
	channelSig []byte
	rotations  []Rotation
}

// ChannelCheck is a channel statement that VerifyChannel accepted.
type ChannelCheck struct {
	Channel Channel
	// Key signed the statement, and must sign the bundle: the trusted
	// key, or where the offer's rotations led from it.
	Key ed25519.PublicKey
	// Rotations are the offer's rotations that led there, to remember.
	Rotations []Rotation
	// State is what to remember of the statement.
	State ChannelState
}

// VerifyChannel checks an offer's channel statement for a device that
// trusts key and last accepted seen from this source (nil: nothing yet),
// at the time now. In order: the rotations that lead from key to another
// key; the statement's signature by the key they lead to; its expiry; that
// its counter is not below the one seen (unless a new key signed it); and
// that the offered manifest is the one it names. Only then may the
// manifest be looked at (VerifyManifest, with the returned key).
func VerifyChannel(o *Offer, key ed25519.PublicKey, seen *ChannelState, now time.Time) (*ChannelCheck, error) {
	if len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("no update key: the device image names none, so it cannot accept bundles")
	}
	signer, used, err := followRotations(key, o.rotations)
	if err != nil {
		return nil, err
	}
	if err := checkSigned("update channel statement", ChannelFile, ChannelSignatureFile, o.channel, o.channelSig, signer); err != nil {
		if len(used) == 0 {
			err = fmt.Errorf("%w (and no key rotation published with it starts from the trusted key)", err)
		}
		return nil, err
	}
	c, err := ParseChannel(o.channel)
	if err != nil {
		return nil, err
	}
	if now.After(c.Expires) {
		return nil, fmt.Errorf("update channel metadata expired %s ago (%s): the publisher must refresh it (nodebake publish --refresh)",
			Ago(now.Sub(c.Expires)), c.Expires.Format(time.RFC3339))
	}
	sum := sha256.Sum256(o.channel)
	id := KeyID(signer)
	if seen != nil && seen.KeyID == id {
		switch {
		case c.Counter < seen.Counter:
			return nil, fmt.Errorf("update channel metadata counter %d is lower than %d, which this device already accepted from this source: refusing metadata rolled back to an older statement (a mirror replaying it?)", c.Counter, seen.Counter)
		case c.Counter == seen.Counter && hex.EncodeToString(sum[:]) != seen.StatementSHA256:
			return nil, fmt.Errorf("update channel metadata counter %d names a different statement than the one this device accepted with that counter: refusing (the publisher must count up with every statement)", c.Counter)
		}
	}
	if got := sha256.Sum256(o.Bundle.raw); hex.EncodeToString(got[:]) != c.ManifestSHA256 {
		return nil, fmt.Errorf("the source offers a bundle that is not the channel's current one (%s %s, manifest sha256 %s…): refusing it", c.Name, c.Version, c.ManifestSHA256[:12])
	}
	return &ChannelCheck{
		Channel:   c,
		Key:       signer,
		Rotations: used,
		State: ChannelState{KeyID: id, Counter: c.Counter, StatementSHA256: hex.EncodeToString(sum[:]), Version: c.Version,
			Issued: c.Issued, Expires: c.Expires, Checked: now.UTC().Truncate(time.Second)},
	}, nil
}

// Ago renders a duration for people: "3 days", "5 hours", "12 minutes".
func Ago(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d >= 48*time.Hour:
		return plural(int64(d/(24*time.Hour)), "day")
	case d >= 2*time.Hour:
		return plural(int64(d/time.Hour), "hour")
	case d >= time.Minute:
		return plural(int64(d/time.Minute), "minute")
	}
	return plural(int64(d/time.Second), "second")
}

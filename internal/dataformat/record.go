// Package dataformat keeps the device's record of the format of the data on
// /data (contract.DataFormatsPath) and decides, as pure functions, what an
// image may do with that data: at boot (Boot), before an update is
// installed (Install) and before a rollback (Rollback).
//
// A format only goes up by an upgrade that the newer program makes and the
// older one cannot read (Fulcrum 2.x's --db-upgrade). So the record is
// raised before the upgrading program first starts, and an upgrade stays
// "under way" until the slot that made it is blessed: until then, when
// /data has room, a copy of the data in the old format is kept, and the
// older image puts it back when it boots again (a rollback or an automatic
// fallback). Without a copy the older image does not start the program.
package dataformat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/nodebake/nodebake/internal/atomicfile"
)

// Record is what the device knows about the data on /data. Only root
// writes it (/data/.nodebake is root's).
type Record struct {
	// Formats is, for each kind of data, the format the data is in, or
	// may be in: an upgrade raises it before the upgrading program
	// starts, so that no older program is started on it meanwhile.
	Formats map[string]int `json:"formats"`
	// Upgrades are the upgrades under way, by kind of data: made by a
	// slot that has not been blessed yet.
	Upgrades map[string]Upgrade `json:"upgrades,omitempty"`
	// Slots is what the image in each slot writes, as its own first boot
	// or the update that installed it last recorded.
	Slots map[string]Slot `json:"slots,omitempty"`
	// Consents are the upgrades the admin accepted without a kept copy
	// (nodectl update apply -accept-data-upgrade).
	Consents []Consent `json:"consents,omitempty"`
}

// Upgrade is an upgrade under way.
type Upgrade struct {
	From    int    `json:"from"`
	To      int    `json:"to"`
	Version string `json:"version"` // the image version that upgrades
	// Kept is the device path of a copy of the data in format From, kept
	// until the upgrade is settled; "" when there is none.
	Kept string `json:"kept,omitempty"`
}

// Slot is what the image in a root slot writes.
type Slot struct {
	Version string         `json:"version"`
	Formats map[string]int `json:"formats"`
}

// Consent accepts that the image Version upgrades Kind to format To
// without keeping a copy.
type Consent struct {
	Version string `json:"version"`
	Kind    string `json:"kind"`
	To      int    `json:"to"`
}

// Consented reports whether the admin accepted that image version
// upgrades kind to format to without a copy.
func (r *Record) Consented(version, kind string, to int) bool {
	return slices.Contains(r.Consents, Consent{Version: version, Kind: kind, To: to})
}

// Load reads the record at path; a missing file is an empty record.
func Load(path string) (*Record, error) {
	r := &Record{}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, r); err != nil {
		// Guessing here could start a program on data it cannot read.
		return nil, fmt.Errorf("%s: %w: the formats of the data on /data are unknown; repair the file or, if the data is to be indexed anew, move the service's data folder and this file away", path, err)
	}
	return r, nil
}

// Save writes the record to path durably, unless it holds it already: a
// power cut leaves the old record or the new one.
func (r *Record) Save(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o644)
}

// SetFormat records the format of kind.
func (r *Record) SetFormat(kind string, format int) {
	if r.Formats == nil {
		r.Formats = map[string]int{}
	}
	r.Formats[kind] = format
}

// SetSlot records what the image in slot writes; nil formats (not known)
// forget the slot.
func (r *Record) SetSlot(slot, version string, formats map[string]int) {
	if formats == nil {
		delete(r.Slots, slot)
		return
	}
	if r.Slots == nil {
		r.Slots = map[string]Slot{}
	}
	r.Slots[slot] = Slot{Version: version, Formats: formats}
}

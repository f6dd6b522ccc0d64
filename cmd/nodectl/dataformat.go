package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/dataformat"
	"github.com/nodebake/nodebake/ota"
)

// checkData says, before anything is downloaded or written, what
// installing the bundle m means for the data on /data, and returns an
// error when it must not be installed (as it stands: consent is
// -accept-data-upgrade). It returns the record with the consent noted.
func checkData(s *ota.Device, m *ota.Manifest, consent bool, stdout io.Writer) (*dataformat.Record, error) {
	rec, err := dataformat.Load(s.Path(contract.DataFormatsPath))
	if err != nil {
		return nil, err
	}
	var refusals []error
	for _, k := range dataformat.Kinds {
		in := dataformat.Install{Kind: k, Version: m.Version, Known: m.Format >= 2, Image: m.DataFormats[k.Name], Data: rec.Formats[k.Name], Consent: consent}
		if in.Known && in.Data > 0 && in.Image > in.Data {
			u, err := dataformat.Measure(s.Path(k.Dir))
			if err != nil {
				return nil, err
			}
			if u.Empty {
				continue
			}
			if in.Room, _, err = dataformat.Room(s.Path(k.Dir), u); err != nil {
				return nil, err
			}
		}
		v := dataformat.Check(in)
		if !v.OK {
			refusals = append(refusals, errors.New(v.Message))
			continue
		}
		if v.Message != "" {
			fmt.Fprintln(stdout, v.Message)
		}
		if v.Consent {
			rec.Consents = append(rec.Consents, dataformat.Consent{Version: m.Version, Kind: k.Name, To: in.Image})
		}
	}
	return rec, errors.Join(refusals...)
}

// recordSlot notes, before the slot is written, what the image going into
// it writes, and the consents given: a rollback to it later, and its first
// boot, read them.
func recordSlot(s *ota.Device, rec *dataformat.Record, slot string, m *ota.Manifest) error {
	formats := m.DataFormats
	if m.Format >= 2 && formats == nil {
		formats = map[string]int{}
	}
	rec.SetSlot(slot, m.Version, formats)
	return rec.Save(s.Path(contract.DataFormatsPath))
}

// checkRollback refuses a rollback to the other slot when its programs
// could not read the data on /data, and says why.
func checkRollback(s *ota.Device) error {
	rec, err := dataformat.Load(s.Path(contract.DataFormatsPath))
	if err != nil {
		return err
	}
	other := ota.Other(s.Slot.Name)
	target, known := rec.Slots[other]
	for _, k := range dataformat.Kinds {
		u, err := dataformat.Measure(s.Path(k.Dir))
		if err != nil {
			return err
		}
		r := dataformat.Rollback{Kind: k, Slot: other, Known: known, Version: target.Version, Image: target.Formats[k.Name],
			Data: rec.Formats[k.Name], Empty: u.Empty}
		if up, ok := rec.Upgrades[k.Name]; ok {
			r.Upgrade = &up
			r.Kept = up.Kept != "" && exists(s.Path(up.Kept))
		}
		if err := dataformat.CheckRollback(r); err != nil {
			return err
		}
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

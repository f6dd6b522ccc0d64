package dataformat

import (
	"fmt"

	"github.com/nodebake/nodebake/contract"
)

// Kind describes a kind of data for messages and for the agent.
type Kind struct {
	Name    string // as in contract.Manifest.DataFormats
	What    string // "Fulcrum's database"
	Program string // "Fulcrum"
	Dir     string // the device path of the data folder
	Unit    string // the program's systemd unit
}

// FulcrumDB is Fulcrum's database.
var FulcrumDB = Kind{Name: contract.FulcrumDB, What: "Fulcrum's database", Program: "Fulcrum", Dir: "/data/fulcrum/fulcrum_db", Unit: "fulcrum"}

// Kinds are the kinds of data nodebake guards.
var Kinds = []Kind{FulcrumDB}

// KeptDir is where the copy of the data in format from is kept during an
// upgrade: beside the data, on the same filesystem, so that putting it
// back is a rename.
func (k Kind) KeptDir(from int) string { return fmt.Sprintf("%s.format%d", k.Dir, from) }

// Action is what the first-boot agent does with one kind of data.
type Action string

const (
	Nothing       Action = "nothing"         // data and image agree
	RecordImage   Action = "record"          // record the image's format: a fresh folder, or data confirmed
	Unrecorded    Action = "unrecorded"      // data from before records: started as it is, recorded once blessed
	UpgradeKeep   Action = "upgrade-keep"    // keep a copy, raise the record, start the program with its upgrade flag
	UpgradeNoCopy Action = "upgrade-no-copy" // raise the record, start with the upgrade flag, no copy (consent given)
	ResumeUpgrade Action = "resume"          // an upgrade to this image's format is under way: the flag again
	Settle        Action = "settle"          // the upgrading slot is blessed: drop the copy, end the upgrade
	Restore       Action = "restore"         // an older image: put the kept copy back
	DoNotStart    Action = "stop"            // the program must not start on this data
	NotThisImage  Action = "not-this-image"  // the image has no program for this data
)

// Boot is what the first-boot agent of a running image sees for one kind
// of data.
type Boot struct {
	Kind    Kind
	Version string   // the running image's version
	Image   int      // the format the running image writes; 0: it has no program for it
	Data    int      // the recorded format; 0: none
	Empty   bool     // the data folder is missing or empty: nothing to read
	Upgrade *Upgrade // the upgrade under way, if any
	Kept    bool     // Upgrade.Kept is there
	Room    bool     // /data has room for a copy and for the upgrade (HasRoom)
	Consent bool     // the admin accepted this upgrade without a copy
	Blessed bool     // this boot is not on trial: the running slot was blessed before it
}

// Decision is what to do and why, in words for the report.
type Decision struct {
	Action Action
	Why    string
}

// Decide is the boot-time decision table.
func Decide(b Boot) Decision {
	k := b.Kind
	if b.Image == 0 {
		return Decision{NotThisImage, "this image has no " + k.Program}
	}
	u := b.Upgrade
	// Before the empty check: a restore cut short leaves no database, and
	// the copy must not be lost.
	if u != nil && b.Image < u.To && b.Image >= u.From && b.Kept {
		return Decision{Restore, fmt.Sprintf("%s %s upgraded %s to format %d and was not blessed; this image writes format %d: the copy kept at %s is put back (what was indexed since is lost)", k.Program, u.Version, k.What, u.To, b.Image, u.Kept)}
	}
	if b.Empty && (u != nil || b.Data != b.Image) {
		return Decision{RecordImage, fmt.Sprintf("%s is empty: %s starts it in format %d", k.What, k.Program, b.Image)}
	}
	if u != nil {
		switch {
		case b.Image >= u.To && b.Blessed:
			return Decision{Settle, fmt.Sprintf("the upgrade to format %d was made by %s, which is blessed now: it is final", u.To, u.Version)}
		case b.Image >= u.To:
			return Decision{ResumeUpgrade, fmt.Sprintf("upgrading %s from format %d to %d (image %s on trial); %s ignores the upgrade flag once it is done", k.What, u.From, u.To, u.Version, k.Program)}
		}
		return Decision{DoNotStart, stopWhy(k, b.Image, u.To, fmt.Sprintf("%s may have been upgraded to format %d by %s, and no copy in format %d is kept", k.What, u.To, u.Version, u.From))}
	}
	switch {
	case b.Empty:
		return Decision{Nothing, fmt.Sprintf("%s is empty; format %d", k.What, b.Image)}
	case b.Data == 0 && b.Blessed:
		return Decision{RecordImage, fmt.Sprintf("%s was written before formats were recorded; this slot is blessed, so %s read it: format %d", k.What, k.Program, b.Image)}
	case b.Data == 0:
		return Decision{Unrecorded, fmt.Sprintf("%s was written before formats were recorded: %s opens it as it is (Fulcrum 2.x refuses a 1.x database by itself) and its format is recorded once this slot is blessed", k.What, k.Program)}
	case b.Data == b.Image:
		return Decision{Nothing, fmt.Sprintf("format %d", b.Image)}
	case b.Data > b.Image:
		return Decision{DoNotStart, stopWhy(k, b.Image, b.Data, fmt.Sprintf("%s is in format %d", k.What, b.Data))}
	case b.Room:
		return Decision{UpgradeKeep, fmt.Sprintf("upgrading %s from format %d to %d; the format %d copy is kept at %s until this slot is blessed", k.What, b.Data, b.Image, b.Data, k.KeptDir(b.Data))}
	case b.Consent:
		return Decision{UpgradeNoCopy, fmt.Sprintf("upgrading %s from format %d to %d without a copy (accepted with -accept-data-upgrade): images that write format %d cannot use it any more", k.What, b.Data, b.Image, b.Data)}
	}
	return Decision{DoNotStart, fmt.Sprintf("%s is in format %d and this image's %s writes format %d; /data has no room to keep a copy during the upgrade, and the upgrade was not accepted without one. %s stays stopped and bitcoind runs, so this boot fails its assessment and the previous slot boots again. Free room on /data, or install the update again with `nodectl update apply -accept-data-upgrade`",
		k.What, b.Data, k.Program, b.Image, k.Program)}
}

func stopWhy(k Kind, image, data int, cause string) string {
	return fmt.Sprintf("%s; this image's %s reads format %d only, and would fail on it or damage it. %s is not started (bitcoind runs). Boot the slot with the newer image (sudo nodectl update rollback), or, to index anew, move %s away and run sudo nodectl firstboot, then sudo systemctl start %s",
		cause, k.Program, image, k.Program, k.Dir, k.Unit)
}

// Install is what installing an image means for one kind of data.
type Install struct {
	Kind    Kind
	Version string // the new image's version
	Known   bool   // the bundle says what its images write (bundle format 2)
	Image   int    // the format the new image writes; 0: it has no program for it
	Data    int    // the recorded format; 0: none
	Room    bool   // /data has room for a copy and for the upgrade
	Consent bool   // -accept-data-upgrade
}

// Verdict says whether an install may go ahead, and what to tell the
// admin before anything is written.
type Verdict struct {
	OK      bool
	Consent bool   // OK only because of -accept-data-upgrade: record it
	Message string // "" when there is nothing to say
}

// Check is the install-time decision table.
func Check(in Install) Verdict {
	k := in.Kind
	switch {
	case in.Data == 0:
		return Verdict{OK: true}
	case !in.Known && in.Consent:
		return Verdict{OK: true, Message: fmt.Sprintf("the bundle does not say which format of %s its image reads (bundle format 1), and its first boot does not guard the data; installing it as accepted with -accept-data-upgrade", k.What)}
	case !in.Known:
		return Verdict{Message: fmt.Sprintf("the bundle does not say which format of %s its image reads (bundle format 1, made before data formats), and its first boot does not guard the data on /data (%s, format %d): its %s might fail on it or damage it. Install a bundle made by a newer nodebake, or pass -accept-data-upgrade to install it anyway", k.What, k.Dir, in.Data, k.Program)}
	case in.Image == 0 || in.Image == in.Data:
		return Verdict{OK: true}
	case in.Image < in.Data:
		return Verdict{Message: fmt.Sprintf("image %s writes %s in format %d, but the data on /data (%s) is in format %d, which it cannot read: it would not start %s. Install an image that reads format %d, or move %s away first to index anew", in.Version, k.What, in.Image, k.Dir, in.Data, k.Program, in.Data, k.Dir)}
	}
	head := fmt.Sprintf("this update upgrades %s from format %d to %d; the upgrade cannot be undone: %s of format %d cannot read the result", k.What, in.Data, in.Image, k.Program, in.Data)
	switch {
	case in.Room:
		return Verdict{OK: true, Message: head + fmt.Sprintf(". Its first boot keeps a copy of the format %d database at %s until the new slot is blessed: a rollback or fallback before then puts it back (what was indexed since is lost); after it, rolling back to an image with format %d is refused", in.Data, k.KeptDir(in.Data), in.Data)}
	case in.Consent:
		return Verdict{OK: true, Consent: true, Message: head + fmt.Sprintf(". /data has no room to keep a copy, and you accepted that (-accept-data-upgrade): from the first boot of the new slot on, a rollback to an image with format %d is refused, and if the new slot fails its boot assessment, the previous slot boots without %s (bitcoind runs) until %s is indexed anew", in.Data, k.Program, k.What)}
	}
	return Verdict{Message: head + fmt.Sprintf(". /data has no room to keep a copy of it for a rollback (see `df -h /data`): free room, or pass -accept-data-upgrade to upgrade without a copy (no rollback to an image with format %d afterwards)", in.Data)}
}

// Rollback is what booting the other slot again means for one kind of
// data.
type Rollback struct {
	Kind    Kind
	Slot    string // the other slot
	Known   bool   // the record has the other slot's formats
	Version string // its image's version, if known
	Image   int    // the format it writes; 0: it has no program for it
	Data    int    // the recorded format; 0: none
	Empty   bool   // the data folder is empty or missing
	Upgrade *Upgrade
	Kept    bool // Upgrade.Kept is there
}

// CheckRollback returns an error naming the cause when the other slot's
// program could not read the data.
func CheckRollback(r Rollback) error {
	k := r.Kind
	if r.Empty || r.Data == 0 {
		return nil
	}
	if u := r.Upgrade; u != nil && r.Known && r.Image >= u.From && r.Image < u.To && r.Kept {
		return nil // its first boot puts the kept copy back
	}
	if !r.Known {
		return fmt.Errorf("refusing to roll back: nodectl does not know which format of %s slot %s's image reads, and the data on /data is in format %d; its %s could fail on it or damage it. Move %s away first (it is then indexed anew)", k.What, r.Slot, r.Data, k.Program, k.Dir)
	}
	if r.Image == 0 || r.Image >= r.Data {
		return nil
	}
	return fmt.Errorf("refusing to roll back to slot %s (%s): %s on /data was upgraded to format %d, and %s there reads format %d only; no copy in format %d is kept (the upgrade was made without one, or it was final once the newer slot was blessed). Stay on this slot, or move %s away first (it is then indexed anew)",
		r.Slot, r.Version, k.What, r.Data, k.Program, r.Image, r.Image, k.Dir)
}

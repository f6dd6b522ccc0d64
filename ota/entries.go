package ota

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/nodebake/nodebake/contract"
)

// triesNew is how many boots a new slot gets to reach boot-complete.target.
const triesNew = 3

// State is where a slot's entry stands in boot counting, read from its
// file name.
type State int

const (
	Good    State = iota // no counter: blessed by systemd-bless-boot, or as built
	Pending              // "+N" or "+N-M" with N > 0: on trial
	Standby              // "+0": a good slot set aside by Rollback or a downgrade
	Bad                  // "+0-M": used up its tries, or abandoned while on trial
)

func (s State) String() string {
	return [...]string{"good", "pending", "standby", "bad"}[s]
}

// Entry is one boot entry on the ESP, as systemd-boot sees it.
type Entry struct {
	File      string // file name in /loader/entries
	Slot      string // "a" or "b"; "" for an entry that is not nodebake's
	Title     string
	Version   string
	SortKey   string
	MachineID string
	TriesLeft int // -1 without boot counting
	TriesDone int
}

// State reads the entry's boot-counting state.
func (e Entry) State() State {
	switch {
	case e.TriesLeft < 0:
		return Good
	case e.TriesLeft > 0:
		return Pending
	case e.TriesDone == 0:
		return Standby
	}
	return Bad
}

// entryName is a nodebake entry file name taken apart.
type entryName struct {
	slot       string
	left, done int // left is -1 without a counter
}

// file renders the name: nodebake-<slot>[+left[-done]].conf.
func (n entryName) file() string {
	s := contract.EntryPrefix + n.slot
	if n.left >= 0 {
		s += "+" + strconv.Itoa(n.left)
		if n.done > 0 {
			s += "-" + strconv.Itoa(n.done)
		}
	}
	return s + ".conf"
}

// parseEntryName recognises nodebake-a.conf, nodebake-b+3.conf,
// nodebake-a+2-1.conf and the like.
func parseEntryName(file string) (entryName, bool) {
	base, ok := strings.CutSuffix(file, ".conf")
	if !ok {
		return entryName{}, false
	}
	left, done := parseCounter(file)
	if left >= 0 {
		base = base[:strings.LastIndexByte(base, '+')]
	}
	slot, ok := strings.CutPrefix(base, contract.EntryPrefix)
	if !ok || (slot != "a" && slot != "b") {
		return entryName{}, false
	}
	return entryName{slot: slot, left: left, done: done}, true
}

// EntrySlot is the slot whose entry a file in the entries folder is, by
// its name with or without a boot counter; ok is false for other entries.
func EntrySlot(file string) (slot string, ok bool) {
	n, ok := parseEntryName(file)
	return n.slot, ok
}

// parseCounter reads systemd-boot's boot counter from an entry file name
// as systemd-boot does: "+LEFT[-DONE]" after the last "+", directly before
// ".conf". Without one, left is -1.
func parseCounter(file string) (left, done int) {
	i := strings.LastIndexByte(file, '+')
	if i < 0 {
		return -1, 0
	}
	counter, ok := strings.CutSuffix(file[i+1:], ".conf")
	if !ok {
		return -1, 0
	}
	l, d, hasDone := strings.Cut(counter, "-")
	left, err := strconv.Atoi(l)
	if err != nil || left < 0 || !allDigits(l) {
		return -1, 0
	}
	if hasDone {
		if done, err = strconv.Atoi(d); err != nil || done < 0 || !allDigits(d) {
			return -1, 0
		}
	}
	return left, done
}

func allDigits(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) < 0
}

// ReadEntries reads every boot entry systemd-boot would consider: the
// *.conf files in /loader/entries not starting with "auto-".
func ReadEntries(esp ESP) ([]Entry, error) {
	names, err := esp.ReadDir(contract.EntriesDir)
	if err != nil {
		return nil, fmt.Errorf("ESP: reading /%s: %w", contract.EntriesDir, err)
	}
	var entries []Entry
	for _, name := range names {
		lower := strings.ToLower(name)
		if !strings.HasSuffix(lower, ".conf") || strings.HasPrefix(lower, "auto-") || strings.HasPrefix(name, ".") {
			continue
		}
		r, err := esp.Open(contract.EntriesDir + "/" + name)
		if err != nil {
			return nil, fmt.Errorf("ESP: %w", err)
		}
		b, err := io.ReadAll(io.LimitReader(r, maxManifest))
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("ESP: /%s/%s: %w", contract.EntriesDir, name, err)
		}
		e := Entry{File: name}
		e.TriesLeft, e.TriesDone = parseCounter(name)
		if n, ok := parseEntryName(name); ok {
			e.Slot = n.slot
		}
		s := bufio.NewScanner(bytes.NewReader(b))
		for s.Scan() {
			k, v, _ := strings.Cut(strings.TrimSpace(s.Text()), " ")
			v = strings.TrimSpace(v)
			switch k {
			case "title":
				e.Title = v
			case "version":
				e.Version = v
			case "sort-key":
				e.SortKey = v
			case "machine-id":
				e.MachineID = v
			}
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// BootOrder sorts entries as systemd-boot 252 sorts its menu; without a
// default pattern or EFI variable it boots the first. Entries with no tries
// left go last; entries with a sort-key before those without; then
// sort-key, machine-id, version (newest first), file name (highest first),
// and finally more tries left, fewer tries done.
func BootOrder(entries []Entry) []Entry {
	out := slices.Clone(entries)
	slices.SortStableFunc(out, compareEntries)
	return out
}

// NextBoot is the entry systemd-boot boots next, or false if there is none.
func NextBoot(entries []Entry) (Entry, bool) {
	if len(entries) == 0 {
		return Entry{}, false
	}
	return BootOrder(entries)[0], true
}

func compareEntries(a, b Entry) int {
	if r := cmpBool(a.TriesLeft == 0, b.TriesLeft == 0); r != 0 {
		return r
	}
	if r := cmpBool(a.SortKey == "", b.SortKey == ""); r != 0 {
		return r
	}
	if a.SortKey != "" && b.SortKey != "" {
		if r := strings.Compare(a.SortKey, b.SortKey); r != 0 {
			return r
		}
		if r := strings.Compare(a.MachineID, b.MachineID); r != 0 {
			return r
		}
		if r := -CompareVersions(a.Version, b.Version); r != 0 {
			return r
		}
	}
	// systemd-boot's entry id is the lower-cased file name, counter and all.
	if r := -CompareVersions(strings.ToLower(a.File), strings.ToLower(b.File)); r != 0 {
		return r
	}
	if a.TriesLeft < 0 || b.TriesLeft < 0 {
		return 0
	}
	if r := -cmp.Compare(a.TriesLeft, b.TriesLeft); r != 0 {
		return r
	}
	return cmp.Compare(a.TriesDone, b.TriesDone)
}

// ActiveSlot reads the running slot from a kernel command line
// (/proc/cmdline): the nodebake.slot= the boot entry passed.
func ActiveSlot(cmdline string) (string, error) {
	s, err := contract.Parse(cmdline)
	if err != nil {
		return "", err
	}
	if s.Name != "a" && s.Name != "b" {
		return "", fmt.Errorf("kernel command line names slot %q: want a or b", s.Name)
	}
	return s.Name, nil
}

// Other is the slot that is not slot.
func Other(slot string) string {
	if slot == "a" {
		return "b"
	}
	return "a"
}

// trust ranks what an entry's name claims about its slot, most first: a
// Good name is written only by the build, by systemd-bless-boot after
// boot-complete.target, or by nodectl giving a good slot back its name; a
// Standby name only ever names a slot that was good.
var trust = [...]int{Good: 0, Standby: 1, Pending: 2, Bad: 3}

// SlotEntry finds slot's entry, as Apply, Rollback, the failed-version
// record and nodectl status see it. A slot has two names only while a
// change of its name was cut off: nodectl writes the new name before it
// removes the old one, and a rename on FAT (systemd-boot's,
// systemd-bless-boot's) may leave both. Both names then describe the same
// slot, and the one that stands for it is the most trusted (Good, Standby,
// Pending, Bad); among Pending names the one with fewer tries left, so
// that a try that started counts; then the one systemd-boot sorts first.
// That rule never lets a good slot lose its good name, and never makes a
// slot more trusted than one of its names says it was: nodectl's own
// changes are undone (a demotion, a rollback's fresh tries), except giving
// a Standby slot back its Good name, which is finished; systemd-bless-boot's
// blessing is finished.
func SlotEntry(entries []Entry, slot string) (Entry, bool) {
	var best Entry
	found := false
	for _, e := range BootOrder(entries) {
		if e.Slot != slot {
			continue
		}
		if !found || preferName(e, best) {
			best, found = e, true
		}
	}
	return best, found
}

// preferName reports whether a, of the same slot as b and after it in
// systemd-boot's order, stands for the slot rather than b.
func preferName(a, b Entry) bool {
	if ta, tb := trust[a.State()], trust[b.State()]; ta != tb {
		return ta < tb
	}
	return a.State() == Pending && a.TriesLeft < b.TriesLeft
}

// tidyEntries finishes or undoes a change of an entry's name that a power
// cut interrupted, as SlotEntry decides: it removes the other names of
// each slot and the temporary files of a name being written, then reads
// the entries again. Each removal leaves the name that stands for the
// slot, so a cut in here changes nothing systemd-boot could boot.
func tidyEntries(esp ESP) ([]Entry, error) {
	entries, err := ReadEntries(esp)
	if err != nil {
		return nil, err
	}
	var extra []string
	for _, slot := range []string{"a", "b"} {
		keep, ok := SlotEntry(entries, slot)
		for _, e := range entries {
			if ok && e.Slot == slot && e.File != keep.File {
				extra = append(extra, e.File)
			}
		}
	}
	names, err := esp.ReadDir(contract.EntriesDir)
	if err != nil {
		return nil, fmt.Errorf("ESP: reading /%s: %w", contract.EntriesDir, err)
	}
	for _, name := range names {
		if strings.HasPrefix(name, contract.EntryPrefix) && strings.HasSuffix(name, ".conf.tmp") {
			extra = append(extra, name)
		}
	}
	if len(extra) == 0 {
		return entries, nil
	}
	for _, name := range extra {
		if err := esp.Remove(contract.EntriesDir + "/" + name); err != nil {
			return nil, fmt.Errorf("ESP: removing /%s/%s, left by an interrupted update or rollback: %w", contract.EntriesDir, name, err)
		}
	}
	return ReadEntries(esp)
}

// moveEntry gives e a new boot counter without ever renaming it: a rename
// on FAT is not atomic, and e may be the only entry that boots. The same
// content is written under the new name (through a temporary file that
// systemd-boot ignores, synced, then renamed: a cut leaves the new name
// complete or absent), and only then is the old name removed. While both
// exist they describe the same slot, whichever systemd-boot picks.
func moveEntry(esp ESP, e Entry, left, done int) (Entry, error) {
	n := entryName{slot: e.Slot, left: left, done: done}
	if n.file() == e.File {
		return e, nil
	}
	oldPath, newPath := contract.EntriesDir+"/"+e.File, contract.EntriesDir+"/"+n.file()
	r, err := esp.Open(oldPath)
	if err != nil {
		return Entry{}, fmt.Errorf("ESP: %w", err)
	}
	conf, err := io.ReadAll(io.LimitReader(r, maxManifest))
	r.Close()
	if err != nil {
		return Entry{}, fmt.Errorf("ESP: /%s: %w", oldPath, err)
	}
	if err := writeESP(esp, newPath+".tmp", conf); err != nil {
		return Entry{}, err
	}
	if err := esp.Rename(newPath+".tmp", newPath); err != nil {
		return Entry{}, fmt.Errorf("ESP: %w", err)
	}
	if err := esp.Remove(oldPath); err != nil {
		return Entry{}, fmt.Errorf("ESP: removing /%s after writing /%s: %w", oldPath, newPath, err)
	}
	e.File, e.TriesLeft, e.TriesDone = n.file(), left, done
	return e, nil
}

// demote sets the running slot's entry aside: "+0" keeps a good entry
// recognisable (Standby), "+0-M" records that an entry on trial was given
// up (Bad).
func demote(esp ESP, e Entry) (Entry, error) {
	if e.State() == Pending {
		return moveEntry(esp, e, 0, e.TriesDone)
	}
	return moveEntry(esp, e, 0, 0)
}

// Rollback makes the other slot boot next, with three tries: if it does
// not reach boot-complete.target, the running slot boots again. It refuses
// when the other slot has no entry or used up its tries. Calling it again
// (after a power cut, say) finishes the job or does nothing.
func Rollback(esp ESP, active string) error {
	if active != "a" && active != "b" {
		return fmt.Errorf("running slot %q: want a or b", active)
	}
	entries, err := tidyEntries(esp)
	if err != nil {
		return err
	}
	other := Other(active)
	o, ok := SlotEntry(entries, other)
	if !ok {
		return fmt.Errorf("slot %s has no boot entry: there is nothing to roll back to", other)
	}
	switch o.State() {
	case Bad:
		return fmt.Errorf("slot %s failed to boot (entry %s): refusing to roll back to it; install a bundle instead", other, o.File)
	case Good, Standby:
		if _, err := moveEntry(esp, o, triesNew, 0); err != nil {
			return err
		}
	}
	if err := bootsNext(esp, other); err == nil {
		return nil
	}
	if entries, err = ReadEntries(esp); err != nil {
		return err
	}
	if a, ok := SlotEntry(entries, active); ok {
		if _, err := demote(esp, a); err != nil {
			return err
		}
	}
	return bootsNext(esp, other)
}

// bootsNext checks that systemd-boot will boot slot's entry next.
func bootsNext(esp ESP, slot string) error {
	entries, err := ReadEntries(esp)
	if err != nil {
		return err
	}
	next, ok := NextBoot(entries)
	if !ok || next.Slot != slot {
		return fmt.Errorf("systemd-boot would boot %s next, not slot %s: remove foreign entries from /%s", next.File, slot, contract.EntriesDir)
	}
	return nil
}

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The stand-in's "database" is one JSON file, kept where the real one's
// data lives so that the folder looks the part: Fulcrum 1.x keeps one
// RocksDB per table in the datadir (meta, blkinfo, utxoset, ...); 2.x
// keeps one RocksDB in datadir/fulc2_db (src/Storage.cpp kDBName).
const (
	dbFile   = "standin-db.json"
	v1Folder = "meta"
	v2Folder = "fulc2_db"
)

// incompatible is Fulcrum's message for a database it cannot read.
const incompatible = "Incompatible database format -- delete the datadir and resynch."

// dbState is the stand-in database's content.
type dbState struct {
	// Format is 1 for a Fulcrum 1.x database, 2 for 2.x.
	Format    int    `json:"format"`
	WrittenBy string `json:"written_by"`
	Chain     string `json:"chain"`
	Genesis   string `json:"genesis"`
	Height    int    `json:"height"` // the indexed tip; -1 before block 0
	Tip       string `json:"tip"`
	TipHeader string `json:"tip_header"` // hex, 80 bytes
	TxNum     int64  `json:"txnum"`      // transactions indexed
}

type database struct {
	path string
	mu   sync.Mutex
	st   dbState
}

func (db *database) state() dbState {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.st
}

func (db *database) update(f func(*dbState)) {
	db.mu.Lock()
	defer db.mu.Unlock()
	f(&db.st)
}

// save writes the database through a temporary file: a crash leaves the
// old state or the new one, as 2.x's atomic write batches do.
func (db *database) save() error {
	db.mu.Lock()
	b, _ := json.MarshalIndent(db.st, "", "  ")
	db.mu.Unlock()
	tmp := db.path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing the database: %v", err)
	}
	if err := os.Rename(tmp, db.path); err != nil {
		return fmt.Errorf("writing the database: %v", err)
	}
	return nil
}

// fatalError is what Fulcrum logs as "FATAL: Caught exception: ..." and
// exits 1 on.
type fatalError struct{ msg string }

func (e *fatalError) Error() string { return e.msg }

func readDB(path string) (dbState, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return dbState{}, false, nil
	} else if err != nil {
		return dbState{}, false, err
	}
	var st dbState
	if err := json.Unmarshal(b, &st); err != nil {
		return dbState{}, true, &fatalError{incompatible + " (stand-in: " + path + " does not parse: " + err.Error() + ")"}
	}
	return st, true, nil
}

// openDB opens or creates the database in datadir as Fulcrum version
// does. 2.x finds a 1.x database and upgrades it only with --db-upgrade
// (upgrade), after a countdown that a signal (stop) interrupts; the
// upgrade removes the 1.x data, so 1.x refuses what is left.
func (f *fulcrum) openDB(upgrade bool, countdown time.Duration) (*database, error) {
	dir := f.conf.datadir
	v1Path, v2Path := filepath.Join(dir, v1Folder, dbFile), filepath.Join(dir, v2Folder, dbFile)
	f.logf("Loading database ...")
	v1, haveV1, err := readDB(v1Path)
	if err != nil {
		return nil, err
	}
	v2, haveV2, err := readDB(v2Path)
	if err != nil {
		return nil, err
	}
	fresh := dbState{WrittenBy: f.subversion(), Height: -1}
	if strings.HasPrefix(version, "1.") {
		switch {
		case haveV2 || (haveV1 && v1.Format != 1):
			return nil, &fatalError{incompatible + " (stand-in: " + dir + " holds a Fulcrum 2.x database, which Fulcrum 1.x cannot read: the upgrade to 2.x is irreversible)"}
		case !haveV1:
			fresh.Format = 1
			v1 = fresh
		}
		return f.createDB(v1Path, v1)
	}
	switch {
	case haveV2 && v2.Format != 2:
		return nil, &fatalError{incompatible}
	case haveV2:
		return f.createDB(v2Path, v2)
	case haveV1 && !upgrade:
		return nil, &fatalError{fmt.Sprintf("\nThe data directory \"%s\" contains an older Fulcrum 1.x database. It can be upgraded"+
			"\nto the latest format, but you need to explicitly request this to occur, since"+
			"\nthe upgrade process is destructive and irreversible.\n\n"+
			"Please specify CLI argument --db-upgrade to upgrade the database to the latest"+
			"\nformat.", dir)}
	case haveV1:
		return f.upgradeDB(v1, v1Path, v2Path, countdown)
	}
	if upgrade {
		f.logf("Warning: CLI argument --db-upgrade requested but no complete Fulcrum 1.x database found in %s", dir)
	}
	fresh.Format = 2
	return f.createDB(v2Path, fresh)
}

func (f *fulcrum) createDB(path string, st dbState) (*database, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, &fatalError{fmt.Sprintf("cannot create the database folder: %v", err)}
	}
	db := &database{path: path, st: st}
	if err := db.save(); err != nil {
		return nil, &fatalError{err.Error()}
	}
	f.logf("DB format: %d (stand-in database %s), indexed height %d", st.Format, path, st.Height)
	return db, nil
}

// upgradeDB turns a 1.x database into a 2.x one, with 2.x's warning and
// countdown first.
func (f *fulcrum) upgradeDB(v1 dbState, v1Path, v2Path string, countdown time.Duration) (*database, error) {
	f.logf(`

********************************************************************************
*                               Database Upgrade                               *
********************************************************************************
* This will take up to an hour and is irreversible and uninterruptible. If the *
* process is killed while the DB is being upgraded, then the DB will be in a   *
* corrupted state and must be resynched. Therefore, once the upgrade starts be *
* sure to let it run to completion.                                            *
*                                                                              *
* If unsure, hit CTRL-C now and take a backup of the data directory.           *
* Otherwise, wait for the timeout to occur and the upgrade will commence.      *
********************************************************************************
`)
	for left := countdown.Round(time.Second); left > 0; left -= time.Second {
		f.logf("Upgrade will begin in %d second(s), hit CTRL-C now to abort ...", int(left.Seconds()))
		select {
		case <-time.After(time.Second):
		case reason := <-f.stop:
			f.stop <- reason // for run's select
			return nil, &fatalError{"User interrupted, aborting upgrade"}
		}
	}
	v1.Format, v1.WrittenBy = 2, f.subversion()
	db, err := f.createDB(v2Path, v1)
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(filepath.Dir(v1Path)); err != nil {
		f.logf("Warning: Error removing directory: %s: %v", filepath.Dir(v1Path), err)
	}
	f.logf("Completed DB upgrade. Imported the 1.x database at height %d (stand-in).", v1.Height)
	return db, nil
}

package dataformat

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nodebake/nodebake/internal/progress"
)

// upgradeReserve is what must stay free besides the copy and Fulcrum's
// own need: bitcoind and Fulcrum keep writing while the new slot is on
// trial.
const upgradeReserve = 1 << 30

// fulcrumSlack is what Fulcrum 2.x's --db-upgrade wants free beyond its
// largest 1.x table, which it copies before deleting the original
// (Storage.cpp, checkFulc1xUpgradeDB, v2.1.1).
const fulcrumSlack = 1_000_000_000

// Usage is the apparent size of a data folder (what a copy takes) and of
// its largest top-level entry (what Fulcrum's upgrade copies at once).
type Usage struct {
	Total, Largest int64
	Empty          bool // missing, or nothing in it
}

// Measure walks dir without following links.
func Measure(dir string) (Usage, error) {
	var u Usage
	top := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		first, _, _ := strings.Cut(rel, string(filepath.Separator))
		top[first] += fi.Size()
		u.Total += fi.Size()
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return Usage{Empty: true}, nil
	}
	if err != nil {
		return Usage{}, err
	}
	for _, n := range top {
		u.Largest = max(u.Largest, n)
	}
	names, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		return Usage{}, err
	}
	hidden, err := filepath.Glob(filepath.Join(dir, ".*"))
	if err != nil {
		return Usage{}, err
	}
	u.Empty = len(names)+len(hidden) == 0
	return u, nil
}

// Need is the free room an upgrade with a kept copy takes.
func (u Usage) Need() int64 { return u.Total + u.Largest + fulcrumSlack + upgradeReserve }

// Room reports whether the filesystem of dir's parent has room for an
// upgrade of dir with a kept copy, and says how much it has and needs.
func Room(dir string, u Usage) (bool, string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(dir), &st); err != nil {
		return false, "", fmt.Errorf("%s: %w", filepath.Dir(dir), err)
	}
	free := int64(st.Bavail) * st.Bsize
	return free >= u.Need(), fmt.Sprintf("%s free, %s needed (a copy of %s, %s for the upgrade itself and %s to spare)",
		progress.MB(free), progress.MB(u.Need()), progress.MB(u.Total), progress.MB(u.Largest+fulcrumSlack), progress.MB(upgradeReserve)), nil
}

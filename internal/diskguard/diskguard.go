// Package diskguard stops bitcoind and Fulcrum cleanly before /data fills
// up. Either program that finds its disk full in the middle of a write
// crashes, and may leave a database that needs a long reindex; stopped with
// SIGINT while there is still room, both flush and close theirs.
//
// Check runs every minute (nodebake-disk-guard.timer). Below Limit it
// writes Marker, which both units' conditions refuse to start with, and
// stops them; `nodectl status` and the console say why. Once twice the
// limit is free again (the user removed files or moved to a bigger disk)
// it removes the marker and starts them again.
package diskguard

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodebake/nodebake/internal/atomicfile"
	"github.com/nodebake/nodebake/internal/bytesize"
)

// Marker says the services were stopped for want of space, and why.
const Marker = "/run/nodebake/disk-full"

// Usage is a filesystem's size and the space left to its users.
type Usage struct{ Size, Avail uint64 }

// Stat reads the usage of the filesystem at path.
func Stat(path string) (Usage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return Usage{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	return Usage{Size: st.Blocks * uint64(st.Bsize), Avail: st.Bavail * uint64(st.Bsize)}, nil
}

// Limit is the free space below which the services stop: 1% of the
// disk, at least 16 MiB, at most 4 GiB. bitcoind writes at most a 128 MiB
// block file and its chainstate flush at a time, Fulcrum a flush of its
// own cache; 4 GiB holds both on any disk a node runs on.
func Limit(size uint64) uint64 {
	return min(max(size/100, 16*bytesize.MiB), 4*bytesize.GiB)
}

// Services is what the guard asks of systemd.
type Services interface {
	Stop() error  // bitcoind and Fulcrum, cleanly
	Start() error // both again
}

// Action is what Check did.
type Action int

const (
	None Action = iota
	Stopped
	Resumed
)

// Check compares u with the limit and stops or resumes the services.
// marker is the path of Marker (under a test's root). It returns what it
// did and a sentence for the console.
func Check(u Usage, marker string, s Services, now time.Time) (Action, string, error) {
	limit := Limit(u.Size)
	_, err := os.Stat(marker)
	stopped := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return None, "", err
	}
	switch {
	case !stopped && u.Avail < limit:
		why := fmt.Sprintf("%s: /data has %s free, less than %s: bitcoind and Fulcrum were stopped cleanly before the disk filled up. Free space on /data or move to a bigger disk; they start again once %s are free.",
			now.UTC().Format(time.RFC3339), bytesize.Format(int64(u.Avail)), bytesize.Format(int64(limit)), bytesize.Format(int64(2*limit)))
		// The marker first: the units' conditions then keep anything
		// (sync-watch, a restart) from starting them again.
		if err := os.MkdirAll(filepath.Dir(marker), 0o755); err != nil {
			return None, "", err
		}
		if err := atomicfile.Write(marker, []byte(why+"\n"), 0o644); err != nil {
			return None, "", err
		}
		return Stopped, why, s.Stop()
	case stopped && u.Avail >= 2*limit:
		if err := os.Remove(marker); err != nil {
			return None, "", err
		}
		msg := fmt.Sprintf("/data has %s free again: starting bitcoind and Fulcrum", bytesize.Format(int64(u.Avail)))
		return Resumed, msg, s.Start()
	}
	return None, "", nil
}

// Reason is what Marker says, or "" when the services are not stopped.
func Reason(marker string) string {
	b, err := os.ReadFile(marker)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

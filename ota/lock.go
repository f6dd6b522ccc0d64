package ota

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/nodebake/nodebake/contract"
)

// Lock takes the update lock of the system whose root is root ("/" on a
// device), so that two runs of nodectl update never work on the slots,
// the boot entries or the update state at once; call unlock when done.
// It does not wait: a second run is told that the first one is going on.
// The kernel drops the lock when its holder exits, however it exits.
func Lock(root string) (unlock func(), err error) {
	path := filepath.Join(root, contract.UpdateLockPath)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another nodectl update (apply, check or rollback) is running and holds %s: wait for it to finish", contract.UpdateLockPath)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

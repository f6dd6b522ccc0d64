package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nodebake/nodebake/internal/atomicfile"
)

// newMachineID makes a machine id the way systemd does: 128 random bits
// marked as a version 4 UUID, written as 32 lower-case hex digits.
func newMachineID(random io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(random, b[:]); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return hex.EncodeToString(b[:]), nil
}

// validMachineID reports whether s is a machine id: 32 lower-case hex digits,
// not all zero.
func validMachineID(s string) bool {
	if len(s) != 32 || strings.Trim(s, "0") == "" {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ensureMachineID returns the id stored in dir/machine-id, creating the file
// if it is missing and replacing it if it does not hold an id (systemd would
// refuse it).
func ensureMachineID(dir string) (id string, created bool, err error) {
	file := filepath.Join(dir, "machine-id")
	b, err := os.ReadFile(file)
	switch {
	case err == nil:
		if id := strings.TrimSuffix(string(b), "\n"); validMachineID(id) {
			return id, false, nil
		}
		say("state: %s holds no valid machine id (%q); making a new one", file, b)
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, err
	}
	if id, err = newMachineID(rand.Reader); err != nil {
		return "", false, err
	}
	if err := atomicfile.Write(file, []byte(id+"\n"), 0o444); err != nil {
		return "", false, err
	}
	return id, true, nil
}

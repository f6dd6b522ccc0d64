package identity

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
)

// Backup reads the identity of the device under root and writes it to w,
// encrypted to the recipients. It needs root's rights on a device. A
// required file that is missing (tor has not started, the first-boot agent
// has not run) fails the backup; an optional one is left out and named in
// skipped.
func Backup(root string, w io.Writer, now time.Time, recipients ...age.Recipient) (m Manifest, skipped []string, err error) {
	list, err := specs(root)
	if err != nil {
		return m, nil, err
	}
	m = Manifest{Format: Format, Created: now.UTC()}
	if b, err := os.ReadFile(filepath.Join(root, "etc/hostname")); err == nil {
		m.Hostname = strings.TrimSpace(string(b))
	}
	files := map[string][]byte{}
	for _, s := range list {
		d, err := openParent(root, s.Path)
		var b []byte
		if err == nil {
			b, err = d.ReadFile(filepath.Base(s.Path), maxFile)
			d.Close()
		}
		if errors.Is(err, fs.ErrNotExist) && s.Optional {
			skipped = append(skipped, s.Path)
			continue
		}
		if err != nil {
			return m, skipped, fmt.Errorf("%s: %w", s.Path, err)
		}
		files[s.Path] = b
		m.Files = append(m.Files, File{Path: s.Path, Owner: s.Owner, Mode: s.Mode, SHA256: sum(b)})
	}
	// What cannot be restored is not worth backing up: say so now, not on
	// the day the SSD died.
	if err := check(files); err != nil {
		return m, skipped, fmt.Errorf("this device's identity is not usable, nothing written: %w", err)
	}
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, skipped, err
	}
	add := func(name string, b []byte, mode fs.FileMode) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: int64(mode), Size: int64(len(b)), ModTime: m.Created, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := add(ManifestName, mb, 0o600); err != nil {
		return m, skipped, err
	}
	for _, f := range m.Files {
		if err := add(strings.TrimPrefix(f.Path, "/"), files[f.Path], f.Mode); err != nil {
			return m, skipped, err
		}
	}
	if err := tw.Close(); err != nil {
		return m, skipped, err
	}
	enc, err := age.Encrypt(w, recipients...)
	if err != nil {
		return m, skipped, fmt.Errorf("encrypting: %w", err)
	}
	if _, err := enc.Write(plain.Bytes()); err != nil {
		return m, skipped, err
	}
	return m, skipped, enc.Close()
}

package pairing

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nodebake/nodebake/internal/atomicfile"
	"github.com/nodebake/nodebake/internal/nofollow"
)

// Publish copies the onion addresses and the certificate's fingerprint to
// PublishedPath (mode 0640; ownPublished, unless nil, gives it to the
// admin's group) and writes the login screen's notice. It needs root's
// rights to read the sources. It fails while tor has not written the
// Electrum service's address yet, so that the caller can try again.
func Publish(c Config, ownPublished func(*os.File) error) (Published, error) {
	p, errs := c.sources()
	torrc, err := c.read(Torrc)
	if err != nil {
		return p, fmt.Errorf("reading tor's configuration: %w", err)
	}
	svc, ok := electrumService(torrc)
	if ok && p.Onions[svc.Dir] == "" {
		return p, fmt.Errorf("no onion address for the Electrum server yet: %w", errors.Join(errs...))
	}
	if p.CertSHA256 == "" {
		return p, fmt.Errorf("no certificate fingerprint: %w (see `nodectl status`)", errors.Join(errs...))
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return p, err
	}
	if err := c.write(PublishedPath, append(b, '\n'), 0o640, ownPublished); err != nil {
		return p, err
	}
	var notice strings.Builder
	notice.WriteString("  Wallets (Sparrow, Electrum): `nodectl connect` shows every address and a QR code\n")
	if ok {
		fmt.Fprintf(&notice, "  Electrum onion: %s  (SSL %d, TCP %d)\n", p.Onions[svc.Dir], SSLPort, TCPPort)
	}
	fmt.Fprintf(&notice, "  TLS SHA-256:    %s\n\n", p.CertSHA256)
	return p, c.write(IssuePath, []byte(notice.String()), 0o600, nil)
}

// write replaces the device path p, a file in a folder of root's.
func (c Config) write(p string, data []byte, mode os.FileMode, own func(*os.File) error) error {
	root, err := nofollow.Open(c.path("/"))
	if err != nil {
		return err
	}
	defer root.Close()
	d, err := root.MkdirAll(strings.TrimPrefix(filepath.Dir(p), "/"), 0o755)
	if err != nil {
		return err
	}
	defer d.Close()
	return atomicfile.Replace(d, filepath.Base(p), data, mode, own)
}

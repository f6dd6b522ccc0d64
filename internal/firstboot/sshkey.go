package firstboot

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/crypto/ssh"

	"github.com/nodebake/nodebake/internal/nofollow"
)

// HostKeyPath is the SSH host key sshd is configured with
// (overlays/base/etc/ssh/sshd_config.d/10-nodebake.conf.tmpl). /var lives on
// the data partition, so the key is made once per device and kept.
const HostKeyPath = "/var/lib/nodebake/ssh/ssh_host_ed25519_key"

// parseHostKey reads an OpenSSH private key and accepts it only if it is an
// unencrypted ed25519 key, the only kind sshd is told to use.
func parseHostKey(b []byte) (ed25519.PrivateKey, error) {
	raw, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		return nil, err
	}
	switch k := raw.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *ed25519.PrivateKey:
		return *k, nil
	}
	return nil, fmt.Errorf("a %T, not an ed25519 key", raw)
}

// ensureHostKey keeps an ed25519 host key at path (0600, root) and its
// public half at path.pub (0644), as ssh-keygen writes them. A key that is
// missing or unreadable is replaced; a .pub that does not match is rewritten
// from the key, which is kept.
func ensureHostKey(w files, d *nofollow.Dir, name string) ([]Item, error) {
	b, err := d.ReadFile(name, maxRead)
	var why string
	var key ed25519.PrivateKey
	switch {
	case errors.Is(err, fs.ErrNotExist):
		why = "there was no host key"
	case err != nil:
		why = err.Error()
	default:
		if key, err = parseHostKey(b); err != nil {
			why = "the old key was unusable: " + err.Error()
		}
	}
	var items []Item
	if why == "" {
		it, err := w.keep(d, name, 0o600, rootOwner)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	} else {
		if _, key, err = ed25519.GenerateKey(rand.Reader); err != nil {
			return nil, err
		}
		block, err := ssh.MarshalPrivateKey(key, "")
		if err != nil {
			return nil, err
		}
		it, err := w.file(d, name, pem.EncodeToMemory(block), 0o600, rootOwner)
		if err != nil {
			return nil, err
		}
		it.Detail = "new ed25519 key: " + why
		items = append(items, it)
	}
	pub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		return items, err
	}
	it, err := w.file(d, name+".pub", ssh.MarshalAuthorizedKey(pub), 0o644, rootOwner)
	if err != nil {
		return items, err
	}
	if it.Status != Unchanged {
		it.Detail = ssh.FingerprintSHA256(pub)
	}
	return append(items, it), nil
}

// CheckHostKey says why key (an OpenSSH private key) and pub (its
// authorized_keys line) are not an ed25519 host key pair sshd can use.
func CheckHostKey(key, pub []byte) error {
	k, err := parseHostKey(key)
	if err != nil {
		return err
	}
	p, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil {
		return fmt.Errorf("public key: %w", err)
	}
	want, err := ssh.NewPublicKey(k.Public())
	if err != nil {
		return err
	}
	if !bytes.Equal(p.Marshal(), want.Marshal()) {
		return errors.New("the public key does not belong to the private key")
	}
	return nil
}

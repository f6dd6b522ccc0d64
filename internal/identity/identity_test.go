package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"

	"github.com/nodebake/nodebake/internal/firstboot"
)

const torrc = `HiddenServiceDir /var/lib/tor/hidden_service_fulcrum_tcp_ssl/
HiddenServicePort 50001 127.0.0.1:50001
HiddenServicePort 50002 127.0.0.1:50002
HiddenServiceDir /var/lib/tor/hidden_service_ssh/
HiddenServicePort 22 127.0.0.1:22
`

const passwd = `root:x:0:0:root:/root:/bin/bash
debian-tor:x:101:102::/var/lib/tor:/bin/false
admin:x:1000:1000::/home/admin:/bin/bash
bitcoin:x:1001:1001::/home/bitcoin:/usr/sbin/nologin
fulcrum:x:1002:1002::/home/fulcrum:/usr/sbin/nologin
`

func put(t *testing.T, root, p string, data []byte, mode fs.FileMode) {
	t.Helper()
	p = filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// device makes a fresh device root with its own keys, as the first-boot
// agent and tor leave it; withExtras adds the override files and admin's
// authorized_keys.
func device(t *testing.T, withExtras bool) string {
	t.Helper()
	root := t.TempDir()
	put(t, root, "/etc/passwd", []byte(passwd), 0o644)
	put(t, root, "/etc/tor/torrc", []byte(torrc), 0o644)
	put(t, root, "/etc/hostname", []byte("minibolt\n"), 0o644)
	// Fulcrum's pair.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"Fulcrum"}}, NotBefore: time.Now(), NotAfter: time.Now().AddDate(1, 0, 0)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	pk, _ := x509.MarshalPKCS8PrivateKey(key)
	put(t, root, firstboot.FulcrumKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600)
	put(t, root, firstboot.FulcrumCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	// SSH host key.
	_, hk, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(hk, "")
	pub, _ := ssh.NewPublicKey(hk.Public())
	put(t, root, firstboot.HostKeyPath, pem.EncodeToMemory(block), 0o600)
	put(t, root, firstboot.HostKeyPath+".pub", ssh.MarshalAuthorizedKey(pub), 0o644)
	// Tor's onion services.
	for _, name := range []string{"hidden_service_fulcrum_tcp_ssl", "hidden_service_ssh"} {
		dir := filepath.Join(TorDir, name)
		opub, osec, _ := ed25519.GenerateKey(rand.Reader)
		put(t, root, filepath.Join(dir, "hs_ed25519_secret_key"), append([]byte(torSecretHeader), osec...), 0o600)
		put(t, root, filepath.Join(dir, "hs_ed25519_public_key"), append([]byte(torPublicHeader), opub...), 0o600)
		put(t, root, filepath.Join(dir, "hostname"), []byte(OnionAddress(opub)+"\n"), 0o600)
	}
	if withExtras {
		put(t, root, firstboot.BitcoinOverride, []byte("maxconnections=40\n"), 0o640)
		put(t, root, firstboot.FulcrumOverride, []byte("peering = false\n"), 0o640)
		put(t, root, "/home/admin/.ssh/authorized_keys", []byte("ssh-ed25519 AAAA admin@laptop\n"), 0o600)
	} else {
		os.MkdirAll(filepath.Join(root, "home/admin"), 0o750)
		os.MkdirAll(filepath.Join(root, "data/bitcoin"), 0o750)
	}
	return root
}

// recorder notes the owners Restore sets, by inode: tests run without root.
type recorder map[uint64]firstboot.Owner

func (r recorder) Owner(f *os.File) (firstboot.Owner, error) { return firstboot.Owner{}, nil }
func (r recorder) SetOwner(f *os.File, o firstboot.Owner) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	r[fi.Sys().(*syscall.Stat_t).Ino] = o
	return nil
}

func (r recorder) of(t *testing.T, p string) (firstboot.Owner, bool) {
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := r[fi.Sys().(*syscall.Stat_t).Ino]
	return o, ok
}

// snapshot is every file under root with its mode and content.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := d.Info()
		v := fi.Mode().String()
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		}
		if d.Type()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			v += " -> " + l
		}
		m[strings.TrimPrefix(p, root)] = v
		return nil
	})
	return m
}

func backup(t *testing.T, root, pass string) []byte {
	t.Helper()
	r, err := age.NewScryptRecipient(pass)
	if err != nil {
		t.Fatal(err)
	}
	r.SetWorkFactor(10) // fast tests; nodectl uses age's default
	var buf bytes.Buffer
	if _, _, err := Backup(root, &buf, time.Now(), r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func open(archive []byte, pass string) (Manifest, map[string][]byte, error) {
	id, err := age.NewScryptIdentity(pass)
	if err != nil {
		return Manifest{}, nil, err
	}
	return Open(bytes.NewReader(archive), id)
}

func TestBackupRestore(t *testing.T) {
	a, b := device(t, true), device(t, false)
	archive := backup(t, a, "correct horse")
	m, files, err := open(archive, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 13 || m.Hostname != "minibolt" {
		t.Fatalf("manifest: %d files, hostname %q", len(m.Files), m.Hostname)
	}
	rec := recorder{}
	done, err := Restore(b, rec, m, files)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 13 {
		t.Errorf("restored %d files", len(done))
	}
	owners := map[string]firstboot.Owner{"root": {UID: 0, GID: 0}, "debian-tor": {UID: 101, GID: 102}, "admin": {UID: 1000, GID: 1000}, "bitcoin": {UID: 1001, GID: 1001}, "fulcrum": {UID: 1002, GID: 1002}}
	list, _ := specs(b)
	for _, s := range list {
		want, _ := os.ReadFile(filepath.Join(a, s.Path))
		got, err := os.ReadFile(filepath.Join(b, s.Path))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: not restored (%v)", s.Path, err)
			continue
		}
		fi, _ := os.Stat(filepath.Join(b, s.Path))
		if fi.Mode().Perm() != s.Mode {
			t.Errorf("%s: mode %v, want %v", s.Path, fi.Mode().Perm(), s.Mode)
		}
		if o, ok := rec.of(t, filepath.Join(b, s.Path)); !ok || o != owners[s.Owner] {
			t.Errorf("%s: owner %v (set: %v), want %s's", s.Path, o, ok, s.Owner)
		}
	}
	// A fresh device's admin has no ~/.ssh: it is made, admin's, 0700.
	ssh := filepath.Join(b, "home/admin/.ssh")
	if fi, err := os.Stat(ssh); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("~admin/.ssh: %v %v", fi, err)
	} else if o, ok := rec.of(t, ssh); !ok || o != owners["admin"] {
		t.Errorf("~admin/.ssh owner %v", o)
	}
	// No temporary file left behind.
	for p := range snapshot(t, b) {
		if strings.Contains(p, ".restore-") {
			t.Errorf("left behind: %s", p)
		}
	}
}

// A wrong passphrase, or an archive damaged or cut anywhere, restores
// nothing: it does not even get past Open.
func TestBadArchivesRestoreNothing(t *testing.T) {
	a := device(t, true)
	archive := backup(t, a, "correct horse")
	if _, _, err := open(archive, "wrong horse"); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Errorf("wrong passphrase: %v", err)
	}
	for _, at := range []int{len(archive) / 2, len(archive) - 20, len(archive) - 1} {
		bad := bytes.Clone(archive)
		bad[at] ^= 0x40
		if _, _, err := open(bad, "correct horse"); err == nil {
			t.Errorf("a byte flipped at %d of %d: opened", at, len(archive))
		}
	}
	for _, n := range []int{len(archive) - 1, len(archive) - 100, 300} {
		if _, _, err := open(archive[:n], "correct horse"); err == nil {
			t.Errorf("cut to %d of %d bytes: opened", n, len(archive))
		}
	}
}

// Restore refuses an archive of another image (another set of onion
// services) before it writes anything.
func TestOtherImageRestoresNothing(t *testing.T) {
	a, b := device(t, false), device(t, false)
	m, files, err := open(backup(t, a, "pw"), "pw")
	if err != nil {
		t.Fatal(err)
	}
	put(t, b, "/etc/tor/torrc", []byte("HiddenServiceDir /var/lib/tor/hidden_service_other/\nHiddenServicePort 50002 127.0.0.1:50002\n"), 0o644)
	before := snapshot(t, b)
	if _, err := Restore(b, recorder{}, m, files); err == nil || !strings.Contains(err.Error(), "does not fit this image") {
		t.Errorf("restore onto another image: %v", err)
	}
	if after := snapshot(t, b); !equal(before, after) {
		t.Error("the device changed")
	}
}

// A link where a file goes is replaced, never followed; a link where a
// folder is stops the restore, and nothing is restored.
func TestRestoreFollowsNoLink(t *testing.T) {
	a, b := device(t, true), device(t, false)
	m, files, err := open(backup(t, a, "pw"), "pw")
	if err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "victim")
	put(t, "/", outside, []byte("keep me\n"), 0o644)
	key := filepath.Join(b, firstboot.FulcrumKey)
	os.Remove(key)
	if err := os.Symlink(outside, key); err != nil {
		t.Fatal(err)
	}
	// ~admin/.ssh a link to a folder elsewhere.
	elsewhere := t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(b, "home/admin/.ssh")); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, b)
	if _, err := Restore(b, recorder{}, m, files); err == nil {
		t.Fatal("restored through a linked folder")
	}
	if after := snapshot(t, b); !equal(before, after) {
		t.Error("a failed restore changed the device")
	}
	if names, _ := os.ReadDir(elsewhere); len(names) != 0 {
		t.Errorf("wrote into the linked folder: %v", names)
	}
	os.Remove(filepath.Join(b, "home/admin/.ssh"))
	if _, err := Restore(b, recorder{}, m, files); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(outside); string(got) != "keep me\n" {
		t.Errorf("wrote through the link: %q", got)
	}
	if fi, _ := os.Lstat(key); !fi.Mode().IsRegular() {
		t.Errorf("%s is still a link", firstboot.FulcrumKey)
	}
}

// Backup refuses to write an archive that could not be restored.
func TestBackupChecksWhatItSaves(t *testing.T) {
	a := device(t, false)
	put(t, a, "/var/lib/tor/hidden_service_ssh/hostname", []byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.onion\n"), 0o600)
	r, _ := age.NewScryptRecipient("pw")
	var buf bytes.Buffer
	if _, _, err := Backup(a, &buf, time.Now(), r); err == nil || !strings.Contains(err.Error(), "does not belong to the public key") {
		t.Errorf("backup of a mismatched onion service: %v", err)
	}
	if buf.Len() != 0 {
		t.Error("wrote an archive anyway")
	}
	b := device(t, false)
	other := device(t, false)
	pub, _ := os.ReadFile(filepath.Join(other, firstboot.HostKeyPath+".pub"))
	put(t, b, firstboot.HostKeyPath+".pub", pub, 0o644)
	if _, _, err := Backup(b, &buf, time.Now(), r); err == nil || !strings.Contains(err.Error(), "SSH host key") {
		t.Errorf("backup of a host key with another device's .pub: %v", err)
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

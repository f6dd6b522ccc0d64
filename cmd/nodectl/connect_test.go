package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/internal/pairing"
)

// connectRoot is a device root as the admin sees it after boot: tor's
// configuration and the published copy, no readable sources.
func connectRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"Fulcrum"}}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	onion := strings.Repeat("a", 56) + ".onion"
	for p, data := range map[string]string{
		pairing.Torrc:    "HiddenServiceDir /var/lib/tor/hidden_service_fulcrum_tcp_ssl/\nHiddenServicePort 50001 127.0.0.1:50001\nHiddenServicePort 50002 127.0.0.1:50002\n",
		pairing.HostName: "minibolt\n",
		pairing.CertPath: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		"/var/lib/tor/hidden_service_fulcrum_tcp_ssl/hostname": onion + "\n",
	} {
		p = filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestConnect(t *testing.T) {
	root := connectRoot(t)
	pngs := t.TempDir()
	var out, errs bytes.Buffer
	if code := run([]string{"connect", "--root", root, "--png", pngs}, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	onion := strings.Repeat("a", 56) + ".onion"
	for _, want := range []string{"SHA-256", "Electrum, BlueWallet: " + onion + ":50002:s", "Sparrow:              URL " + onion + "  Port 50001  Use SSL off", "minibolt.local:50002:s", "█"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("nodectl connect lacks %q:\n%s", want, out.String())
		}
	}
	names, _ := os.ReadDir(pngs)
	if len(names) != 4 {
		t.Errorf("--png wrote %d files, want 4 (mDNS and onion, SSL and TCP)", len(names))
	}
	out.Reset()
	if code := run([]string{"connect", "--root", root, "--json"}, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	var info pairing.Info
	if err := json.Unmarshal(out.Bytes(), &info); err != nil {
		t.Fatal(err)
	}
	if info.Onion != onion || len(info.CertSHA256) != 95 || len(info.Endpoints) != 4 {
		t.Errorf("--json: %+v", info)
	}
}

// Backup and restore take the passphrase from a file; without a terminal
// and without one they say what to do.
func TestBackupUsage(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run([]string{"backup", "--root", t.TempDir()}, &out, &errs); code == 0 || !strings.Contains(errs.String(), "usage: nodectl backup -o FILE") {
		t.Errorf("backup without -o: exit %d: %s", code, errs.String())
	}
	errs.Reset()
	if code := run([]string{"restore", "--root", t.TempDir(), "--passphrase-file", "/nonexistent/pw", "x.age"}, &out, &errs); code == 0 || !strings.Contains(errs.String(), "nonexistent") {
		t.Errorf("restore with a missing passphrase file: exit %d: %s", code, errs.String())
	}
}

// The units that run nodectl give it arguments it takes.
func TestUnitArguments(t *testing.T) {
	for _, unit := range []string{"base/etc/systemd/system/nodebake-connect.service", "bitcoind/etc/systemd/system/nodebake-disk-guard.service"} {
		b, err := os.ReadFile(filepath.Join("../../internal/overlays", unit))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			cmd, ok := strings.CutPrefix(l, "ExecStart=/usr/bin/nodectl ")
			if !ok {
				continue
			}
			args := strings.Fields(cmd)
			if _, ok := commands[args[0]]; !ok {
				t.Errorf("%s: no command %q", unit, args[0])
			}
			if args[0] != "connect" {
				continue // it would act on this machine: disk-guard takes no arguments
			}
			// A root of its own: the command fails further on (no passwd),
			// never on its arguments.
			args = append(args, "--root", t.TempDir())
			var out, errs bytes.Buffer
			run(args, &out, &errs)
			if strings.Contains(errs.String(), "invalid value") || strings.Contains(errs.String(), "flag provided but not defined") || strings.Contains(errs.String(), "unknown command") {
				t.Errorf("%s: nodectl %s: %s", unit, cmd, errs.String())
			}
		}
	}
}

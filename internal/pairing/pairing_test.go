package pairing

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
)

const onion = "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.onion"

const torrc = `SocksPort 127.0.0.1:9050
# Onion service fulcrum_tcp_ssl
HiddenServiceDir /var/lib/tor/hidden_service_fulcrum_tcp_ssl/
HiddenServiceVersion 3
HiddenServicePort 50001 127.0.0.1:50001
HiddenServicePort 50002 127.0.0.1:50002

# Onion service ssh
HiddenServiceDir /var/lib/tor/hidden_service_ssh/
HiddenServicePort 22 127.0.0.1:22
`

func put(t *testing.T, root, p, data string) {
	t.Helper()
	p = filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func testCert(t *testing.T) (pemText string, der []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"Fulcrum"}},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), der
}

// fakeRoot is a device root with tor's configuration, the Electrum
// service's address, the certificate and the hostname.
func fakeRoot(t *testing.T) (root string, certDER []byte) {
	root = t.TempDir()
	put(t, root, Torrc, torrc)
	put(t, root, "/var/lib/tor/hidden_service_fulcrum_tcp_ssl/hostname", onion+"\n")
	put(t, root, HostName, "minibolt\n")
	c, der := testCert(t)
	put(t, root, CertPath, c)
	return root, der
}

func wantFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	var parts []string
	for _, b := range sum {
		parts = append(parts, fmt.Sprintf("%02X", b))
	}
	return strings.Join(parts, ":")
}

func TestGather(t *testing.T) {
	root, der := fakeRoot(t)
	info, err := Gather(Config{Root: root, Addrs: func() ([]net.IP, error) { return []net.IP{net.ParseIP("192.168.1.20")}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if info.Onion != onion || info.CertSHA256 != wantFingerprint(der) || len(info.Problems) != 0 {
		t.Fatalf("got %+v", info)
	}
	var got []string
	for _, e := range info.Endpoints {
		got = append(got, e.Via+" "+e.Electrum+" | "+e.Sparrow())
	}
	want := []string{
		"lan 192.168.1.20:50002:s | URL 192.168.1.20  Port 50002  Use SSL on",
		"lan 192.168.1.20:50001:t | URL 192.168.1.20  Port 50001  Use SSL off",
		"mdns minibolt.local:50002:s | URL minibolt.local  Port 50002  Use SSL on",
		"mdns minibolt.local:50001:t | URL minibolt.local  Port 50001  Use SSL off",
		"onion " + onion + ":50002:s | URL " + onion + "  Port 50002  Use SSL on",
		"onion " + onion + ":50001:t | URL " + onion + "  Port 50001  Use SSL off",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("endpoints:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Where the sources are not readable (the admin, on the device), the
// published copy serves; and Publish writes it from the sources.
func TestPublishThenGatherWithoutSources(t *testing.T) {
	root, der := fakeRoot(t)
	owned := false
	p, err := Publish(Config{Root: root}, func(f *os.File) error { owned = true; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !owned || p.CertSHA256 != wantFingerprint(der) || p.Onions["/var/lib/tor/hidden_service_fulcrum_tcp_ssl"] != onion {
		t.Fatalf("published %+v (owner set: %v)", p, owned)
	}
	fi, err := os.Stat(filepath.Join(root, PublishedPath))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("%s: %v %v, want mode 0640", PublishedPath, fi, err)
	}
	issue, err := os.ReadFile(filepath.Join(root, IssuePath))
	if err != nil || !strings.Contains(string(issue), onion) || !strings.Contains(string(issue), p.CertSHA256) {
		t.Fatalf("login notice %q %v", issue, err)
	}
	if fi, _ := os.Stat(filepath.Join(root, IssuePath)); fi.Mode().Perm() != 0o600 {
		t.Errorf("login notice mode %v, want 0600 (root's only)", fi.Mode().Perm())
	}
	os.RemoveAll(filepath.Join(root, "var/lib/tor"))
	os.Remove(filepath.Join(root, CertPath))
	info, err := Gather(Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if info.Onion != onion || info.CertSHA256 != p.CertSHA256 || len(info.Problems) != 0 {
		t.Errorf("from the published copy: %+v", info)
	}
}

// Before tor has written the address Publish fails (and is retried);
// Gather says what is missing instead of printing an empty address.
func TestNoAddressYet(t *testing.T) {
	root, _ := fakeRoot(t)
	os.RemoveAll(filepath.Join(root, "var/lib/tor"))
	if _, err := Publish(Config{Root: root}, nil); err == nil || !strings.Contains(err.Error(), "no onion address") {
		t.Errorf("Publish without an address: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, PublishedPath)); err == nil {
		t.Error("Publish wrote a file without the address")
	}
	info, err := Gather(Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if info.Onion != "" || len(info.Problems) != 1 || !strings.Contains(info.Problems[0], "no onion address yet") {
		t.Errorf("%+v", info)
	}
	for _, e := range info.Endpoints {
		if e.Via == "onion" {
			t.Errorf("onion endpoint without an address: %+v", e)
		}
	}
}

// A hostname file with anything but a v3 address is not passed on.
func TestHostileHostnameFile(t *testing.T) {
	root, _ := fakeRoot(t)
	put(t, root, "/var/lib/tor/hidden_service_fulcrum_tcp_ssl/hostname", "evil.example:1:t\n")
	info, err := Gather(Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if info.Onion != "" {
		t.Errorf("took %q as an onion address", info.Onion)
	}
}

func decode(t *testing.T, img image.Image) string {
	t.Helper()
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("decoding the QR code: %v", err)
	}
	return res.GetText()
}

// terminalImage turns Terminal's half blocks back into pixels: a space is
// two dark modules, a full block two light ones, ▀ light over dark and ▄
// dark over light. It adds a light quiet zone, as a terminal's white text
// around the code would.
func terminalImage(t *testing.T, s string) image.Image {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	const scale, quiet = 4, 4
	w := len([]rune(lines[0]))
	h := 2 * len(lines)
	img := image.NewGray(image.Rect(0, 0, (w+2*quiet)*scale, (h+2*quiet)*scale))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	set := func(x, y int, dark bool) {
		if !dark {
			return
		}
		for dy := range scale {
			for dx := range scale {
				img.SetGray((x+quiet)*scale+dx, (y+quiet)*scale+dy, color.Gray{})
			}
		}
	}
	for row, l := range lines {
		for x, r := range []rune(l) {
			var top, bottom bool
			switch r {
			case ' ':
				top, bottom = true, true
			case '█':
			case '▀':
				bottom = true
			case '▄':
				top = true
			default:
				t.Fatalf("unexpected %q in the terminal QR code", r)
			}
			set(x, 2*row, top)
			set(x, 2*row+1, bottom)
		}
	}
	return img
}

// Every QR code, on the terminal and as a PNG, reads back as its string.
func TestQRCodesDecode(t *testing.T) {
	root, _ := fakeRoot(t)
	info, err := Gather(Config{Root: root, Addrs: func() ([]net.IP, error) { return []net.IP{net.ParseIP("10.0.2.15")}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Endpoints) != 6 {
		t.Fatalf("%d endpoints", len(info.Endpoints))
	}
	for _, e := range info.Endpoints {
		term, err := Terminal(e.Electrum)
		if err != nil {
			t.Fatal(err)
		}
		if got := decode(t, terminalImage(t, term)); got != e.Electrum {
			t.Errorf("terminal QR reads %q, want %q", got, e.Electrum)
		}
		b, err := PNG(e.Electrum)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if got := decode(t, img); got != e.Electrum {
			t.Errorf("PNG QR reads %q, want %q", got, e.Electrum)
		}
	}
}

func TestOnionServices(t *testing.T) {
	got, _ := json.Marshal(OnionServices([]byte(torrc)))
	want := `[{"Dir":"/var/lib/tor/hidden_service_fulcrum_tcp_ssl","Ports":[50001,50002]},{"Dir":"/var/lib/tor/hidden_service_ssh","Ports":[22]}]`
	if string(got) != want {
		t.Errorf("%s\nwant %s", got, want)
	}
}

// Publish runs as root: a link that Fulcrum's or tor's user put in their
// folder is not followed.
func TestPublishFollowsNoLink(t *testing.T) {
	root, _ := fakeRoot(t)
	other, _ := testCert(t)
	elsewhere := filepath.Join(t.TempDir(), "cert.pem")
	put(t, "/", elsewhere, other)
	os.Remove(filepath.Join(root, CertPath))
	if err := os.Symlink(elsewhere, filepath.Join(root, CertPath)); err != nil {
		t.Fatal(err)
	}
	if p, err := Publish(Config{Root: root}, nil); err == nil {
		t.Errorf("published the fingerprint of a linked certificate: %s", p.CertSHA256)
	}
}

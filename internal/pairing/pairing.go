// Package pairing says how a wallet reaches this device's Electrum server
// (Fulcrum): over the LAN by address and by <hostname>.local, and over its
// Tor onion service, each on TCP (50001) and SSL (50002). It gives each way
// as the connection string Electrum and BlueWallet take (host:port:s or
// host:port:t), as the host, port and SSL toggle Sparrow asks for, and as a
// QR code, with the SHA-256 fingerprint of the certificate wallets pin.
//
// Tor's onion service folder and Fulcrum's folder are not readable by the
// admin. Publish, run as root by nodebake-connect.service after tor has
// started, copies what is public about them (the onion addresses and the
// certificate's fingerprint) into PublishedPath, readable by root and the
// admin's group only, and shows them on the console login screen. Gather
// reads the sources where it may and the published copy where it may not.
package pairing

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/nodebake/nodebake/internal/nofollow"
)

// Paths on the device; Config.Root is put in front of them.
const (
	Torrc    = "/etc/tor/torrc"
	CertPath = "/data/fulcrum/cert.pem"
	HostName = "/etc/hostname"
	// PublishedPath holds what Publish copied from the folders the admin
	// may not read. /run is empty at every boot: Publish runs again.
	PublishedPath = "/run/nodebake/connect.json"
	// IssuePath is the console login screen's notice. Root's only, like
	// the one-time password notice: agetty runs as root, and the onion
	// address is not for every service on the device to read.
	IssuePath = "/etc/issue.d/40-nodebake-connect.issue"
)

// Fulcrum's Electrum ports, as the image configures them.
const (
	TCPPort = 50001
	SSLPort = 50002
)

// Endpoint is one way to reach the Electrum server.
type Endpoint struct {
	Via  string `json:"via"` // "lan", "mdns" or "onion"
	Host string `json:"host"`
	Port int    `json:"port"`
	SSL  bool   `json:"ssl"`
	// Electrum is the server string Electrum and BlueWallet take.
	Electrum string `json:"electrum"`
}

func endpoint(via, host string, port int, ssl bool) Endpoint {
	proto := "t"
	if ssl {
		proto = "s"
	}
	return Endpoint{Via: via, Host: host, Port: port, SSL: ssl, Electrum: host + ":" + strconv.Itoa(port) + ":" + proto}
}

// Sparrow is the endpoint as Sparrow's "Private Electrum" form asks for it.
func (e Endpoint) Sparrow() string {
	ssl := "off"
	if e.SSL {
		ssl = "on"
	}
	return fmt.Sprintf("URL %s  Port %d  Use SSL %s", e.Host, e.Port, ssl)
}

// Info is everything a wallet needs.
type Info struct {
	Hostname string `json:"hostname"`
	// Onion is the Electrum onion service's address; empty when tor has
	// not made it yet (Problems says so).
	Onion string `json:"onion"`
	// CertSHA256 is the SHA-256 of Fulcrum's certificate (DER), as
	// `openssl x509 -fingerprint -sha256` prints it.
	CertSHA256 string     `json:"cert_sha256"`
	Endpoints  []Endpoint `json:"endpoints"`
	// Problems are what could not be found, and what to do.
	Problems []string `json:"problems,omitempty"`
}

// Config says where to look. On the device: Root "/", Addrs LANAddrs.
type Config struct {
	Root  string
	Addrs func() ([]net.IP, error)
}

// Published is the file Publish writes.
type Published struct {
	// Onions maps each onion service folder (/var/lib/tor/…) to its address.
	Onions     map[string]string `json:"onions"`
	CertSHA256 string            `json:"cert_sha256"`
}

// LANAddrs are the IPv4 addresses of the device's interfaces, loopback
// and link-local left out. IPv6 is left out too: wallets differ in how
// they take an IPv6 literal in a server string, and <hostname>.local
// covers it where mDNS answers.
func LANAddrs() ([]net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		if ip := n.IP.To4(); ip != nil && ip.IsGlobalUnicast() {
			ips = append(ips, ip)
		}
	}
	return ips, nil
}

func (c Config) path(p string) string { return filepath.Join(c.Root, p) }

// maxRead bounds what is read of a file here.
const maxRead = 1 << 20

// read reads the regular file at the device path p, of at most maxRead
// bytes. It follows no link below the root: run as root by Publish, it
// reads in folders that tor and Fulcrum own.
func (c Config) read(p string) ([]byte, error) {
	root, err := nofollow.Open(c.path("/"))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	d, err := root.OpenDir(strings.TrimPrefix(filepath.Dir(p), "/"))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadFile(filepath.Base(p), maxRead)
}

// OnionService is one HiddenServiceDir of torrc with its ports.
type OnionService struct {
	Dir   string
	Ports []int
}

// OnionServices reads the onion services torrc configures.
func OnionServices(torrc []byte) []OnionService {
	var out []OnionService
	sc := bufio.NewScanner(bytes.NewReader(torrc))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "HiddenServiceDir":
			out = append(out, OnionService{Dir: filepath.Clean(f[1])})
		case "HiddenServicePort":
			if len(out) == 0 {
				continue
			}
			if p, err := strconv.Atoi(f[1]); err == nil {
				out[len(out)-1].Ports = append(out[len(out)-1].Ports, p)
			}
		}
	}
	return out
}

// electrumService is the onion service that carries Fulcrum's ports.
func electrumService(torrc []byte) (OnionService, bool) {
	for _, s := range OnionServices(torrc) {
		if slices.Contains(s.Ports, SSLPort) || slices.Contains(s.Ports, TCPPort) {
			return s, true
		}
	}
	return OnionService{}, false
}

// Fingerprint is the SHA-256 of the first certificate in certPEM, in
// openssl's notation (AA:BB:…).
func Fingerprint(certPEM []byte) (string, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", errors.New("no PEM CERTIFICATE block")
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return "", err
	}
	return FingerprintDER(block.Bytes), nil
}

// FingerprintDER is Fingerprint of a DER certificate.
func FingerprintDER(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// onionAddress checks what tor wrote in a hostname file.
func onionAddress(b []byte) (string, error) {
	s := strings.TrimSpace(string(b))
	if len(s) != 62 || !strings.HasSuffix(s, ".onion") || strings.Trim(s[:56], "abcdefghijklmnopqrstuvwxyz234567") != "" {
		return "", fmt.Errorf("%q is not a v3 onion address", s)
	}
	return s, nil
}

// readPublished reads PublishedPath; nil if it is not there.
func (c Config) readPublished() (*Published, error) {
	b, err := c.read(PublishedPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p Published
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", PublishedPath, err)
	}
	return &p, nil
}

// sources reads the onion addresses and the fingerprint from where tor
// and the first-boot agent keep them. A source that cannot be read is
// left empty and its error returned in errs.
func (c Config) sources() (p Published, errs []error) {
	p.Onions = map[string]string{}
	torrc, err := c.read(Torrc)
	if err != nil {
		errs = append(errs, err)
	}
	for _, s := range OnionServices(torrc) {
		b, err := c.read(filepath.Join(s.Dir, "hostname"))
		if err == nil {
			var addr string
			if addr, err = onionAddress(b); err == nil {
				p.Onions[s.Dir] = addr
				continue
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", filepath.Join(s.Dir, "hostname"), err))
	}
	b, err := c.read(CertPath)
	if err == nil {
		p.CertSHA256, err = Fingerprint(b)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", CertPath, err))
	}
	return p, errs
}

// Gather finds every way to reach the Electrum server.
func Gather(c Config) (Info, error) {
	var info Info
	torrc, err := c.read(Torrc)
	if err != nil {
		return info, fmt.Errorf("reading tor's configuration: %w", err)
	}
	svc, hasOnion := electrumService(torrc)
	src, _ := c.sources()
	pub, perr := c.readPublished()
	if perr != nil {
		info.Problems = append(info.Problems, perr.Error())
	}
	if pub == nil {
		pub = &Published{}
	}
	if hasOnion {
		info.Onion = src.Onions[svc.Dir]
		if info.Onion == "" {
			info.Onion = pub.Onions[svc.Dir]
		}
		if info.Onion == "" {
			info.Problems = append(info.Problems, fmt.Sprintf("no onion address yet: %s is not readable here and %s does not have it (is tor running? `systemctl status tor@default nodebake-connect`)", filepath.Join(svc.Dir, "hostname"), PublishedPath))
		}
	} else {
		info.Problems = append(info.Problems, fmt.Sprintf("%s has no onion service for ports %d/%d", Torrc, TCPPort, SSLPort))
	}
	info.CertSHA256 = src.CertSHA256
	if info.CertSHA256 == "" {
		info.CertSHA256 = pub.CertSHA256
	}
	if info.CertSHA256 == "" {
		info.Problems = append(info.Problems, fmt.Sprintf("no certificate fingerprint: %s is not readable here and %s does not have it (see `systemctl status nodebake-connect`)", CertPath, PublishedPath))
	}
	if b, err := c.read(HostName); err == nil {
		info.Hostname = strings.TrimSpace(string(b))
	}
	var hosts []Endpoint // via and host only
	if c.Addrs != nil {
		ips, err := c.Addrs()
		if err != nil {
			info.Problems = append(info.Problems, "network addresses: "+err.Error())
		}
		for _, ip := range ips {
			hosts = append(hosts, Endpoint{Via: "lan", Host: ip.String()})
		}
	}
	if info.Hostname != "" {
		hosts = append(hosts, Endpoint{Via: "mdns", Host: info.Hostname + ".local"})
	}
	if info.Onion != "" {
		hosts = append(hosts, Endpoint{Via: "onion", Host: info.Onion})
	}
	for _, h := range hosts {
		if h.Via == "onion" && !slices.Contains(svc.Ports, SSLPort) {
			info.Endpoints = append(info.Endpoints, endpoint(h.Via, h.Host, TCPPort, false))
			continue
		}
		info.Endpoints = append(info.Endpoints, endpoint(h.Via, h.Host, SSLPort, true))
		if h.Via != "onion" || slices.Contains(svc.Ports, TCPPort) {
			info.Endpoints = append(info.Endpoints, endpoint(h.Via, h.Host, TCPPort, false))
		}
	}
	return info, nil
}

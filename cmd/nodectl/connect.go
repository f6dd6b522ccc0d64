package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodebake/nodebake/internal/atomicfile"
	"github.com/nodebake/nodebake/internal/firstboot"
	"github.com/nodebake/nodebake/internal/pairing"
)

func connectCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nodectl connect", flag.ContinueOnError)
	root := fs.String("root", "/", "the root filesystem to read")
	asJSON := fs.Bool("json", false, "print the addresses and the fingerprint as JSON")
	pngDir := fs.String("png", "", "also write each QR code as a PNG image into this folder")
	noQR := fs.Bool("no-qr", false, "leave the QR codes out of the text")
	publish := fs.Duration("publish", 0, "root, at boot: copy the onion addresses and the fingerprint for the admin and the login screen, waiting this long for tor (run by nodebake-connect.service)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := pairing.Config{Root: *root}
	if *publish > 0 {
		return publishCmd(c, *publish, stdout)
	}
	if *root == "/" {
		c.Addrs = pairing.LANAddrs
	}
	info, err := pairing.Gather(c)
	if err != nil {
		return err
	}
	if *pngDir != "" {
		if err := writePNGs(*pngDir, info.Endpoints); err != nil {
			return err
		}
	}
	if *asJSON {
		b, err := json.MarshalIndent(info, "", "  ")
		if err != nil {
			return err
		}
		_, err = stdout.Write(append(b, '\n'))
		return err
	}
	return writeConnect(stdout, info, !*noQR)
}

func writeConnect(w io.Writer, info pairing.Info, qr bool) error {
	names := map[string]string{"lan": "LAN", "mdns": "LAN by name (mDNS)", "onion": "Tor onion service"}
	fmt.Fprintf(w, "Fulcrum's TLS certificate, SHA-256 (compare it when a wallet asks to trust it):\n  %s\n", orUnknown(info.CertSHA256))
	for _, e := range info.Endpoints {
		proto := "TCP, no encryption"
		if e.SSL {
			proto = "SSL"
		}
		fmt.Fprintf(w, "\n== %s, %s ==\n", names[e.Via], proto)
		fmt.Fprintf(w, "  Electrum, BlueWallet: %s\n", e.Electrum)
		fmt.Fprintf(w, "  Sparrow:              %s\n", e.Sparrow())
		if e.Via == "onion" {
			fmt.Fprintln(w, "  (through Tor: in Sparrow set the proxy to Tor; Electrum needs its Tor proxy on)")
		}
		if qr {
			s, err := pairing.Terminal(e.Electrum)
			if err != nil {
				return err
			}
			fmt.Fprint(w, s)
		}
	}
	for _, p := range info.Problems {
		fmt.Fprintf(w, "\nwarning: %s\n", p)
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// writePNGs writes one image per endpoint, named for the way and port.
func writePNGs(dir string, eps []pairing.Endpoint) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--png: %w", err)
	}
	for _, e := range eps {
		b, err := pairing.PNG(e.Electrum)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("%s-%s-%d.png", e.Via, strings.NewReplacer(".", "_", ":", "_").Replace(e.Host), e.Port)
		if err := atomicfile.Write(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("--png: %w", err)
		}
	}
	return nil
}

// publishCmd runs at boot after tor: tor writes the onion address once it
// has started, so it waits for it.
func publishCmd(c pairing.Config, wait time.Duration, stdout io.Writer) error {
	if os.Geteuid() != 0 {
		return errors.New("--publish must run as root (nodebake-connect.service runs it at boot)")
	}
	admin, err := firstboot.LookupUser(c.Root, "admin")
	if err != nil {
		return err
	}
	own := func(f *os.File) error { return f.Chown(0, admin.GID) }
	deadline := time.Now().Add(wait)
	for {
		p, err := pairing.Publish(c, own)
		if err == nil {
			fmt.Fprintf(stdout, "published %d onion address(es) and the certificate fingerprint %s\n", len(p.Onions), p.CertSHA256)
			if c.Root == "/" {
				// A login prompt already on screen shows the new notice
				// only when told to.
				if out, err := exec.Command("/sbin/agetty", "--reload").CombinedOutput(); err != nil {
					fmt.Fprintf(stdout, "warning: agetty --reload: %v %s (the login screen shows the addresses after the next login)\n", err, out)
				}
			}
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Second)
	}
}

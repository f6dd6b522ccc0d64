//go:build qemu

package qemutests

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/build"
	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/diskguard"
	"github.com/nodebake/nodebake/internal/electrumtest"
	"github.com/nodebake/nodebake/internal/pairing"
	"github.com/nodebake/nodebake/internal/qemu"
	"github.com/nodebake/nodebake/internal/rootfs"
	"github.com/nodebake/nodebake/internal/testvm"
)

// The verified (stand-in) bitcoind and Fulcrum run as the guide sets them
// up, and a wallet on the host completes an Electrum handshake over the
// forwarded ports, on TCP and on TLS with this device's certificate.
func TestNode(t *testing.T) {
	ports := map[int]int{}
	var fwd []qemu.Forward
	for _, guest := range []int{50001, 50002, 8332} {
		p, err := testvm.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[guest] = p
		fwd = append(fwd, qemu.Forward{HostPort: p, GuestPort: guest})
	}
	g := boot(t, image, qemu.Options{Snapshot: true, Forwards: fwd})
	// At 2 GiB Fulcrum waits for the stand-in bitcoind's initial sync
	// (about 90 s), then indexes; Electrum opens once it is up to date.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	t.Run("installed and running", func(t *testing.T) {
		g.run(t, "ls -l /usr/local/bin/bitcoind /usr/local/bin/bitcoin-cli /usr/local/bin/Fulcrum /usr/local/bin/FulcrumAdmin")
		for _, unit := range []string{"bitcoind", "fulcrum"} {
			if state := g.run(t, "for i in $(seq 300); do systemctl is-active -q "+unit+" && break; sleep 2; done; systemctl is-active "+unit); state != "active" {
				t.Fatalf("%s is %s:\n%s", unit, state, g.run(t, "sudo journalctl -b -u "+unit+" --no-pager | tail -30"))
			}
		}
		if who := g.run(t, "ps -o user= -C bitcoind; ps -o user= -C Fulcrum"); who != "bitcoin\nfulcrum" {
			t.Errorf("bitcoind and Fulcrum run as %q, want bitcoin and fulcrum", who)
		}
		// Cookie auth readable by group bitcoin (admin is a member).
		if perm := g.run(t, "sudo stat -c '%a %U:%G' /data/bitcoin/.cookie"); perm != "640 bitcoin:bitcoin" {
			t.Errorf("cookie %s, want 640 bitcoin:bitcoin", perm)
		}
		if out := g.run(t, "bitcoin-cli -datadir=/data/bitcoin getblockchaininfo"); !strings.Contains(out, `"chain"`) {
			t.Errorf("bitcoin-cli as admin: %s", out)
		}
		waitElectrum(t, g)
		for _, unit := range []string{"bitcoind", "fulcrum"} {
			got := g.run(t, "systemctl show -p ProtectSystem -p NoNewPrivileges -p PrivateTmp "+unit)
			for _, want := range []string{"NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectSystem=strict"} {
				if !strings.Contains(got, want) {
					t.Errorf("%s hardening lacks %s: %q", unit, want, got)
				}
			}
		}
	})

	t.Run("loopback only", func(t *testing.T) {
		listen := g.run(t, "ss -ltnH")
		for _, port := range []string{"8332", "8433", "8000"} {
			for _, l := range strings.Split(listen, "\n") {
				if f := strings.Fields(l); len(f) >= 4 && strings.HasSuffix(f[3], ":"+port) && !strings.HasPrefix(f[3], "127.0.0.1:") {
					t.Errorf("port %s listens beyond loopback: %s", port, l)
				}
			}
		}
		// From the host, through the forwarded port: no RPC answer.
		client := &http.Client{Timeout: 10 * time.Second}
		resp, err := client.Post(fmt.Sprintf("http://127.0.0.1:%d/", ports[8332]), "application/json", strings.NewReader(`{"method":"getblockchaininfo"}`))
		if err == nil {
			resp.Body.Close()
			t.Errorf("bitcoind RPC answered from outside the device: %s", resp.Status)
		}
	})

	t.Run("electrum tcp", func(t *testing.T) {
		c := dialElectrum(ctx, t, fmt.Sprintf("127.0.0.1:%d", ports[50001]), nil)
		server, proto, err := c.ServerVersion(ctx, "nodebake-test", "1.4")
		if err != nil || !strings.Contains(server, "Fulcrum") {
			t.Fatalf("server.version: %q %q %v", server, proto, err)
		}
		banner, err := c.Banner(ctx)
		if err != nil || !strings.Contains(banner, rootfs.DemoNotice) {
			t.Errorf("banner %q, %v: want the DEMO notice", banner, err)
		}
		if h, hdr, err := c.HeadersSubscribe(ctx); err != nil || len(hdr) != 160 {
			t.Errorf("blockchain.headers.subscribe: height %d header %q: %v", h, hdr, err)
		}
	})

	t.Run("electrum tls", func(t *testing.T) {
		block, _ := pem.Decode([]byte(g.run(t, "sudo cat /data/fulcrum/cert.pem")))
		if block == nil {
			t.Fatal("no PEM certificate in /data/fulcrum/cert.pem")
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		c := dialElectrum(ctx, t, fmt.Sprintf("127.0.0.1:%d", ports[50002]), electrumtest.Pinned(cert))
		if !c.PeerCertificate().Equal(cert) {
			t.Fatal("port 50002 presents another certificate than /data/fulcrum/cert.pem")
		}
		if _, _, err := c.ServerVersion(ctx, "nodebake-test", "1.4"); err != nil {
			t.Fatal(err)
		}
		if banner, err := c.Banner(ctx); err != nil || banner == "" {
			t.Errorf("banner over TLS: %q %v", banner, err)
		}
	})

	t.Run("health", func(t *testing.T) {
		out, err := g.ssh.Run("sudo nodectl health -wait 2m")
		if err != nil || !strings.Contains(out, "bitcoind") || !strings.Contains(out, "Fulcrum") {
			t.Errorf("nodectl health: %v\n%s", err, out)
		}
	})

	t.Run("demo everywhere", func(t *testing.T) {
		if osr := g.run(t, "cat /etc/os-release"); !strings.Contains(osr, rootfs.DemoNotice) {
			t.Errorf("os-release does not say DEMO:\n%s", osr)
		}
		var m contract.Manifest
		if err := json.Unmarshal([]byte(g.run(t, "cat /usr/share/nodebake/manifest.json")), &m); err != nil {
			t.Fatal(err)
		}
		if m.Demo != rootfs.DemoNotice || len(m.Artifacts) != 2 {
			t.Errorf("manifest demo %q, artifacts %+v", m.Demo, m.Artifacts)
		}
		for _, a := range m.Artifacts {
			if len(a.Signers) == 0 || len(a.SHA256) != 64 {
				t.Errorf("artifact %s recorded without its verification: %+v", a.Kind, a)
			}
		}
		if fv := g.run(t, "cat /"+build.FulcrumVersionPath); fv != "2.1.1" {
			t.Errorf("fulcrum-version %q", fv)
		}
		if _, err := g.vm.WaitConsole(ctx, regexp.MustCompile(`\*\*\* DEMO — stand-in binaries, not for real use \*\*\*`)); err != nil {
			t.Errorf("console login screen does not say DEMO: %v", err)
		}
	})

	// What `nodectl connect` prints, run as admin without sudo, is what tor
	// and Fulcrum really use: the address in tor's own hostname file, and
	// the fingerprint of the certificate served on 50002 (fetched here
	// through the forwarded port).
	t.Run("connect", func(t *testing.T) {
		g.run(t, "for i in $(seq 150); do systemctl is-active -q nodebake-connect && break; sleep 2; done")
		var info pairing.Info
		if err := json.Unmarshal([]byte(g.run(t, "nodectl connect --json")), &info); err != nil {
			t.Fatal(err)
		}
		torHost := g.run(t, "sudo cat /var/lib/tor/hidden_service_fulcrum_tcp_ssl/hostname")
		if info.Onion == "" || info.Onion != torHost {
			t.Errorf("nodectl connect as admin says onion %q, tor's hostname file %q", info.Onion, torHost)
		}
		c := dialElectrum(ctx, t, fmt.Sprintf("127.0.0.1:%d", ports[50002]), &tls.Config{InsecureSkipVerify: true})
		if served := pairing.FingerprintDER(c.PeerCertificate().Raw); info.CertSHA256 != served {
			t.Errorf("nodectl connect says fingerprint %s, port 50002 serves %s", info.CertSHA256, served)
		}
		want := map[string]bool{info.Onion + ":50002:s": true, info.Onion + ":50001:t": true, "minibolt.local:50002:s": true, "10.0.2.15:50002:s": true}
		for _, e := range info.Endpoints {
			delete(want, e.Electrum)
		}
		if len(want) > 0 || len(info.Problems) > 0 {
			t.Errorf("endpoints lack %v; problems %q", want, info.Problems)
		}
		// The text form, with QR codes, and the PNGs.
		if out := g.run(t, "nodectl connect --png /tmp/qr && ls /tmp/qr | wc -l"); !strings.Contains(out, info.CertSHA256) || !strings.Contains(out, "█") || !strings.HasSuffix(out, fmt.Sprint(len(info.Endpoints))) {
			t.Errorf("nodectl connect --png:\n%s", out)
		}
		if perm := g.run(t, "stat -c '%a %U:%G' /run/nodebake/connect.json; sudo stat -c '%a %U' /etc/issue.d/40-nodebake-connect.issue"); perm != "640 root:admin\n600 root" {
			t.Errorf("published files: %q, want 640 root:admin and 600 root", perm)
		}
		// After the DEMO notice (the subtest before waited for it): the
		// login screen shows /etc/issue, then /etc/issue.d.
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if _, err := g.vm.WaitConsole(cctx, regexp.MustCompile(regexp.QuoteMeta(info.Onion))); err != nil {
			t.Errorf("console login screen does not show the onion address: %v", err)
		}
		if _, err := g.vm.WaitConsole(cctx, regexp.MustCompile(regexp.QuoteMeta(info.CertSHA256))); err != nil {
			t.Errorf("console login screen does not show the fingerprint: %v", err)
		}
	})

	t.Run("stop fulcrum", func(t *testing.T) {
		g.run(t, "sudo systemctl stop fulcrum")
		if st := g.run(t, "systemctl show -p Result -p ExecMainCode -p ExecMainStatus fulcrum"); !strings.Contains(st, "Result=success") || !strings.Contains(st, "ExecMainStatus=0") {
			t.Errorf("fulcrum did not stop cleanly: %s\n%s", st, g.run(t, "sudo journalctl -b -u fulcrum --no-pager | tail -15"))
		}
	})

	// Guardrails: the journal on /data is capped, and when /data is about
	// to fill up bitcoind stops cleanly (its own shutdown, not a crash),
	// status and the console say why, and it starts again once there is
	// room.
	t.Run("disk guard", func(t *testing.T) {
		if conf := g.run(t, "systemd-analyze cat-config systemd/journald.conf"); !strings.Contains(conf, "\nSystemMaxUse=256M") {
			t.Errorf("journald's configuration has no 256 MiB cap:\n%s", conf)
		}
		// What journald applies: the cap, or less where the disk is small.
		j := g.run(t, "sudo journalctl -b -u systemd-journald --no-pager | grep 'System Journal' | tail -1")
		var max float64
		if m := regexp.MustCompile(`max ([0-9.]+)M`).FindStringSubmatch(j); m == nil {
			t.Errorf("journald does not say its cap: %q", j)
		} else if fmt.Sscan(m[1], &max); max > 256 {
			t.Errorf("journald caps the system journal at %sM, more than 256M: %q", m[1], j)
		}
		var size, avail uint64
		if _, err := fmt.Sscan(g.run(t, "df -B1 --output=size,avail /data | tail -1"), &size, &avail); err != nil {
			t.Fatal(err)
		}
		limit := diskguard.Limit(size)
		if avail < 2*limit {
			t.Fatalf("/data has %d bytes free, under twice the guard's limit %d before the test fills it", avail, limit)
		}
		g.run(t, fmt.Sprintf("sudo fallocate -l %d /data/fill && sudo systemctl start nodebake-disk-guard.service", avail-limit/2))
		if st := g.run(t, "systemctl is-active bitcoind fulcrum; true"); st != "inactive\ninactive" {
			t.Errorf("with /data nearly full bitcoind and Fulcrum are %q, want inactive", st)
		}
		if st := g.run(t, "systemctl show -p Result bitcoind"); st != "Result=success" {
			t.Errorf("bitcoind did not stop cleanly: %s", st)
		}
		if out, _ := g.ssh.Run("sudo nodectl status"); !strings.Contains(out, "BITCOIND AND FULCRUM STOPPED") || !strings.Contains(out, "stopped cleanly before the disk filled up") {
			t.Errorf("nodectl status does not say why:\n%s", out)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if _, err := g.vm.WaitConsole(cctx, regexp.MustCompile(`stopped cleanly before the disk filled up`)); err != nil {
			t.Errorf("the console does not say why: %v", err)
		}
		// The condition keeps a restart from undoing it.
		g.ssh.Run("sudo systemctl start bitcoind")
		if st := g.run(t, "systemctl is-active bitcoind; true"); st != "inactive" {
			t.Errorf("bitcoind started with /data nearly full: %s", st)
		}
		g.run(t, "sudo rm /data/fill && sudo systemctl start nodebake-disk-guard.service")
		if st := g.run(t, "systemctl is-active bitcoind; test -e /run/nodebake/disk-full && echo marker left; true"); st != "active" {
			t.Errorf("after freeing /data: %q, want bitcoind active and no marker", st)
		}
	})
}

// dialElectrum retries until Fulcrum's listener is up (it opens once bitcoind
// answered) or ctx ends.
func dialElectrum(ctx context.Context, t *testing.T, addr string, tlsConf *tls.Config) *electrumtest.Client {
	t.Helper()
	var last error
	for ctx.Err() == nil {
		c, err := electrumtest.Dial(ctx, addr, tlsConf)
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
		last = err
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("electrum %s: %v", addr, last)
	return nil
}

// waitElectrum waits, inside the guest, until Fulcrum listens on 50001.
// Like upstream's, the stand-in opens its Electrum and admin ports only
// once it has indexed up to bitcoind's tip after the initial sync, and
// QEMU's forwarded port accepts connections before anything listens
// behind it, so a dial from the host proves nothing.
func waitElectrum(t *testing.T, g *booted) {
	t.Helper()
	if out := g.run(t, "for i in $(seq 300); do ss -ltnH 'sport = :50001' | grep -q . && break; sleep 2; done; ss -ltnH 'sport = :50001'"); out == "" {
		t.Fatalf("Fulcrum does not listen on 50001 after 10 minutes:\n%s", g.run(t, "sudo journalctl -b --no-pager -u fulcrum -u nodebake-sync-watch | tail -30"))
	}
}

// Fulcrum 1.11.1, the guide's version, builds and runs too: the agent gives
// it utxo_cache, which 2.x would refuse.
func TestFulcrum1x(t *testing.T) {
	in := strings.Replace(keyedSpec, `version: "2.1.1"`, `version: "1.11.1"`, 1)
	if in == keyedSpec {
		t.Fatal(`image.yaml pins no Fulcrum version "2.1.1" to swap`)
	}
	spec, err := demoSpec([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	specFile, img := filepath.Join(dir, "image.yaml"), filepath.Join(dir, "fulcrum1.img")
	if err := os.WriteFile(specFile, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nodebakeBin, "build", "-q", "-f", specFile, "-o", img, "--src", "..").CombinedOutput(); err != nil {
		t.Fatalf("build with Fulcrum 1.11.1: %v\n%s", err, out)
	}
	port, err := testvm.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// 4 GiB: below 3 GiB the sizing leaves 1.x no room for utxo_cache.
	g := boot(t, img, qemu.Options{Snapshot: true, MemoryMiB: 4096, Forwards: []qemu.Forward{{HostPort: port, GuestPort: 50001}}})
	if fv := g.run(t, "cat /"+build.FulcrumVersionPath); fv != "1.11.1" {
		t.Fatalf("fulcrum-version %q", fv)
	}
	if conf := g.run(t, "sudo cat /data/fulcrum/fulcrum.conf"); !regexp.MustCompile(`(?m)^utxo_cache = \d+$`).MatchString(conf) {
		t.Errorf("fulcrum.conf for 1.x has no utxo_cache:\n%s", conf)
	}
	// 4 GiB with Fulcrum 1.x: Fulcrum waits for bitcoind's initial sync.
	waitElectrum(t, g)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := dialElectrum(ctx, t, fmt.Sprintf("127.0.0.1:%d", port), nil)
	if server, _, err := c.ServerVersion(ctx, "nodebake-test", "1.4"); err != nil || !strings.Contains(server, "1.11.1") {
		t.Fatalf("server.version: %q %v", server, err)
	}
}

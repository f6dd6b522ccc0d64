package standin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
	"gopkg.in/yaml.v3"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/artifact"
)

// Built once for all tests: compiling the programs is most of the time.
var (
	releases *Releases
	bins     string // the programs, unpacked from the tarballs with tar
)

const genesisHeader = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c"

func TestMain(m *testing.M) {
	os.Exit(func() int {
		tmp, err := os.MkdirTemp("", "standin-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(tmp)
		if releases, err = Build(filepath.Join(tmp, "releases")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		bins = filepath.Join(tmp, "unpacked")
		all := []Release{releases.BitcoinCore}
		for _, v := range FulcrumVersions {
			all = append(all, releases.Fulcrum[v])
		}
		for _, rel := range all {
			to := filepath.Join(bins, rel.Folder)
			os.MkdirAll(to, 0o755)
			out, err := exec.Command("tar", "-xzf", filepath.Join(releases.Dir, rel.Folder, rel.Tarball), "-C", to).CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "tar -x %s: %v\n%s", rel.Tarball, err, out)
				return 1
			}
		}
		return m.Run()
	}())
}

func TestTarballsAreLaidOutAsOfficial(t *testing.T) {
	want := map[string][]string{
		"bitcoin-30.2-x86_64-linux-gnu.tar.gz": {
			"bitcoin-30.2/", "bitcoin-30.2/README.md", "bitcoin-30.2/bin/", "bitcoin-30.2/bin/bitcoin-cli", "bitcoin-30.2/bin/bitcoind",
		},
	}
	for _, v := range FulcrumVersions {
		top := "Fulcrum-" + v + "-x86_64-linux/"
		want["Fulcrum-"+v+"-x86_64-linux.tar.gz"] = []string{
			top, top + "Fulcrum", top + "FulcrumAdmin", top + "LICENSE.txt", top + "fulcrum-example-config.conf",
			top + "fulcrum-quick-config.conf", top + "man/", top + "man/Fulcrum.1", top + "unix-man-page.md",
		}
	}
	paths := map[string]string{releases.BitcoinCore.Tarball: filepath.Join(releases.Dir, "bitcoin-core-30.2", releases.BitcoinCore.Tarball)}
	for _, v := range FulcrumVersions {
		rel := releases.Fulcrum[v]
		paths[rel.Tarball] = filepath.Join(releases.Dir, "fulcrum-"+v, rel.Tarball)
	}
	if len(paths) != len(want) {
		t.Fatalf("releases have tarballs %v, want %d", paths, len(want))
	}
	for name, p := range paths {
		out, err := exec.Command("tar", "--numeric-owner", "-tvzf", p).Output()
		if err != nil {
			t.Fatalf("tar -tvzf %s: %v", name, err)
		}
		// Root-owned, one fixed time: the tarball depends only on its files.
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f := strings.Fields(line); len(f) < 5 || f[1] != "0/0" || f[3] != "2025-01-01" {
				t.Errorf("%s: entry %q is not root-owned with the fixed time", name, line)
			}
		}
		out, err = exec.Command("tar", "-tzf", p).Output()
		if err != nil {
			t.Fatalf("tar -tzf %s: %v", name, err)
		}
		if got := strings.Fields(string(out)); strings.Join(got, " ") != strings.Join(want[name], " ") {
			t.Errorf("tar -tzf %s:\n got %v\nwant %v", name, got, want[name])
		}
	}
	// The programs are static linux/amd64 executables that say what they are.
	for _, p := range []string{
		"bitcoin-core-30.2/bitcoin-30.2/bin/bitcoind", "bitcoin-core-30.2/bitcoin-30.2/bin/bitcoin-cli",
		"fulcrum-2.1.1/Fulcrum-2.1.1-x86_64-linux/Fulcrum", "fulcrum-2.1.1/Fulcrum-2.1.1-x86_64-linux/FulcrumAdmin",
	} {
		f, err := elf.Open(filepath.Join(bins, p))
		if err != nil {
			t.Fatal(err)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked", p)
			}
		}
		if f.Machine != elf.EM_X86_64 {
			t.Errorf("%s is for %v", p, f.Machine)
		}
		f.Close()
	}
	for bin, want := range map[string]string{
		"bitcoin-core-30.2/bitcoin-30.2/bin/bitcoind":        "Bitcoin Core daemon version v30.2.0 (stand-in)",
		"fulcrum-2.1.1/Fulcrum-2.1.1-x86_64-linux/Fulcrum":   "Fulcrum 2.1.1 (stand-in)",
		"fulcrum-1.11.1/Fulcrum-1.11.1-x86_64-linux/Fulcrum": "Fulcrum 1.11.1 (stand-in)",
	} {
		out, err := exec.Command(filepath.Join(bins, bin), "--version").CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) || !strings.Contains(string(out), "STAND-IN") {
			t.Errorf("%s --version: %v\n%s", bin, err, out)
		}
	}
}

func TestSumsAndSignatures(t *testing.T) {
	all := []Release{releases.BitcoinCore}
	for _, v := range FulcrumVersions {
		all = append(all, releases.Fulcrum[v])
	}
	for _, rel := range all {
		folder := filepath.Join(releases.Dir, rel.Folder)
		tgz, err := os.ReadFile(filepath.Join(folder, rel.Tarball))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(tgz)
		sums, err := os.ReadFile(filepath.Join(folder, rel.Sums))
		if err != nil {
			t.Fatal(err)
		}
		if want := hex.EncodeToString(sum[:]) + "  " + rel.Tarball + "\n"; string(sums) != want || rel.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s is %q (Release.SHA256 %s), want %q", rel.Sums, sums, rel.SHA256, want)
		}
		sig, err := os.ReadFile(filepath.Join(folder, rel.Signature))
		if err != nil {
			t.Fatal(err)
		}
		blocks := bytes.Split(bytes.TrimSpace(sig), []byte("-----END PGP SIGNATURE-----"))
		blocks = blocks[:len(blocks)-1]
		if len(blocks) != len(rel.Signers) || len(blocks) != rel.MinSignatures {
			t.Fatalf("%s has %d signature blocks, %d signers, min %d", rel.Signature, len(blocks), len(rel.Signers), rel.MinSignatures)
		}
		// Each block is one signer's, made by that signer's published key.
		for i, s := range rel.Signers {
			keys := readKey(t, s)
			block := append(bytes.TrimSpace(blocks[i]), []byte("\n-----END PGP SIGNATURE-----\n")...)
			ab, err := armor.Decode(bytes.NewReader(block))
			if err != nil {
				t.Fatalf("%s block %d: %v", rel.Signature, i+1, err)
			}
			_, signer, err := openpgp.VerifyDetachedSignature(keys, bytes.NewReader(sums), ab.Body, nil)
			if err != nil {
				t.Fatalf("%s block %d does not verify with %s: %v", rel.Signature, i+1, s.Name, err)
			}
			if got := strings.ToUpper(hex.EncodeToString(signer.PrimaryKey.Fingerprint)); got != s.Fingerprint {
				t.Errorf("%s block %d signed by %s, want %s", rel.Signature, i+1, got, s.Fingerprint)
			}
		}
		gpgVerify(t, rel)
	}
	if n := len(releases.BitcoinCore.Signers); n != 3 {
		t.Errorf("Bitcoin Core has %d builder signatures, want 3", n)
	}
}

func readKey(t *testing.T, s Signer) openpgp.EntityList {
	t.Helper()
	f, err := os.Open(filepath.Join(releases.Dir, s.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys, err := openpgp.ReadArmoredKeyRing(f)
	if err != nil || len(keys) != 1 {
		t.Fatalf("%s: %d keys, %v", s.KeyFile, len(keys), err)
	}
	if got := strings.ToUpper(hex.EncodeToString(keys[0].PrimaryKey.Fingerprint)); got != s.Fingerprint {
		t.Fatalf("%s has fingerprint %s, Signer says %s", s.KeyFile, got, s.Fingerprint)
	}
	return keys
}

// gpgVerify checks the signatures the way a person checks a real release.
func gpgVerify(t *testing.T, rel Release) {
	t.Helper()
	home, err := os.MkdirTemp("", "gpg-") // short: gpg puts sockets in it
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(home)
	gpg := func(args ...string) string {
		out, err := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--status-fd", "1"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	for _, s := range rel.Signers {
		gpg("--import", filepath.Join(releases.Dir, s.KeyFile))
	}
	folder := filepath.Join(releases.Dir, rel.Folder)
	out := gpg("--verify", filepath.Join(folder, rel.Signature), filepath.Join(folder, rel.Sums))
	if n := strings.Count(out, "[GNUPG:] GOODSIG "); n != len(rel.Signers) {
		t.Errorf("gpg --verify %s: %d good signatures, want %d\n%s", rel.Signature, n, len(rel.Signers), out)
	}
}

// The artifacts block is what image.yaml takes, and nodebake's own
// download-and-verify accepts the served releases with it.
func TestArtifactsBlockVerifies(t *testing.T) {
	base, stop := Serve(releases.Dir)
	defer stop()
	for _, v := range FulcrumVersions {
		block, err := releases.ArtifactsFor(base, v)
		if err != nil {
			t.Fatal(err)
		}
		var spec struct {
			Artifacts map[string]artifact.Config `yaml:"artifacts"`
		}
		dec := yaml.NewDecoder(strings.NewReader(block))
		dec.KnownFields(true)
		if err := dec.Decode(&spec); err != nil {
			t.Fatalf("artifacts block does not parse: %v\n%s", err, block)
		}
		want := map[string]int{contract.BitcoinCore: 3, contract.Fulcrum: 1}
		for kind, n := range want {
			c, ok := spec.Artifacts[kind]
			if !ok {
				t.Fatalf("no %s in\n%s", kind, block)
			}
			artifact.Defaults(kind, &c)
			rel, err := artifact.Fetch(context.Background(), c, artifact.FetchOptions{CacheDir: t.TempDir()})
			if err != nil {
				t.Fatalf("%s %s: %v\n%s", kind, c.Version, err, block)
			}
			if len(rel.Signers) != n || len(rel.Unknown) != 0 {
				t.Errorf("%s %s: good signers %v, unknown %v; want %d good", kind, c.Version, rel.Signers, rel.Unknown, n)
			}
		}
		if !strings.Contains(block, `version: "`+v+`"`) {
			t.Errorf("block for Fulcrum %s does not pin it:\n%s", v, block)
		}
	}
	if _, err := releases.ArtifactsFor(base, "1.9.0"); err == nil {
		t.Error("ArtifactsFor accepted a Fulcrum version that was not built")
	}
	if releases.Artifacts(base) != must(releases.ArtifactsFor(base, DefaultFulcrumVersion)) {
		t.Error("Artifacts does not pin the default Fulcrum")
	}
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

// --- running the programs ---

func bin(rel, name string) string {
	switch rel {
	case "bitcoin-core":
		return filepath.Join(bins, "bitcoin-core-30.2", "bitcoin-30.2", "bin", name)
	}
	v := strings.TrimPrefix(rel, "fulcrum-")
	return filepath.Join(bins, rel, "Fulcrum-"+v+"-x86_64-linux", name)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is a running stand-in with its output collected.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func start(t *testing.T, path string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(path, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(path), p.output())
		}
	})
	return p
}

// running fails the test if the process has exited.
func (p *proc) running(t *testing.T) bool {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("%s exited: %v", filepath.Base(p.cmd.Path), p.err)
	default:
	}
	return true
}

// wait waits up to d for the process to exit and returns its status.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s still running after %v:\n%s", p.cmd.Path, d, p.output())
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) signal(t *testing.T, s os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// node is a running stand-in bitcoind.
type node struct {
	*proc
	datadir string
	port    int
	zmq     int
}

func startBitcoind(t *testing.T) *node {
	t.Helper()
	n := &node{datadir: t.TempDir(), port: freePort(t), zmq: freePort(t)}
	conf := fmt.Sprintf("server=1\ntxindex=1\nrpccookieperms=group\nrpcport=%d\nzmqpubhashblock=tcp://127.0.0.1:%d\nincludeconf=user.conf\n", n.port, n.zmq)
	os.WriteFile(filepath.Join(n.datadir, "bitcoin.conf"), []byte(conf), 0o644)
	os.WriteFile(filepath.Join(n.datadir, "user.conf"), []byte("# the user's overrides\n"), 0o644)
	n.proc = start(t, bin("bitcoin-core", "bitcoind"), "-datadir="+n.datadir, "-conf=bitcoin.conf", "-pid=bitcoind.pid")
	waitFor(t, "the cookie", func() bool { _, err := os.Stat(n.cookie()); return err == nil })
	return n
}

func (n *node) cookie() string { return filepath.Join(n.datadir, ".cookie") }

func (n *node) rpc(t *testing.T, auth bool, method string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/", n.port), strings.NewReader(`{"jsonrpc":"1.0","id":"t","method":"`+method+`","params":[]}`))
	if auth {
		c, err := os.ReadFile(n.cookie())
		if err != nil {
			t.Fatal(err)
		}
		user, pass, _ := strings.Cut(string(c), ":")
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reply map[string]any
	json.NewDecoder(resp.Body).Decode(&reply)
	return resp.StatusCode, reply
}

func TestBitcoind(t *testing.T) {
	n := startBitcoind(t)
	fi, err := os.Stat(n.cookie())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("cookie mode %v with rpccookieperms=group, want 0640", fi.Mode().Perm())
	}
	c, _ := os.ReadFile(n.cookie())
	if user, pass, _ := strings.Cut(string(c), ":"); user != "__cookie__" || len(pass) != 64 {
		t.Errorf("cookie %q, want __cookie__:<64 hex>", c)
	}
	status, reply := n.rpc(t, true, "getblockchaininfo")
	res, _ := reply["result"].(map[string]any)
	if status != 200 || res["chain"] != "main" || res["blocks"] != 0.0 || res["initialblockdownload"] != false || res["verificationprogress"] != 1.0 {
		t.Errorf("getblockchaininfo: HTTP %d %v", status, reply)
	}
	if status, _ := n.rpc(t, false, "getblockchaininfo"); status != http.StatusUnauthorized {
		t.Errorf("getblockchaininfo without the cookie: HTTP %d, want 401", status)
	}
	if status, reply := n.rpc(t, true, "getnetworkinfo"); status != 200 || reply["result"].(map[string]any)["version"] != 300200.0 {
		t.Errorf("getnetworkinfo: HTTP %d %v", status, reply)
	}
	out, err := exec.Command(bin("bitcoin-core", "bitcoin-cli"), "-datadir="+n.datadir, "getblockheader", "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f", "false").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != genesisHeader {
		t.Errorf("bitcoin-cli getblockheader: %v\n%s", err, out)
	}
	out, err = exec.Command(bin("bitcoin-core", "bitcoin-cli"), "-datadir="+n.datadir, "getblockchaininfo").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"chain": "main"`) {
		t.Errorf("bitcoin-cli getblockchaininfo: %v\n%s", err, out)
	}
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", n.zmq)); err != nil {
		t.Errorf("zmqpubhashblock port: %v", err)
	} else {
		c.Close()
	}
	if _, err := os.Stat(filepath.Join(n.datadir, "bitcoind.pid")); err != nil {
		t.Errorf("pid file: %v", err)
	}
	n.signal(t, syscall.SIGINT)
	if code := n.wait(t, 5*time.Second); code != 0 {
		t.Errorf("bitcoind exited %d on SIGINT", code)
	}
	for _, f := range []string{".cookie", "bitcoind.pid"} {
		if _, err := os.Stat(filepath.Join(n.datadir, f)); !os.IsNotExist(err) {
			t.Errorf("%s left behind after SIGINT (%v)", f, err)
		}
	}
}

// bitcoin-cli stop is answered before bitcoind goes, as with the real one.
func TestBitcoindStopRPC(t *testing.T) {
	n := startBitcoind(t)
	out, err := exec.Command(bin("bitcoin-core", "bitcoin-cli"), "-datadir="+n.datadir, "stop").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "Bitcoin Core stopping" {
		t.Errorf("bitcoin-cli stop: %v\n%s", err, out)
	}
	if code := n.wait(t, 5*time.Second); code != 0 {
		t.Errorf("bitcoind exited %d after stop", code)
	}
	if _, err := os.Stat(n.cookie()); !os.IsNotExist(err) {
		t.Errorf("cookie left behind after stop (%v)", err)
	}
	out, err = exec.Command(bin("bitcoin-core", "bitcoin-cli"), "-datadir="+n.datadir, "getblockcount").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Could not locate RPC credentials") {
		t.Errorf("bitcoin-cli without a running bitcoind: %v\n%s", err, out)
	}
}

func TestBitcoindRefuses(t *testing.T) {
	for name, conf := range map[string]string{
		"a missing included file": "includeconf=missing.conf\n",
		"a boolean written true":  "server=true\n",
		"a bad rpccookieperms":    "rpccookieperms=everyone\n",
		"another chain":           "testnet=1\n",
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "bitcoin.conf"), []byte(conf), 0o644)
		p := start(t, bin("bitcoin-core", "bitcoind"), "-datadir="+dir, fmt.Sprintf("-rpcport=%d", freePort(t)))
		if code := p.wait(t, 5*time.Second); code != 1 || !strings.Contains(p.output(), "Error: ") {
			t.Errorf("%s: exit %d, want 1 with an error:\n%s", name, code, p.output())
		}
	}
}

// --- Fulcrum ---

type fulcrumSetup struct {
	dir                  string
	conf                 string
	tcp, ssl, admin, sts int
	certPEM              []byte
}

func newFulcrumSetup(t *testing.T, n *node, extra string) *fulcrumSetup {
	t.Helper()
	s := &fulcrumSetup{dir: t.TempDir(), tcp: freePort(t), ssl: freePort(t), admin: freePort(t), sts: freePort(t)}
	cert, key := selfSigned(t)
	s.certPEM = cert
	os.WriteFile(filepath.Join(s.dir, "cert.pem"), cert, 0o644)
	os.WriteFile(filepath.Join(s.dir, "key.pem"), key, 0o600)
	os.WriteFile(filepath.Join(s.dir, "banner.txt"), []byte("Welcome to $SERVER_SUBVERSION on bitcoind $DAEMON_VERSION\n"), 0o644)
	s.conf = filepath.Join(s.dir, "fulcrum.conf")
	conf := fmt.Sprintf(`# as the MiniBolt guide writes it
bitcoind = 127.0.0.1:%d
rpccookie = %s
admin = %d
stats = 127.0.0.1:%d
datadir = %s/fulcrum_db
cert = %s/cert.pem
key = %s/key.pem
ssl = 127.0.0.1:%d
tcp = 127.0.0.1:%d
peering = false
polltime = 0.5
banner = %s/banner.txt
%s`, n.port, n.cookie(), s.admin, s.sts, s.dir, s.dir, s.dir, s.ssl, s.tcp, s.dir, extra)
	os.WriteFile(s.conf, []byte(conf), 0o644)
	return s
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"Fulcrum"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// electrum is a client speaking newline-delimited JSON-RPC.
type electrum struct {
	conn net.Conn
	r    *bufio.Reader
	id   int
}

// dialElectrum connects to addr (with TLS if cfg is set), retrying while
// the port is not open yet.
func dialElectrum(t *testing.T, addr string, cfg *tls.Config) *electrum {
	t.Helper()
	var c net.Conn
	waitFor(t, addr, func() bool {
		var err error
		if cfg != nil {
			c, err = tls.Dial("tcp", addr, cfg)
		} else {
			c, err = net.Dial("tcp", addr)
		}
		return err == nil
	})
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &electrum{conn: c, r: bufio.NewReader(c)}
}

func (e *electrum) call(t *testing.T, method string, params ...any) (json.RawMessage, map[string]any) {
	t.Helper()
	e.id++
	if params == nil {
		params = []any{}
	}
	req, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": e.id, "method": method, "params": params})
	if _, err := e.conn.Write(append(req, '\n')); err != nil {
		t.Fatal(err)
	}
	line, err := e.r.ReadBytes('\n')
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	var reply struct {
		ID     int             `json:"id"`
		Result json.RawMessage `json:"result"`
		Error  map[string]any  `json:"error"`
	}
	if err := json.Unmarshal(line, &reply); err != nil || reply.ID != e.id {
		t.Fatalf("%s: reply %s (%v)", method, line, err)
	}
	return reply.Result, reply.Error
}

// handshake does what a wallet does first and checks the answers.
func handshake(t *testing.T, e *electrum, version string) {
	t.Helper()
	res, rerr := e.call(t, "server.version", "nodebake-test", []string{"1.4", "1.4"})
	if want := `["Fulcrum ` + version + ` (stand-in)","1.4"]`; rerr != nil || string(res) != want {
		t.Errorf("server.version: %s %v, want %s", res, rerr, want)
	}
	res, _ = e.call(t, "server.banner")
	var banner string
	json.Unmarshal(res, &banner)
	if !strings.HasPrefix(banner, Banner+"\n") || !strings.Contains(banner, "Welcome to Fulcrum "+version+" (stand-in) on bitcoind 30.2.0") {
		t.Errorf("server.banner: %q", banner)
	}
	res, _ = e.call(t, "blockchain.headers.subscribe")
	var tip struct {
		Height int    `json:"height"`
		Hex    string `json:"hex"`
	}
	if json.Unmarshal(res, &tip); tip.Height != 0 || tip.Hex != genesisHeader {
		t.Errorf("blockchain.headers.subscribe: %s", res)
	}
	res, _ = e.call(t, "server.features")
	var features map[string]any
	if json.Unmarshal(res, &features); features["genesis_hash"] != "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f" {
		t.Errorf("server.features: %s", res)
	}
	if res, rerr := e.call(t, "server.ping"); rerr != nil || string(res) != "null" {
		t.Errorf("server.ping: %s %v", res, rerr)
	}
}

func stats(t *testing.T, port int) map[string]any {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/stats", port))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st map[string]any
	json.NewDecoder(resp.Body).Decode(&st)
	return st
}

func TestFulcrum(t *testing.T) {
	for _, v := range FulcrumVersions {
		t.Run(v, func(t *testing.T) {
			// Fulcrum starts first, as it may at boot, and waits for bitcoind.
			n := &node{datadir: t.TempDir(), port: freePort(t)}
			extra := "db_mem = 1024.0\n"
			if v == "1.11.1" {
				extra = "utxo-cache = 2000\n" // the guide's 1.11.1 config; gone in 2.x
			}
			s := newFulcrumSetup(t, n, extra)
			f := start(t, bin("fulcrum-"+v, "Fulcrum"), s.conf)
			waitFor(t, "the stats endpoint", func() bool { return f.running(t) && stats(t, s.sts) != nil })
			if st := stats(t, s.sts); st["synced"] != false || st["version"] != v {
				t.Errorf("stats before bitcoind is up: %v", st)
			}
			waitFor(t, "a retry log line", func() bool { return strings.Contains(f.output(), "retrying") })

			startBitcoindAt(t, n)
			waitFor(t, "synced", func() bool { return f.running(t) && stats(t, s.sts)["synced"] == true })
			tcp := dialElectrum(t, fmt.Sprintf("127.0.0.1:%d", s.tcp), nil)
			handshake(t, tcp, v)
			if _, rerr := tcp.call(t, "server.version", "again", "1.4"); rerr == nil {
				t.Error("a second server.version was accepted")
			}

			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(s.certPEM)
			handshake(t, dialElectrum(t, fmt.Sprintf("127.0.0.1:%d", s.ssl), &tls.Config{RootCAs: pool}), v)

			old := dialElectrum(t, fmt.Sprintf("127.0.0.1:%d", s.tcp), nil)
			if _, rerr := old.call(t, "server.version", "old wallet", "1.2"); rerr == nil {
				t.Error("protocol 1.2 was accepted")
			}

			out, err := exec.Command(bin("fulcrum-"+v, "FulcrumAdmin"), "-p", fmt.Sprint(s.admin), "getinfo").CombinedOutput()
			if err != nil || !strings.Contains(string(out), `"version": "`+v+`"`) {
				t.Errorf("FulcrumAdmin getinfo: %v\n%s", err, out)
			}
			if v == DefaultFulcrumVersion {
				out, err := exec.Command(bin("fulcrum-"+v, "FulcrumAdmin"), "-p", fmt.Sprint(s.admin), "stop").CombinedOutput()
				if err != nil {
					t.Errorf("FulcrumAdmin stop: %v\n%s", err, out)
				}
				if code := f.wait(t, 5*time.Second); code != 0 {
					t.Errorf("Fulcrum exited %d after FulcrumAdmin stop", code)
				}
				return
			}
			f.signal(t, syscall.SIGINT)
			t0 := time.Now()
			if code := f.wait(t, 5*time.Second); code != 0 || time.Since(t0) > time.Second {
				t.Errorf("Fulcrum exited %d %v after SIGINT, want 0 within 1s", code, time.Since(t0))
			}
			if !strings.Contains(f.output(), "Caught signal 2") || !strings.Contains(f.output(), "Shutdown complete") {
				t.Errorf("Fulcrum did not log its SIGINT shutdown:\n%s", f.output())
			}
		})
	}
}

// startBitcoindAt starts bitcoind on n's datadir and port.
func startBitcoindAt(t *testing.T, n *node) *proc {
	t.Helper()
	conf := fmt.Sprintf("rpccookieperms=group\nrpcport=%d\n", n.port)
	os.WriteFile(filepath.Join(n.datadir, "bitcoin.conf"), []byte(conf), 0o644)
	return start(t, bin("bitcoin-core", "bitcoind"), "-datadir="+n.datadir)
}

func TestFulcrumConfigIsStrict(t *testing.T) {
	n := &node{datadir: t.TempDir(), port: freePort(t)}
	for _, c := range []struct {
		version, extra, want string
	}{
		{"2.1.1", "utxo-cache = 2000\n", "'utxo-cache': this option was removed in Fulcrum 2.0.0"},
		{"2.1.1", "utxo_cache = 2000\n", "'utxo_cache': this option was removed"},
		{"2.1.1", "db_memory = 100\n", "unknown option 'db_memory': Fulcrum 2.1.1 does not know it"},
		{"1.11.1", "zmq_allow_hashtx = true\n", "unknown option 'zmq_allow_hashtx': Fulcrum 1.11.1 does not know it"},
		{"1.11.1", "peering = maybe\n", "peering = maybe: not a boolean"},
	} {
		s := newFulcrumSetup(t, n, c.extra)
		p := start(t, bin("fulcrum-"+c.version, "Fulcrum"), s.conf)
		if code := p.wait(t, 5*time.Second); code != 1 || !strings.Contains(p.output(), c.want) || !strings.Contains(p.output(), "Use the -h option to show help.") {
			t.Errorf("Fulcrum %s with %q: exit %d, want 1 and %q:\n%s", c.version, c.extra, code, c.want, p.output())
		}
	}
	p := start(t, bin("fulcrum-2.1.1", "Fulcrum"), "--db-upgrade", "x.conf")
	if code := p.wait(t, 5*time.Second); code != 1 || !strings.Contains(p.output(), "Unknown option 'db-upgrade'") {
		t.Errorf("unknown command-line option: exit %d\n%s", code, p.output())
	}
}

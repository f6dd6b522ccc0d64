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
	"strconv"
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
	"github.com/nodebake/nodebake/qemu-tests/standin/internal/ballast"
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
		// The stand-ins hold hundreds of MiB each otherwise; TestMemory
		// turns it back on for its own processes.
		os.Setenv(ballast.SkipEnv, "1")
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
	return startEnv(t, nil, path, args...)
}

// startEnv starts a program with env added to the test's environment.
func startEnv(t *testing.T, env []string, path string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(path, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
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

// waitFor waits up to a minute: under a loaded machine (QEMU runs beside
// the unit tests) touching hundreds of MiB or an index catching up took
// more than 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitForUpTo(t, time.Minute, what, cond)
}

func waitForUpTo(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
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

// startBitcoind starts bitcoind on a chain of the genesis block alone (out
// of IBD at once) unless pace says otherwise (its standin.conf).
func startBitcoind(t *testing.T, pace ...string) *node {
	t.Helper()
	n := &node{datadir: t.TempDir(), port: freePort(t), zmq: freePort(t)}
	conf := fmt.Sprintf("server=1\ntxindex=1\nrpccookieperms=group\nrpcport=%d\nzmqpubhashblock=tcp://127.0.0.1:%d\nincludeconf=user.conf\n", n.port, n.zmq)
	os.WriteFile(filepath.Join(n.datadir, "bitcoin.conf"), []byte(conf), 0o644)
	writePace(n.datadir, pace)
	os.WriteFile(filepath.Join(n.datadir, "user.conf"), []byte("# the user's overrides\n"), 0o644)
	n.proc = start(t, bin("bitcoin-core", "bitcoind"), "-datadir="+n.datadir, "-conf=bitcoin.conf", "-pid=bitcoind.pid")
	waitFor(t, "the cookie", func() bool { _, err := os.Stat(n.cookie()); return err == nil })
	return n
}

// writePace writes a stand-in's standin.conf: chain_length = 0 unless
// lines say otherwise.
func writePace(dir string, lines []string) {
	if len(lines) == 0 {
		lines = []string{"chain_length = 0"}
	}
	os.WriteFile(filepath.Join(dir, "standin.conf"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

func (n *node) cookie() string { return filepath.Join(n.datadir, ".cookie") }

// call makes an RPC call with the cookie and decodes its result into out;
// it returns the HTTP status and the error message, if any.
func (n *node) call(t *testing.T, out any, method string, params ...any) (int, string) {
	t.Helper()
	if params == nil {
		params = []any{}
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "1.0", "id": "t", "method": method, "params": params})
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/", n.port), bytes.NewReader(body))
	c, err := os.ReadFile(n.cookie())
	if err != nil {
		t.Fatal(err)
	}
	user, pass, _ := strings.Cut(string(c), ":")
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reply struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		t.Fatalf("%s: HTTP %d: %v", method, resp.StatusCode, err)
	}
	if reply.Error != nil {
		return resp.StatusCode, reply.Error.Message
	}
	if out != nil {
		if err := json.Unmarshal(reply.Result, out); err != nil {
			t.Fatalf("%s: %s: %v", method, reply.Result, err)
		}
	}
	return resp.StatusCode, ""
}

type chainInfo struct {
	Blocks               int     `json:"blocks"`
	Headers              int     `json:"headers"`
	BestBlockHash        string  `json:"bestblockhash"`
	InitialBlockDownload bool    `json:"initialblockdownload"`
	VerificationProgress float64 `json:"verificationprogress"`
}

func (n *node) chainInfo(t *testing.T) chainInfo {
	t.Helper()
	var ci chainInfo
	if status, msg := n.call(t, &ci, "getblockchaininfo"); status != 200 {
		t.Fatalf("getblockchaininfo: HTTP %d %s", status, msg)
	}
	return ci
}

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
			if st := stats(t, s.sts); indexedHeight(st) != -1 || st["Server Manager"] != nil || st["Stand-in"].(map[string]any)["version"] != v {
				t.Errorf("stats before bitcoind is up: %v", st)
			}
			waitFor(t, "a retry log line", func() bool { return strings.Contains(f.output(), "retrying") })

			startBitcoindAt(t, n)
			waitFor(t, "up-to-date", func() bool { return f.running(t) && stats(t, s.sts)["Server Manager"] != nil })
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
			if err != nil || !strings.Contains(string(out), `"version": "Fulcrum `+v+` (stand-in)"`) || !strings.Contains(string(out), `"height": 0`) {
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
	writePace(n.datadir, nil)
	return start(t, bin("bitcoin-core", "bitcoind"), "-datadir="+n.datadir)
}

// indexedHeight is Fulcrum's indexed height in its /stats answer (as
// nodectl reads it): Controller "Header count" - 1; -2 without one.
func indexedHeight(st map[string]any) int {
	c, _ := st["Controller"].(map[string]any)
	hc, ok := c["Header count"].(float64)
	if !ok {
		return -2
	}
	return int(hc) - 1
}

// Fulcrum reads its config as the real one does: the stand-in refuses only
// what Fulcrum refuses.
func TestFulcrumConfigLikeUpstream(t *testing.T) {
	n := &node{datadir: t.TempDir(), port: freePort(t)}
	for _, c := range []struct {
		version, extra, want string
	}{
		{"2.1.1", "utxo-cache = 2000\n", "The conf file option `utxo-cache` has been removed from Fulcrum"},
		{"2.1.1", "UTXO_CACHE = 2000\n", "The UTXO cache facility has been removed, use `db_mem` instead!"},
		{"2.1.1", "fast-sync = 2000\n", "The conf file option `fast-sync` has been removed"},
		{"2.1.1", "db_mem = 10\n", "db_mem: bad value"},
		{"1.11.1", "anon_logs = maybe\n", "anon_logs: bad value. Specify a boolean value such as 0, 1, true, false, yes, no"},
	} {
		s := newFulcrumSetup(t, n, c.extra)
		p := start(t, bin("fulcrum-"+c.version, "Fulcrum"), s.conf)
		if code := p.wait(t, 5*time.Second); code != 1 || !strings.Contains(p.output(), c.want) || !strings.Contains(p.output(), "Use the -h option to show help.") {
			t.Errorf("Fulcrum %s with %q: exit %d, want 1 and %q:\n%s", c.version, c.extra, code, c.want, p.output())
		}
	}
	// Unknown and misspelt names start anyway; peering = maybe is false.
	s := newFulcrumSetup(t, n, "db_memory = 100\ndb-mem = 100\nzmq_allow_hashtx = maybe\npeering = maybe\n")
	p := start(t, bin("fulcrum-1.11.1", "Fulcrum"), s.conf)
	waitFor(t, "the stats endpoint", func() bool { return p.running(t) && stats(t, s.sts) != nil })
	if conf := stats(t, s.sts)["Config"].(map[string]any); conf["db_mem"] != 512.0 || conf["peering"] != false {
		t.Errorf("1.11.1 with db-mem = 100, peering = maybe: Config %v, want db_mem 512 and peering false", conf)
	}
	p = start(t, bin("fulcrum-1.11.1", "Fulcrum"), "--db-upgrade", s.conf)
	if code := p.wait(t, 5*time.Second); code != 1 || !strings.Contains(p.output(), "Unknown option 'db-upgrade'") {
		t.Errorf("1.11.1 --db-upgrade: exit %d\n%s", code, p.output())
	}
}

// --- initial block download, databases, memory ---

// bitcoind plays an initial block download: headers first, blocks after,
// progress that moves, then out of IBD; a restart continues the chain.
func TestBitcoindIBD(t *testing.T) {
	n := startBitcoind(t, "chain_length = 40", "blocks_per_second = 10", "headers_per_second = 400")
	var seen []chainInfo
	sawHeaderOnly := false
	waitForUpTo(t, 20*time.Second, "the end of IBD", func() bool {
		ci := n.chainInfo(t)
		seen = append(seen, ci)
		if ci.Headers > ci.Blocks && !sawHeaderOnly {
			// bitcoind has the header of the next block, not its data yet.
			var hash string
			n.call(t, &hash, "getblockhash", ci.Blocks)
			var hdr map[string]any
			if status, msg := n.call(t, &hdr, "getblockheader", hash); status != 200 || hdr["nextblockhash"] != nil {
				t.Errorf("getblockheader of the tip: HTTP %d %s %v", status, msg, hdr)
			}
			if status, msg := n.call(t, nil, "getblockhash", ci.Blocks+1); status != 500 || msg != "Block height out of range" {
				t.Errorf("getblockhash beyond the tip: HTTP %d %q", status, msg)
			}
			sawHeaderOnly = true
		}
		return !ci.InitialBlockDownload
	})
	first, last := seen[0], seen[len(seen)-1]
	if !first.InitialBlockDownload || first.VerificationProgress >= 0.5 {
		t.Errorf("first getblockchaininfo %+v: want IBD and little progress", first)
	}
	if last.Blocks != 40 || last.Headers != 40 || last.VerificationProgress != 1 {
		t.Errorf("after IBD: %+v, want 40 blocks and headers, progress 1", last)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].Blocks < seen[i-1].Blocks || seen[i].VerificationProgress < seen[i-1].VerificationProgress {
			t.Fatalf("progress went back: %+v then %+v", seen[i-1], seen[i])
		}
		if seen[i].InitialBlockDownload && (seen[i].VerificationProgress <= 0 || seen[i].VerificationProgress >= 1) {
			t.Errorf("verificationprogress %v during IBD", seen[i].VerificationProgress)
		}
	}
	if !sawHeaderOnly || len(seen) < 5 {
		t.Errorf("saw %d states and headers ahead of blocks: %v", len(seen), sawHeaderOnly)
	}
	// The chain hangs together: the best block is block 40, linked to 39.
	var hash39, hash40, best string
	n.call(t, &hash39, "getblockhash", 39)
	n.call(t, &hash40, "getblockhash", 40)
	n.call(t, &best, "getbestblockhash")
	var blk map[string]any
	n.call(t, &blk, "getblock", hash40, 1)
	if best != hash40 || best != last.BestBlockHash || blk["previousblockhash"] != hash39 || blk["height"] != 40.0 || blk["confirmations"] != 1.0 {
		t.Errorf("block 40 %s, best %s, getblock %v", hash40, best, blk)
	}
	// Fulcrum's slow ping, and 404 for what bitcoind does not know.
	var help string
	if status, msg := n.call(t, &help, "help", "help"); status != 200 || !strings.HasPrefix(help, "help ( \"command\" )") {
		t.Errorf("help help: HTTP %d %s %q", status, msg, help)
	}
	if status, msg := n.call(t, nil, "getdsprooflist"); status != 404 || msg != "Method not found" {
		t.Errorf("getdsprooflist: HTTP %d %q", status, msg)
	}

	// A restart continues the chain where it was, with the same blocks.
	n.signal(t, syscall.SIGINT)
	if code := n.wait(t, 5*time.Second); code != 0 {
		t.Fatalf("bitcoind exited %d on SIGINT", code)
	}
	n.proc = start(t, bin("bitcoin-core", "bitcoind"), "-datadir="+n.datadir)
	waitFor(t, "the cookie", func() bool { _, err := os.Stat(n.cookie()); return err == nil })
	var again string
	n.call(t, &again, "getblockhash", 40)
	if ci := n.chainInfo(t); ci.Blocks != 40 || ci.InitialBlockDownload || again != hash40 {
		t.Errorf("after a restart: %+v, block 40 %s (was %s)", ci, again, hash40)
	}
}

// bitcoind stopped in the middle of its IBD continues from there.
func TestBitcoindIBDResumes(t *testing.T) {
	n := startBitcoind(t, "chain_length = 100000", "blocks_per_second = 200")
	waitFor(t, "some blocks", func() bool { return n.chainInfo(t).Blocks >= 50 })
	n.signal(t, syscall.SIGTERM)
	if code := n.wait(t, 5*time.Second); code != 0 {
		t.Fatalf("bitcoind exited %d on SIGTERM", code)
	}
	var saved struct{ Blocks int }
	b, err := os.ReadFile(filepath.Join(n.datadir, "standin-chain.json"))
	if err != nil || json.Unmarshal(b, &saved) != nil || saved.Blocks < 50 {
		t.Fatalf("saved state %s (%v)", b, err)
	}
	writePace(n.datadir, []string{"blocks_per_second = 0"}) // stand still: what is read is what was saved
	n.proc = start(t, bin("bitcoin-core", "bitcoind"), "-datadir="+n.datadir)
	waitFor(t, "the cookie", func() bool { _, err := os.Stat(n.cookie()); return err == nil })
	if ci := n.chainInfo(t); ci.Blocks != saved.Blocks || !ci.InitialBlockDownload {
		t.Errorf("after a restart: %+v, want block %d still in IBD", ci, saved.Blocks)
	}
}

// refused tells whether nothing listens on 127.0.0.1:port.
func refused(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err == nil {
		c.Close()
	}
	return err != nil
}

// Fulcrum indexes while bitcoind is still in IBD, waits at bitcoind's tip
// (RetryInIBD), and opens Electrum and admin ports only at the tip with
// bitcoind out of IBD; its stats report progress from the start.
func TestFulcrumFollowsIBD(t *testing.T) {
	n := startBitcoind(t, "chain_length = 60", "blocks_per_second = 8", "headers_per_second = 600")
	s := newFulcrumSetup(t, n, "")
	os.MkdirAll(filepath.Join(s.dir, "fulcrum_db"), 0o755)
	writePace(filepath.Join(s.dir, "fulcrum_db"), []string{"blocks_per_second = 200"})
	f := start(t, bin("fulcrum-2.1.1", "Fulcrum"), s.conf)
	waitFor(t, "the stats endpoint", func() bool { return f.running(t) && stats(t, s.sts) != nil })

	indexedInIBD, retryInIBD, closedInIBD := false, false, false
	waitForUpTo(t, 30*time.Second, "bitcoind out of IBD", func() bool {
		// Read Fulcrum first and bitcoind after: if bitcoind is still in IBD
		// then, it was when Fulcrum was read.
		st := stats(t, s.sts)
		closed := refused(s.admin) && refused(s.tcp) && refused(s.ssl)
		ci := n.chainInfo(t)
		if !ci.InitialBlockDownload {
			return true
		}
		if h := indexedHeight(st); h > 0 {
			indexedInIBD = true
			if h > ci.Blocks {
				t.Errorf("Fulcrum at %d, ahead of bitcoind's %d", h, ci.Blocks)
			}
		}
		if sm, _ := st["Controller"].(map[string]any)["StateMachine"].(map[string]any); sm["State"] == "RetryInIBD" {
			retryInIBD = true
		}
		if !closed {
			t.Errorf("Fulcrum listens while bitcoind is in IBD (%+v)", ci)
		}
		closedInIBD = closedInIBD || closed
		if st["Server Manager"] != nil {
			t.Errorf("stats show a Server Manager during IBD: %v", st["Server Manager"])
		}
		return false
	})
	if !indexedInIBD || !retryInIBD || !closedInIBD {
		t.Errorf("during IBD: indexed %v, RetryInIBD %v, ports closed %v; want all", indexedInIBD, retryInIBD, closedInIBD)
	}
	out, err := exec.Command(bin("fulcrum-2.1.1", "FulcrumAdmin"), "-p", strconv.Itoa(s.admin), "getinfo").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "connection refused") {
		t.Errorf("FulcrumAdmin before Fulcrum is up-to-date: %v\n%s", err, out)
	}

	waitFor(t, "up-to-date", func() bool { return f.running(t) && strings.Contains(f.output(), "Block height 60, up-to-date") })
	st := stats(t, s.sts)
	if indexedHeight(st) != 60 || st["Server Manager"] == nil {
		t.Errorf("stats when up-to-date: %v", st)
	}
	e := dialElectrum(t, fmt.Sprintf("127.0.0.1:%d", s.tcp), nil)
	e.call(t, "server.version", "nodebake-test", "1.4")
	res, _ := e.call(t, "blockchain.headers.subscribe")
	var tip struct {
		Height int    `json:"height"`
		Hex    string `json:"hex"`
	}
	var best, header string
	n.call(t, &best, "getbestblockhash")
	n.call(t, &header, "getblockheader", best, false)
	if json.Unmarshal(res, &tip); tip.Height != 60 || tip.Hex != header {
		t.Errorf("blockchain.headers.subscribe %s, want height 60 and %s", res, header)
	}
	out, err = exec.Command(bin("fulcrum-2.1.1", "FulcrumAdmin"), "-p", strconv.Itoa(s.admin), "getinfo").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"height": 60`) {
		t.Errorf("FulcrumAdmin getinfo: %v\n%s", err, out)
	}

	// A restart resumes from the saved height: nothing to download again.
	f.signal(t, syscall.SIGINT)
	if code := f.wait(t, 5*time.Second); code != 0 {
		t.Fatalf("Fulcrum exited %d on SIGINT", code)
	}
	f = start(t, bin("fulcrum-2.1.1", "Fulcrum"), s.conf)
	waitFor(t, "up-to-date again", func() bool { return f.running(t) && strings.Contains(f.output(), "Block height 60, up-to-date") })
	if strings.Contains(f.output(), "downloading new blocks") || !strings.Contains(f.output(), "indexed height 60") {
		t.Errorf("Fulcrum did not resume from its database:\n%s", f.output())
	}
}

// SIGINT stops Fulcrum cleanly in the middle of indexing, and what it
// indexed is kept.
func TestFulcrumStopsWhileIndexing(t *testing.T) {
	n := startBitcoind(t, "chain_length = 5000", "blocks_per_second = 5000", "headers_per_second = 5000")
	waitFor(t, "bitcoind's blocks", func() bool { return n.chainInfo(t).Blocks >= 1000 })
	s := newFulcrumSetup(t, n, "")
	f := start(t, bin("fulcrum-2.1.1", "Fulcrum"), s.conf)
	waitFor(t, "indexing", func() bool { return f.running(t) && indexedHeight(stats(t, s.sts)) >= 20 })
	f.signal(t, syscall.SIGINT)
	if code := f.wait(t, 5*time.Second); code != 0 || !strings.Contains(f.output(), "Shutdown complete") {
		t.Fatalf("Fulcrum exited %d on SIGINT while indexing", code)
	}
	var saved struct{ Height, Format int }
	b, _ := os.ReadFile(filepath.Join(s.dir, "fulcrum_db", "fulc2_db", "standin-db.json"))
	if json.Unmarshal(b, &saved); saved.Height < 20 || saved.Format != 2 {
		t.Errorf("database after SIGINT: %s", b)
	}
}

// 2.x opens a 1.x database only with --db-upgrade; afterwards 1.x refuses
// it.
func TestFulcrumDatabaseFormats(t *testing.T) {
	n := startBitcoind(t, "chain_length = 5", "blocks_per_second = 100", "headers_per_second = 100")
	waitFor(t, "bitcoind out of IBD", func() bool { return !n.chainInfo(t).InitialBlockDownload })
	s := newFulcrumSetup(t, n, "")
	db := filepath.Join(s.dir, "fulcrum_db")
	format := func(path string) int {
		var m struct{ Format, Height int }
		b, err := os.ReadFile(filepath.Join(db, path, "standin-db.json"))
		if err != nil || json.Unmarshal(b, &m) != nil || m.Height != 5 {
			return 0
		}
		return m.Format
	}
	upToDate := func(v string, args ...string) {
		t.Helper()
		f := start(t, bin("fulcrum-"+v, "Fulcrum"), append(args, s.conf)...)
		waitFor(t, v+" up-to-date", func() bool { return f.running(t) && strings.Contains(f.output(), "Block height 5, up-to-date") })
		f.signal(t, syscall.SIGINT)
		if code := f.wait(t, 5*time.Second); code != 0 {
			t.Fatalf("Fulcrum %s exited %d on SIGINT", v, code)
		}
	}
	refuses := func(v, want string, args ...string) {
		t.Helper()
		f := start(t, bin("fulcrum-"+v, "Fulcrum"), append(args, s.conf)...)
		if code := f.wait(t, 5*time.Second); code != 1 || !strings.Contains(f.output(), want) {
			t.Errorf("Fulcrum %s %v: exit %d, want 1 and %q:\n%s", v, args, code, want, f.output())
		}
	}

	upToDate("1.11.1")
	if format("meta") != 1 {
		t.Fatal("Fulcrum 1.11.1 wrote no format-1 database at height 5")
	}
	refuses("2.1.1", "contains an older Fulcrum 1.x database. It can be upgraded")
	refuses("2.1.1", "Please specify CLI argument --db-upgrade")
	if format("meta") != 1 {
		t.Fatal("a refused 2.x start changed the 1.x database")
	}
	writePace(db, []string{"upgrade_countdown = 1"})
	upToDate("2.1.1", "--db-upgrade")
	if format("fulc2_db") != 2 || format("meta") != 0 {
		t.Errorf("after --db-upgrade: format %d in fulc2_db, %d in meta; want 2 and none", format("fulc2_db"), format("meta"))
	}
	upToDate("2.1.1") // no flag needed any more
	refuses("1.11.1", "Incompatible database format -- delete the datadir and resynch.")
}

// rss is a process's resident memory in MiB.
func rss(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb >> 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// The stand-ins hold the memory their configuration grants: bitcoind its
// base, dbcache and (out of IBD, not blocksonly) maxmempool; Fulcrum its
// base, db_mem and 1.x's utxo_cache.
func TestMemory(t *testing.T) {
	alloc := []string{ballast.SkipEnv + "=0"}
	expect := func(what string, p *proc, wantMiB int64) {
		t.Helper()
		pid := p.cmd.Process.Pid
		waitFor(t, what+" memory", func() bool { return p.running(t) && rss(t, pid) >= wantMiB })
		time.Sleep(500 * time.Millisecond) // anything more would come now
		if got := rss(t, pid); p.running(t) && (got < wantMiB || got > wantMiB+40) {
			t.Errorf("%s: resident %d MiB, want about %d MiB", what, got, wantMiB)
		}
	}
	for _, c := range []struct {
		conf string
		want int64 // MiB
	}{
		{"dbcache=64\nmaxmempool=50\n", 200 + 64 + 47},          // 50 MB is 47.7 MiB
		{"dbcache=64\nmaxmempool=50\nblocksonly=1\n", 200 + 64}, // no mempool in blocksonly mode
	} {
		dir := t.TempDir()
		port := freePort(t)
		os.WriteFile(filepath.Join(dir, "bitcoin.conf"), []byte(c.conf+fmt.Sprintf("rpcport=%d\n", port)), 0o644)
		writePace(dir, nil)
		p := startEnv(t, alloc, bin("bitcoin-core", "bitcoind"), "-datadir="+dir)
		expect("bitcoind with "+strings.ReplaceAll(c.conf, "\n", " "), p, c.want)
	}

	n := startBitcoind(t)
	s := newFulcrumSetup(t, n, "db_mem = 50\nutxo_cache = 64\n")
	f := startEnv(t, alloc, bin("fulcrum-1.11.1", "Fulcrum"), s.conf)
	waitFor(t, "up-to-date", func() bool { return f.running(t) && strings.Contains(f.output(), "up-to-date") })
	expect("Fulcrum 1.11.1 with db_mem 50, utxo_cache 64", f, 400+50+61) // 64 MB is 61 MiB
}

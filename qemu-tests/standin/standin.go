// Package standin makes STAND-IN releases of Bitcoin Core and Fulcrum for
// nodebake's tests and demo image, because the machines they run on cannot
// reach bitcoincore.org or github.com. The programs in them are small Go
// programs from this folder (bitcoind, bitcoin-cli, Fulcrum, FulcrumAdmin),
// not the real software, and say so in their --version output, logs and
// Electrum banner; nothing built from them is for real use.
//
// Everything around the programs is as official: the tarballs are named
// and laid out like the real ones, with a sums file next to them signed by
// OpenPGP keys (three builder keys over Bitcoin Core's SHA256SUMS, each an
// armored block of SHA256SUMS.asc; one key over Fulcrum's shasums file).
// The keys are made fresh by Build and exist nowhere else, so an image
// spec has to pin them: Artifacts writes that artifacts: block.
//
// Build writes, under its folder, the same paths the official download
// locations have below their base URLs, so one base URL per release works:
//
//	bitcoin-core-30.2/bitcoin-30.2-x86_64-linux-gnu.tar.gz, SHA256SUMS, SHA256SUMS.asc
//	fulcrum-2.1.1/Fulcrum-2.1.1-x86_64-linux.tar.gz, Fulcrum-2.1.1-shasums.txt(.asc)
//	fulcrum-1.11.1/…
//	keys/standin-builder-{1,2,3}.asc, keys/standin-calin.asc
//
// The programs play a first sync: bitcoind an initial block download of a
// made-up chain, Fulcrum indexing it as it comes, and each holds the
// memory its configuration grants. A test sets their pace in a file only
// the stand-ins read, standin.conf, in bitcoind's datadir (chain_length,
// blocks_per_second, headers_per_second; by default 3000 blocks at 35 a
// second) and in Fulcrum's datadir (blocks_per_second, default 100;
// upgrade_countdown, default 10 seconds); the files are read at start.
// STANDIN_SKIP_MEMORY=1 in their environment makes them hold no memory:
// for unit tests only. Each program's main.go says what it models of the
// real one and what it leaves out.
package standin

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// The releases Build makes.
const (
	BitcoinCoreVersion    = "30.2"
	DefaultFulcrumVersion = "2.1.1"
)

// FulcrumVersions are the Fulcrum releases Build makes: the default, and
// the MiniBolt guide's 1.11.1 (whose config still has utxo-cache).
var FulcrumVersions = []string{DefaultFulcrumVersion, "1.11.1"}

// Banner is the line the stand-in Fulcrum puts first in its banner.
const Banner = "DEMO — stand-in binaries, not for real use"

const module = "github.com/nodebake/nodebake/qemu-tests/standin/"

// mtime is every tarball entry's time, so that a tarball depends only on
// the programs in it.
var mtime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Signer is a stand-in release-signing key.
type Signer struct {
	Name        string
	Fingerprint string // 40 hex digits, upper case
	KeyFile     string // armored public key, relative to Releases.Dir (keys/NAME.asc)
}

// Release is one stand-in release in Releases.Dir.
type Release struct {
	Kind    string // image.yaml's artifacts key: "bitcoin-core" or "fulcrum"
	Version string
	Folder  string // below Releases.Dir and the served base URL, e.g. "bitcoin-core-30.2"
	// Tarball, Sums and Signature are file names in Folder.
	Tarball, Sums, Signature string
	SHA256                   string // the tarball's
	Top                      string // the tarball's top folder
	MinSignatures            int
	Signers                  []Signer
}

// Releases is what Build made.
type Releases struct {
	Dir         string
	BitcoinCore Release
	Fulcrum     map[string]Release // by version, one per FulcrumVersions
}

// Build compiles the stand-in programs for linux/amd64 (static, with the
// go command found in PATH, from the nodebake source tree the current
// folder is in), packs and signs the releases into dir and returns what it
// made. Keys are new on every call.
func Build(dir string) (*Releases, error) {
	bin, err := os.MkdirTemp("", "standin-bin-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(bin)
	if err := compile(bin); err != nil {
		return nil, err
	}
	builders := make([]*key, 3)
	for i := range builders {
		if builders[i], err = newKey(fmt.Sprintf("standin-builder-%d", i+1), "stand-in Bitcoin Core builder key"); err != nil {
			return nil, err
		}
	}
	calin, err := newKey("standin-calin", "stand-in Fulcrum release key")
	if err != nil {
		return nil, err
	}
	for _, k := range append(append([]*key{}, builders...), calin) {
		if err := k.writePublic(dir); err != nil {
			return nil, err
		}
	}
	r := &Releases{Dir: dir, Fulcrum: map[string]Release{}}
	r.BitcoinCore, err = pack(dir, Release{
		Kind: "bitcoin-core", Version: BitcoinCoreVersion, Folder: "bitcoin-core-" + BitcoinCoreVersion,
		Tarball: "bitcoin-" + BitcoinCoreVersion + "-x86_64-linux-gnu.tar.gz", Sums: "SHA256SUMS", Signature: "SHA256SUMS.asc",
		Top: "bitcoin-" + BitcoinCoreVersion, MinSignatures: len(builders),
	}, bitcoinCoreFiles(bin), builders)
	if err != nil {
		return nil, err
	}
	for _, v := range FulcrumVersions {
		r.Fulcrum[v], err = pack(dir, Release{
			Kind: "fulcrum", Version: v, Folder: "fulcrum-" + v,
			Tarball: "Fulcrum-" + v + "-x86_64-linux.tar.gz", Sums: "Fulcrum-" + v + "-shasums.txt", Signature: "Fulcrum-" + v + "-shasums.txt.asc",
			Top: "Fulcrum-" + v + "-x86_64-linux", MinSignatures: 1,
		}, fulcrumFiles(bin, v), []*key{calin})
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// compile builds the programs into bin/bitcoin-core and bin/fulcrum-V. The
// release version is baked in with -X main.version (FulcrumAdmin and
// bitcoin-cli have no use for it but get it too: one build per release).
func compile(bin string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("standin: the go command is not in PATH: %v", err)
	}
	builds := map[string][]string{
		"bitcoin-core": {BitcoinCoreVersion, module + "bitcoind", module + "bitcoin-cli"},
	}
	for _, v := range FulcrumVersions {
		builds["fulcrum-"+v] = []string{v, module + "fulcrum", module + "fulcrumadmin"}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(builds))
	for out, b := range builds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := append([]string{"build", "-trimpath", "-ldflags", "-s -w -buildid= -X main.version=" + b[0],
				"-o", filepath.Join(bin, out) + "/"}, b[1:]...)
			cmd := exec.Command(gobin, args...)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
			if msg, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("standin: go %s: %v\n%s(run it from inside the nodebake source tree)", strings.Join(args, " "), err, msg)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// entry is one file of a tarball: a built program (file) or text.
type entry struct {
	name string // below the top folder
	file string
	text string
}

const note = "STAND-IN release built by nodebake's test suite (qemu-tests/standin): the programs in it are small Go\n" +
	"programs that stand in for the real ones in tests and demo images. Not the real software; not for real use.\n"

func bitcoinCoreFiles(bin string) []entry {
	return []entry{
		{name: "README.md", text: "# Bitcoin Core " + BitcoinCoreVersion + " (STAND-IN)\n\n" + note},
		{name: "bin/bitcoin-cli", file: filepath.Join(bin, "bitcoin-core", "bitcoin-cli")},
		{name: "bin/bitcoind", file: filepath.Join(bin, "bitcoin-core", "bitcoind")},
	}
}

// fulcrumFiles are the files of Fulcrum's Linux tarball. The real
// FulcrumAdmin is a Python script; the stand-in's is a Go program.
func fulcrumFiles(bin, v string) []entry {
	dir := filepath.Join(bin, "fulcrum-"+v)
	doc := func(what string) string { return what + " of Fulcrum " + v + " (STAND-IN)\n\n" + note }
	return []entry{
		{name: "Fulcrum", file: filepath.Join(dir, "fulcrum")},
		{name: "FulcrumAdmin", file: filepath.Join(dir, "fulcrumadmin")},
		{name: "LICENSE.txt", text: doc("In place of the license")},
		{name: "fulcrum-example-config.conf", text: commented(doc("In place of the example config"))},
		{name: "fulcrum-quick-config.conf", text: commented(doc("In place of the quick-start config"))},
		{name: "man/Fulcrum.1", text: ".\\\" " + strings.ReplaceAll(doc("In place of the man page"), "\n", "\n.\\\" ")},
		{name: "unix-man-page.md", text: doc("In place of the man page")},
	}
}

func commented(s string) string {
	return "# " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n# ") + "\n"
}

// pack writes a release's tarball, sums file and signature into
// dir/rel.Folder.
func pack(dir string, rel Release, files []entry, signers []*key) (Release, error) {
	folder := filepath.Join(dir, rel.Folder)
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return rel, err
	}
	tgz, err := tarball(rel.Top, files)
	if err != nil {
		return rel, fmt.Errorf("standin: %s: %v", rel.Tarball, err)
	}
	sum := sha256.Sum256(tgz)
	rel.SHA256 = hex.EncodeToString(sum[:])
	sums := []byte(rel.SHA256 + "  " + rel.Tarball + "\n")
	var sig bytes.Buffer
	for _, k := range signers {
		if err := k.sign(&sig, sums); err != nil {
			return rel, fmt.Errorf("standin: signing %s with %s: %v", rel.Sums, k.name, err)
		}
		rel.Signers = append(rel.Signers, k.signer())
	}
	for name, data := range map[string][]byte{rel.Tarball: tgz, rel.Sums: sums, rel.Signature: sig.Bytes()} {
		if err := os.WriteFile(filepath.Join(folder, name), data, 0o644); err != nil {
			return rel, err
		}
	}
	return rel, nil
}

// tarball packs files below top/ as release tarballs are: directories
// listed, root-owned, one fixed time, sorted.
func tarball(top string, files []entry) ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.ModTime = mtime
	tw := tar.NewWriter(gz)
	dirs := map[string]bool{top + "/": true}
	for _, f := range files {
		for d := path.Dir(f.name); d != "."; d = path.Dir(d) {
			dirs[top+"/"+d+"/"] = true
		}
	}
	type item struct {
		name string
		mode int64
		data []byte
	}
	var items []item
	for d := range dirs {
		items = append(items, item{name: d, mode: 0o755})
	}
	for _, f := range files {
		it := item{name: top + "/" + f.name, mode: 0o644, data: []byte(f.text)}
		if f.file != "" {
			b, err := os.ReadFile(f.file)
			if err != nil {
				return nil, err
			}
			it.mode, it.data = 0o755, b
		}
		items = append(items, it)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].name < items[j].name })
	for _, it := range items {
		h := &tar.Header{Name: it.name, Mode: it.mode, ModTime: mtime, Format: tar.FormatGNU, Typeflag: tar.TypeReg, Size: int64(len(it.data))}
		if strings.HasSuffix(it.name, "/") {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(it.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// key is a stand-in signing key (Ed25519, OpenPGP v4).
type key struct {
	name   string
	entity *openpgp.Entity
}

func newKey(name, comment string) (*key, error) {
	created := time.Now().Add(-time.Minute).Truncate(time.Second)
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: func() time.Time { return created }}
	e, err := openpgp.NewEntity(name, comment+", not for real use", name+"@stand-in.nodebake.invalid", cfg)
	if err != nil {
		return nil, fmt.Errorf("standin: making key %s: %v", name, err)
	}
	return &key{name: name, entity: e}, nil
}

func (k *key) fingerprint() string {
	return strings.ToUpper(hex.EncodeToString(k.entity.PrimaryKey.Fingerprint))
}

func (k *key) keyFile() string { return "keys/" + k.name + ".asc" }

func (k *key) signer() Signer {
	return Signer{Name: k.name, Fingerprint: k.fingerprint(), KeyFile: k.keyFile()}
}

// writePublic writes the armored public key to dir/keys/NAME.asc.
func (k *key) writePublic(dir string) error {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, "PGP PUBLIC KEY BLOCK", map[string]string{"Comment": "nodebake stand-in key " + k.name + ", not for real use"})
	if err != nil {
		return err
	}
	if err := k.entity.Serialize(w); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	buf.WriteString("\n")
	p := filepath.Join(dir, filepath.FromSlash(k.keyFile()))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, buf.Bytes(), 0o644)
}

// sign appends an armored detached signature over data to w: one block
// per signer, as in Bitcoin Core's SHA256SUMS.asc.
func (k *key) sign(w *bytes.Buffer, data []byte) error {
	if err := openpgp.ArmoredDetachSign(w, []*openpgp.Entity{k.entity}, bytes.NewReader(data), nil); err != nil {
		return err
	}
	w.WriteString("\n")
	return nil
}

// Serve serves dir over HTTP on a free 127.0.0.1 port until stop is
// called; baseURL ends in "/". It panics if it cannot listen on loopback,
// as httptest does.
func Serve(dir string) (baseURL string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("standin: cannot listen on 127.0.0.1: %v", err))
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String() + "/", func() { srv.Close() }
}

// Artifacts is the artifacts: block of an image.yaml that pins Bitcoin
// Core and the default Fulcrum release served at baseURL (Serve's).
func (r *Releases) Artifacts(baseURL string) string {
	s, err := r.ArtifactsFor(baseURL, DefaultFulcrumVersion)
	if err != nil {
		panic(err) // Build always makes the default release
	}
	return s
}

// ArtifactsFor is Artifacts with another of FulcrumVersions.
func (r *Releases) ArtifactsFor(baseURL, fulcrumVersion string) (string, error) {
	f, ok := r.Fulcrum[fulcrumVersion]
	if !ok {
		return "", fmt.Errorf("standin: no stand-in Fulcrum %s (there are %s)", fulcrumVersion, strings.Join(FulcrumVersions, ", "))
	}
	base := strings.TrimSuffix(baseURL, "/") + "/"
	var b strings.Builder
	b.WriteString("artifacts:\n")
	for _, rel := range []Release{r.BitcoinCore, f} {
		fmt.Fprintf(&b, "  %s:\n", rel.Kind)
		fmt.Fprintf(&b, "    version: %q\n", rel.Version)
		fmt.Fprintf(&b, "    base_url: %q\n", base+rel.Folder+"/")
		fmt.Fprintf(&b, "    tarball: %q\n", rel.Tarball)
		fmt.Fprintf(&b, "    sums: %q\n", rel.Sums)
		fmt.Fprintf(&b, "    signature: %q\n", rel.Signature)
		fmt.Fprintf(&b, "    sha256: %q\n", rel.SHA256)
		fmt.Fprintf(&b, "    min_signatures: %d\n", rel.MinSignatures)
		b.WriteString("    signers:\n")
		for _, s := range rel.Signers {
			fmt.Fprintf(&b, "      - {name: %q, fingerprint: %q, key: %q}\n", s.Name, s.Fingerprint, base+s.KeyFile)
		}
	}
	return b.String(), nil
}

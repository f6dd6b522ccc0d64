package artifact

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/contract"
)

func fetch(t *testing.T, c Config, opts FetchOptions) (*Release, error) {
	t.Helper()
	if opts.CacheDir == "" {
		opts.CacheDir = t.TempDir()
	}
	return Fetch(context.Background(), c, opts)
}

func TestFetchVerifiesAndExtracts(t *testing.T) {
	f := newFixture(t, 2)
	srv := f.serve(t)
	var log strings.Builder
	rel, err := fetch(t, f.cfg, FetchOptions{Progress: &log})
	if err != nil {
		t.Fatal(err)
	}
	if rel.SHA256 != sha(f.tarball) || rel.TarballName != fixtureTarball || rel.Version != "9.9.9" {
		t.Errorf("release %+v", rel)
	}
	if got := strings.Join(rel.Signers, ","); got != "signer1,signer2" {
		t.Errorf("signers %q", got)
	}
	for _, p := range []string{rel.Tarball, rel.Sums, rel.Signature} {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
	want := fmt.Sprintf("%s: verified: sha256 %s, signed by signer1, signer2 (2 required; 0 signatures from unpinned keys ignored)", fixtureTarball, sha(f.tarball))
	if !strings.Contains(log.String(), want) || !strings.Contains(log.String(), "downloading "+srv.URL+"/"+fixtureTarball) {
		t.Errorf("progress:\n%s\nwant a line %q", log.String(), want)
	}
	files, err := rel.Files([]string{"Fulcrum"}, "FulcrumAdmin")
	if err != nil {
		t.Fatal(err)
	}
	if fa := files["FulcrumAdmin"]; fa.Path != "Fulcrum-9.9.9-amd64-linux/FulcrumAdmin" || fa.Mode != 0o755 || string(fa.Data) != "#!/usr/bin/env python3\n" {
		t.Errorf("FulcrumAdmin: %+v", fa)
	}
}

// Each way a release can be wrong is refused with its own message.
func TestFetchRefuses(t *testing.T) {
	const sums = "Fulcrum-9.9.9-shasums.txt"
	day := func(t time.Time) string { return t.UTC().Format(time.DateOnly) }
	for _, tc := range []struct {
		name string
		// change breaks the fixture and returns the expected error.
		change func(t *testing.T, f *fixture) string
		// the tarball must not be downloaded when the signatures fail
		tarball bool
	}{{
		name:    "tampered tarball",
		tarball: true,
		change: func(t *testing.T, f *fixture) string {
			listed := sha(f.tarball)
			f.tarball = tarGz(t, map[string]string{"Fulcrum-9.9.9-amd64-linux/Fulcrum": "\x7fELF evil"})
			return fmt.Sprintf("%s: sha256 mismatch: want %s (listed in the signed %s), got %s: the download is corrupt or was tampered with",
				fixtureTarball, listed, sums, sha(f.tarball))
		},
	}, {
		name: "tampered sums file",
		change: func(t *testing.T, f *fixture) string {
			f.sums = append(f.sums, []byte(sha([]byte("evil"))+"  Fulcrum-9.9.9-arm64-linux.tar.gz\n")...)
			return fmt.Sprintf("%s: 0 good signatures over %s from pinned keys, 1 required (bad: signer1: signature does not match %s (the file or the signature was altered))",
				fixtureTarball, sums, sums)
		},
	}, {
		name: "empty signature file",
		change: func(t *testing.T, f *fixture) string {
			f.sig = []byte("\n")
			return fmt.Sprintf("%s: 0 good signatures over %s from pinned keys, 1 required (bad: the signature file is empty)", fixtureTarball, sums)
		},
	}, {
		name: "signature by an unpinned key",
		change: func(t *testing.T, f *fixture) string {
			stranger := newKey(t, "stranger", f.now.Add(-time.Hour), 0)
			f.sig = stranger.sign(t, f.now, f.sums)
			return fmt.Sprintf("%s: 0 good signatures over %s from pinned keys, 1 required (unknown: 0x%s)", fixtureTarball, sums, stranger.fingerprint())
		},
	}, {
		name: "too few signatures",
		change: func(t *testing.T, f *fixture) string {
			f.pin(t, newKey(t, "signer2", f.now.Add(-time.Hour), 0))
			f.pin(t, newKey(t, "signer3", f.now.Add(-time.Hour), 0))
			f.cfg.MinSignatures = 3
			f.sig = append(f.sig, f.keys[1].sign(t, f.now, f.sums)...)
			return fmt.Sprintf("%s: 2 good signatures over %s from pinned keys, 3 required (good: signer1, signer2)", fixtureTarball, sums)
		},
	}, {
		name: "duplicate signatures from one key",
		change: func(t *testing.T, f *fixture) string {
			f.pin(t, newKey(t, "signer2", f.now.Add(-time.Hour), 0))
			f.cfg.MinSignatures = 2
			f.sig = append(f.sig, f.keys[0].sign(t, f.now.Add(-time.Minute), f.sums)...)
			return fmt.Sprintf("%s: 1 good signatures over %s from pinned keys, 2 required (good: signer1 (2 signatures, counted once))", fixtureTarball, sums)
		},
	}, {
		name: "wrong fingerprint from the key URL",
		change: func(t *testing.T, f *fixture) string {
			other := newKey(t, "other", f.now.Add(-time.Hour), 0)
			f.keyData["signer1.asc"] = other.public(t)
			return fmt.Sprintf("signer signer1: key from %%URL%%/signer1.asc has fingerprint %s, pinned %s: refusing it (check the key's URL and the pinned fingerprint in image.yaml)",
				other.fingerprint(), f.keys[0].fingerprint())
		},
	}, {
		name: "expired key",
		change: func(t *testing.T, f *fixture) string {
			born := f.now.Add(-48 * time.Hour)
			f.replace(t, newKey(t, "signer1", born, time.Hour))
			f.sig = f.keys[0].sign(t, born.Add(2*time.Hour), f.sums)
			return fmt.Sprintf("%s: 0 good signatures over %s from pinned keys, 1 required (bad: signer1: key expired on %s (signature made %s))",
				fixtureTarball, sums, day(born.Add(time.Hour)), day(born.Add(2*time.Hour)))
		},
	}, {
		name: "revoked key",
		change: func(t *testing.T, f *fixture) string {
			k := newKey(t, "signer1", f.now.Add(-48*time.Hour), 0)
			k.revoke(t, f.now.Add(-time.Hour))
			f.replace(t, k)
			// Made before the revocation: a compromised key's
			// signatures are worthless whenever they are dated.
			f.sig = k.sign(t, f.now.Add(-2*time.Hour), f.sums)
			return fmt.Sprintf("%s: 0 good signatures over %s from pinned keys, 1 required (bad: signer1: key revoked)", fixtureTarball, sums)
		},
	}, {
		name: "signature made after the signing subkey expired",
		change: func(t *testing.T, f *fixture) string {
			born := f.now.Add(-48 * time.Hour)
			k := newKey(t, "signer1", born, 0)
			k.addSigningSubkey(t, born, time.Hour)
			f.replace(t, k)
			f.sig = k.sign(t, born.Add(2*time.Hour), f.sums)
			return fmt.Sprintf("%s: 0 good signatures over %s from pinned keys, 1 required (bad: signer1: signing subkey 0x%016X expired on %s (signature made %s))",
				fixtureTarball, sums, k.signer.KeyId, day(born.Add(time.Hour)), day(born.Add(2*time.Hour)))
		},
	}, {
		name: "signature dated before the key existed",
		change: func(t *testing.T, f *fixture) string {
			born := f.now.Add(-48 * time.Hour)
			f.sig = f.keys[0].sign(t, born.Add(-time.Hour), f.sums)
			return fmt.Sprintf("%s: 0 good signatures over %s from pinned keys, 1 required (bad: signer1: key not valid when the signature was made (%s): no valid self signature found)",
				fixtureTarball, sums, day(born.Add(-time.Hour)))
		},
	}, {
		name:    "pinned hash mismatch",
		tarball: true,
		change: func(t *testing.T, f *fixture) string {
			f.cfg.SHA256 = strings.ToUpper(sha([]byte("an older release")))
			return fmt.Sprintf("%s: sha256 mismatch: want %s (pinned in image.yaml), got %s (the hash the signed %s lists): update the pin only if you meant to change the release",
				fixtureTarball, sha([]byte("an older release")), sha(f.tarball), sums)
		},
	}, {
		name: "tarball not in the sums file",
		change: func(t *testing.T, f *fixture) string {
			f.sums = []byte(sha(f.tarball) + "  Fulcrum-9.9.9-arm64-linux.tar.gz\n")
			f.sig = f.keys[0].sign(t, f.now, f.sums)
			return fmt.Sprintf("%s: not listed in %s: check the tarball name and version in image.yaml", fixtureTarball, sums)
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 1)
			want := tc.change(t, f)
			srv := f.serve(t)
			want = strings.ReplaceAll(want, "%URL%", srv.URL)
			_, err := fetch(t, f.cfg, FetchOptions{})
			if err == nil || err.Error() != want {
				t.Fatalf("got  %v\nwant %s", err, want)
			}
			if got := srv.hit("/"+fixtureTarball) > 0; got != tc.tarball {
				t.Errorf("tarball downloaded: %v, want %v", got, tc.tarball)
			}
		})
	}
}

// replace makes k the first signer (same name), signing nothing yet.
func (f *fixture) replace(t *testing.T, k *testKey) {
	f.keys[0] = k
	f.keyData[k.name+".asc"] = k.public(t)
	f.cfg.Signers[0] = Signer{Name: k.name, Fingerprint: k.fingerprint(), Key: k.name + ".asc"}
	f.sig = nil
}

// A key that has expired since counts for signatures made while it was
// valid: a pinned release stays buildable after its signers' keys lapse.
func TestFetchKeyExpiredSinceSigning(t *testing.T) {
	f := newFixture(t, 1)
	born := f.now.Add(-48 * time.Hour)
	f.replace(t, newKey(t, "signer1", born, time.Hour))
	f.sig = f.keys[0].sign(t, born.Add(30*time.Minute), f.sums)
	f.serve(t)
	if _, err := fetch(t, f.cfg, FetchOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestFetchCache(t *testing.T) {
	f := newFixture(t, 2)
	srv := f.serve(t)
	cache := t.TempDir()
	first, err := fetch(t, f.cfg, FetchOptions{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	n := srv.requests()
	if n != 5 { // sums, signature, 2 keys, tarball
		t.Errorf("%d requests, want 5", n)
	}

	// From the cache, no request — and online or offline alike.
	for _, offline := range []bool{false, true} {
		again, err := fetch(t, f.cfg, FetchOptions{CacheDir: cache, Offline: offline})
		if err != nil {
			t.Fatal(err)
		}
		if srv.requests() != n || again.Tarball != first.Tarball || again.SHA256 != first.SHA256 {
			t.Errorf("offline=%v: %d requests (want %d), tarball %s", offline, srv.requests(), n, again.Tarball)
		}
	}

	// Cached files are checked against the pins again: a cached tarball
	// against a hash pin…
	pinned := f.cfg
	pinned.SHA256 = sha([]byte("x"))
	if _, err := fetch(t, pinned, FetchOptions{CacheDir: cache}); err == nil || !strings.Contains(err.Error(), "sha256 mismatch") {
		t.Errorf("cached tarball against a hash pin: %v", err)
	}
	// …and a cached key against a fingerprint pin.
	other := newKey(t, "other", f.now, 0)
	repinned := f.cfg
	repinned.Signers = append([]Signer(nil), f.cfg.Signers...)
	repinned.Signers[1].Fingerprint = other.fingerprint()
	if _, err := fetch(t, repinned, FetchOptions{CacheDir: cache}); err == nil || !strings.Contains(err.Error(), "signer signer2: key from "+srv.URL+"/signer2.asc has fingerprint "+f.keys[1].fingerprint()) {
		t.Errorf("cached key against a new pin: %v", err)
	}
	if srv.requests() != n {
		t.Errorf("%d requests, want still %d", srv.requests(), n)
	}
	// What failed verification is dropped from the index and fetched anew.
	if _, err := fetch(t, f.cfg, FetchOptions{CacheDir: cache}); err != nil {
		t.Fatal(err)
	}
	if srv.hit("/signer2.asc") != 2 || srv.hit("/"+fixtureTarball) != 2 || srv.requests() != n+2 {
		t.Errorf("after refusals: hits %v", srv.hits)
	}
}

func TestFetchCorruptCache(t *testing.T) {
	f := newFixture(t, 1)
	srv := f.serve(t)
	cache := t.TempDir()
	rel, err := fetch(t, f.cfg, FetchOptions{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	corrupt := func() {
		if err := os.WriteFile(rel.Tarball, []byte("bit rot"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	corrupt()
	var log strings.Builder
	again, err := fetch(t, f.cfg, FetchOptions{CacheDir: cache, Progress: &log})
	if err != nil {
		t.Fatal(err)
	}
	if srv.hit("/"+fixtureTarball) != 2 || again.SHA256 != sha(f.tarball) || !strings.Contains(log.String(), "is corrupt") {
		t.Errorf("corrupt cache entry: hits %v, sha %s, log %q", srv.hits, again.SHA256, log.String())
	}

	corrupt()
	_, err = fetch(t, f.cfg, FetchOptions{CacheDir: cache, Offline: true})
	want := fmt.Sprintf("%s: the cached copy of %s/%s is corrupt (sha256 %s, stored as %s) and offline mode forbids downloading it again: fetch the files by hand and pass --mirror DIR (see README)",
		fixtureTarball, srv.URL, fixtureTarball, sha([]byte("bit rot")), rel.SHA256)
	if err == nil || err.Error() != want {
		t.Errorf("offline, corrupt cache:\ngot  %v\nwant %s", err, want)
	}
}

func TestFetchOfflineMissing(t *testing.T) {
	f := newFixture(t, 1)
	srv := f.serve(t)
	_, err := fetch(t, f.cfg, FetchOptions{Offline: true})
	want := fmt.Sprintf("%s: %s/%s is not in the download cache and offline mode forbids downloading it: fetch the files by hand and pass --mirror DIR (see README)",
		f.cfg.Sums, srv.URL, f.cfg.Sums)
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	if srv.requests() != 0 {
		t.Errorf("offline fetch made %d requests", srv.requests())
	}
}

// officialLike points the fixture at locations that cannot be reached, as
// the official ones cannot from here.
func officialLike(f *fixture) {
	f.cfg.BaseURL = "https://releases.invalid/v9.9.9/"
	for i := range f.cfg.Signers {
		f.cfg.Signers[i].Key = "https://keys.invalid/pubkeys/" + f.cfg.Signers[i].Key
	}
}

func TestFetchMirrorDir(t *testing.T) {
	f := newFixture(t, 2)
	officialLike(f)
	dir := t.TempDir()
	for name, data := range f.files() {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rel, err := fetch(t, f.cfg, FetchOptions{Mirror: dir, Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	if rel.Tarball != filepath.Join(dir, fixtureTarball) || len(rel.Signers) != 2 {
		t.Errorf("release %+v", rel)
	}

	os.Remove(filepath.Join(dir, "signer2.asc"))
	_, err = fetch(t, f.cfg, FetchOptions{Mirror: dir})
	want := "signer2.asc: not in the mirror folder " + dir + " (open " + filepath.Join(dir, "signer2.asc") + ": no such file or directory): download https://keys.invalid/pubkeys/signer2.asc into it"
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func TestFetchMirrorURL(t *testing.T) {
	f := newFixture(t, 1)
	officialLike(f)
	srv := serve(t, f.files())
	rel, err := fetch(t, f.cfg, FetchOptions{Mirror: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	if rel.SHA256 != sha(f.tarball) || srv.requests() != 4 {
		t.Errorf("sha %s, %d requests", rel.SHA256, srv.requests())
	}
}

func TestFetchLocalKeyFile(t *testing.T) {
	f := newFixture(t, 1)
	srv := serve(t, f.files())
	f.cfg.BaseURL = srv.URL
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "keys"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "keys", "signer1.asc"), f.keys[0].public(t), 0o644); err != nil {
		t.Fatal(err)
	}
	f.cfg.Signers[0].Key = "keys/signer1.asc"
	if _, err := fetch(t, f.cfg, FetchOptions{KeyDir: dir}); err != nil {
		t.Fatal(err)
	}
	if srv.hit("/signer1.asc") != 0 {
		t.Error("key downloaded though given as a file")
	}
}

func TestFetchNetworkErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()

	f := newFixture(t, 1)
	f.cfg.BaseURL = dead + "/v9.9.9"
	_, err = fetch(t, f.cfg, FetchOptions{})
	want := fmt.Sprintf("%s: cannot download %s/v9.9.9/%s: dial tcp %s: connect: connection refused; to build without network, fetch the files by hand and pass --mirror DIR (see README)",
		f.cfg.Sums, dead, f.cfg.Sums, l.Addr())
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}

	srv := serve(t, nil)
	f.cfg.BaseURL = srv.URL
	_, err = fetch(t, f.cfg, FetchOptions{})
	want = fmt.Sprintf("%s: cannot download %s/%s: server answered 404 Not Found: check the version and file names in image.yaml", f.cfg.Sums, srv.URL, f.cfg.Sums)
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

// The real Bitcoin Core 30.2 signatures pass the default quorum end to end;
// the stand-in tarball then fails the hash the signed SHA256SUMS lists.
func TestFetchRealBitcoinCore(t *testing.T) {
	files := map[string][]byte{
		"SHA256SUMS":                           readVector(t, "bitcoin-core-30.2/SHA256SUMS"),
		"SHA256SUMS.asc":                       readVector(t, "bitcoin-core-30.2/SHA256SUMS.asc"),
		"bitcoin-30.2-x86_64-linux-gnu.tar.gz": []byte("not the real tarball"),
	}
	for _, s := range bitcoinCoreSigners {
		files[s.Name+".gpg"] = readVector(t, "keys/bitcoin-core-builders/"+s.Name+".gpg")
	}
	srv := serve(t, files)
	var c Config
	Defaults(contract.BitcoinCore, &c)
	_, err := fetch(t, c, FetchOptions{Mirror: srv.URL})
	want := "bitcoin-30.2-x86_64-linux-gnu.tar.gz: sha256 mismatch: want 6aa7bb4feb699c4c6262dd23e4004191f6df7f373b5d5978b5bcdd4bb72f75d8 (listed in the signed SHA256SUMS), got " + sha(files["bitcoin-30.2-x86_64-linux-gnu.tar.gz"])
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got  %v\nwant %s…", err, want)
	}
}

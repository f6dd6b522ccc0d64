package artifact

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodebake/nodebake/internal/digest"
	"github.com/nodebake/nodebake/internal/progress"
)

// FetchOptions say where release files come from.
type FetchOptions struct {
	// CacheDir holds downloads (under artifacts/), reused by later builds
	// but verified again each time.
	CacheDir string
	// Mirror replaces every download location: a local directory, or an
	// http(s) URL, holding the release files and the signers' key files,
	// each under its own file name (the last part of its official URL).
	Mirror string
	// Offline forbids the network: files come from a Mirror directory or
	// from the cache.
	Offline bool
	// KeyDir is where signer keys given as relative paths are found
	// (image.yaml's folder).
	KeyDir string
	// Progress receives download progress; nil is silent.
	Progress io.Writer
}

// Release is a verified release.
type Release struct {
	Version     string
	TarballName string // e.g. bitcoin-30.2-x86_64-linux-gnu.tar.gz
	// Paths of the verified files (in the cache or the mirror directory).
	Tarball, Sums, Signature string
	SHA256                   string   // the tarball's
	Signers                  []string // pinned signers with a good signature, in pin order
	Unknown                  []string // signatures from keys that are not pinned, ignored
}

// Size limits for what is downloaded: the small files are read into memory.
const (
	maxSmall   = 16 << 20
	maxTarball = 2 << 30
)

var client = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	TLSHandshakeTimeout:   30 * time.Second,
	ResponseHeaderTimeout: 60 * time.Second,
}}

// Fetch downloads (or finds in the mirror or cache) the release that c
// pins and verifies it: every signer key must have its pinned fingerprint,
// at least c.MinSignatures of them must have signed the sums file, and the
// tarball's sha256 must be the one the sums file lists (and c.SHA256 when
// set). The sums file and its signatures are checked before the tarball
// is downloaded. A file that fails verification is dropped from the cache
// index, so the next build fetches it again instead of failing on the same
// copy.
func Fetch(ctx context.Context, c Config, opts FetchOptions) (*Release, error) {
	if errs := c.Validate(); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return nil, fmt.Errorf("artifact %s: %s", c.Tarball, strings.Join(msgs, "; "))
	}
	if opts.CacheDir == "" {
		return nil, errors.New("artifact: no cache directory given")
	}
	f := &fetcher{ctx: ctx, opts: opts, store: newStore(opts.CacheDir)}
	if isHTTP(opts.Mirror) {
		f.mirrorURL = strings.TrimSuffix(opts.Mirror, "/") + "/"
	} else if opts.Mirror != "" {
		f.mirrorDir = opts.Mirror
	}
	base := strings.TrimSuffix(c.BaseURL, "/") + "/"

	sums, sumsData, err := f.small(base+c.Sums, c.Sums, "")
	if err != nil {
		return nil, err
	}
	sig, sigData, err := f.small(base+c.Signature, c.Signature, "")
	if err != nil {
		return nil, err
	}
	keys := make([]pinnedKey, len(c.Signers))
	var keyFiles []located
	for i, s := range c.Signers {
		loc, data, err := f.key(s, c.Tarball)
		if err != nil {
			return nil, err
		}
		if keys[i], err = pinKey(s, data, loc.where); err != nil {
			f.forget(loc)
			return nil, err
		}
		keyFiles = append(keyFiles, loc)
	}
	t := checkSignatures(c.Sums, sumsData, sigData, keys)
	if err := t.quorum(c.Tarball, c.Sums, c.MinSignatures); err != nil {
		f.forget(append(keyFiles, sums, sig)...)
		return nil, err
	}

	listed, err := listedSum(sumsData, c.Sums, c.Tarball)
	if err != nil {
		return nil, err
	}
	tarball, err := f.get(base+c.Tarball, c.Tarball, "", maxTarball)
	if err != nil {
		return nil, err
	}
	if err := checkTarball(c, listed, tarball.sum); err != nil {
		f.forget(tarball)
		return nil, err
	}
	f.say("%s: verified: sha256 %s, signed by %s (%d required; %d signatures from unpinned keys ignored)\n",
		c.Tarball, tarball.sum, strings.Join(t.order, ", "), c.MinSignatures, len(t.unknown))
	if len(t.bad) > 0 {
		f.say("%s: signatures that did not count: %s\n", c.Sums, strings.Join(t.bad, "; "))
	}
	return &Release{
		Version:     c.Version,
		TarballName: c.Tarball,
		Tarball:     tarball.path,
		Sums:        sums.path,
		Signature:   sig.path,
		SHA256:      tarball.sum,
		Signers:     t.order,
		Unknown:     t.unknown,
	}, nil
}

type fetcher struct {
	ctx       context.Context
	opts      FetchOptions
	store     store
	mirrorDir string
	mirrorURL string
}

// located is a file found for a URL.
type located struct {
	path, sum string
	where     string // URL or path, for messages
	key       string // cache index key; "" when not cached
}

// key returns signer s's key file: from a local path, or fetched from its
// URL. Fetched keys are cached per release (scope): a builder who extends an
// expiring key republishes it at the same URL, and a later release may be
// signed after the old expiry date.
func (f *fetcher) key(s Signer, scope string) (located, []byte, error) {
	if isHTTP(s.Key) {
		u, _ := url.Parse(s.Key)
		return f.small(s.Key, path.Base(u.Path), scope)
	}
	p := s.Key
	if !filepath.IsAbs(p) {
		p = filepath.Join(f.opts.KeyDir, p)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return located{}, nil, fmt.Errorf("signer %s: cannot read key: %v", s.Name, err)
	}
	return located{path: p, where: p}, data, nil
}

// small gets a file small enough to be read into memory.
func (f *fetcher) small(officialURL, name, scope string) (located, []byte, error) {
	loc, err := f.get(officialURL, name, scope, maxSmall)
	if err != nil {
		return loc, nil, err
	}
	data, err := os.ReadFile(loc.path)
	return loc, data, err
}

// get finds the file published at officialURL: in the mirror directory,
// else in the cache under the URL it would be downloaded from, else by
// downloading it.
func (f *fetcher) get(officialURL, name, scope string, max int64) (located, error) {
	if f.mirrorDir != "" {
		p := filepath.Join(f.mirrorDir, name)
		sum, err := digest.File(p)
		if err != nil {
			return located{}, fmt.Errorf("%s: not in the mirror folder %s (%v): download %s into it", name, f.mirrorDir, err, officialURL)
		}
		return located{path: p, sum: sum, where: p}, nil
	}
	u := officialURL
	if f.mirrorURL != "" {
		u = f.mirrorURL + name
	}
	key := u
	if scope != "" {
		key += " for " + scope
	}
	p, sum, ok, err := f.store.lookup(key)
	var corrupt *errCorrupt
	switch {
	case errors.As(err, &corrupt) && f.opts.Offline:
		return located{}, fmt.Errorf("%s: %v and offline mode forbids downloading it again: fetch the files by hand and pass --mirror DIR (see README)", name, err)
	case errors.As(err, &corrupt):
		f.say("%s: %v; downloading it again\n", name, err)
	case err != nil:
		return located{}, fmt.Errorf("%s: reading the download cache: %v", name, err)
	case ok:
		return located{path: p, sum: sum, where: u, key: key}, nil
	}
	if f.opts.Offline {
		return located{}, fmt.Errorf("%s: %s is not in the download cache and offline mode forbids downloading it: fetch the files by hand and pass --mirror DIR (see README)", name, u)
	}
	return f.download(u, name, key, max)
}

func (f *fetcher) download(u, name, key string, max int64) (located, error) {
	req, err := http.NewRequestWithContext(f.ctx, http.MethodGet, u, nil)
	if err != nil {
		return located{}, fmt.Errorf("%s: %v", name, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return located{}, f.netError(name, u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		hint := "check the version and file names in image.yaml"
		if f.mirrorURL != "" {
			hint = "the mirror does not serve it"
		}
		return located{}, fmt.Errorf("%s: cannot download %s: server answered %s: %s", name, u, resp.Status, hint)
	}
	if resp.ContentLength > max {
		return located{}, fmt.Errorf("%s: %s is %s, more than the %s allowed", name, u, progress.MB(resp.ContentLength), progress.MB(max))
	}
	f.say("downloading %s\n", u)
	count := progress.New(f.opts.Progress, name, resp.ContentLength)
	body := &capped{r: resp.Body, left: max}
	p, sum, err := f.store.put(key, io.TeeReader(body, count.Writer(io.Discard)))
	count.Done()
	switch {
	case body.over:
		return located{}, fmt.Errorf("%s: %s is larger than the %s allowed: refusing it", name, u, progress.MB(max))
	case body.err != nil:
		return located{}, f.netError(name, u, body.err)
	case err != nil:
		return located{}, fmt.Errorf("%s: saving it in the download cache: %v", name, err)
	}
	return located{path: p, sum: sum, where: u, key: key}, nil
}

func (f *fetcher) netError(name, u string, err error) error {
	if f.ctx.Err() != nil {
		return fmt.Errorf("%s: download of %s stopped: %w", name, u, f.ctx.Err())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // it repeats the URL
	}
	return fmt.Errorf("%s: cannot download %s: %v; to build without network, fetch the files by hand and pass --mirror DIR (see README)", name, u, err)
}

func (f *fetcher) forget(files ...located) {
	for _, l := range files {
		if l.key != "" {
			f.store.forget(l.key)
		}
	}
}

func (f *fetcher) say(format string, args ...any) {
	if f.opts.Progress != nil {
		fmt.Fprintf(f.opts.Progress, format, args...)
	}
}

// capped stops a download that grows past its limit (a server that lies
// about, or omits, the length) and remembers a failed read, so that errors
// of the network and of the disk are told apart.
type capped struct {
	r    io.Reader
	left int64
	over bool
	err  error
}

func (c *capped) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		c.over = true
		return n, errors.New("download too large")
	}
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

package artifact

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
)

// File is one file taken out of a release tarball.
type File struct {
	Path string      // inside the tarball, e.g. bitcoin-30.2/bin/bitcoind
	Mode fs.FileMode // permission bits as packed
	Data []byte
}

// Files returns the regular files with the given base names, wherever they
// sit in the tarball: the top folder differs between releases (Fulcrum
// 1.11.1 packs Fulcrum-1.11.1-x86_64-linux/ or …-amd64-linux/, Bitcoin
// Core bitcoin-30.2/bin/). A required name that is missing, or any name
// packed twice, is an error; an optional one may be missing. The tarball is
// hashed again while it is read, and the result is refused if it is no
// longer the file that was verified.
func (r *Release) Files(required []string, optional ...string) (map[string]File, error) {
	f, err := os.Open(r.Tarball)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", r.TarballName, err)
	}
	defer f.Close()
	h := sha256.New()
	raw := io.TeeReader(f, h)
	zr, err := gzip.NewReader(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: not a gzip file: %v", r.TarballName, err)
	}
	want := map[string]bool{}
	for _, n := range required {
		want[n] = true
	}
	for _, n := range optional {
		want[n] = false
	}
	found := map[string]File{}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: reading the tarball: %v", r.TarballName, err)
		}
		base := path.Base(hdr.Name)
		if _, wanted := want[base]; hdr.Typeflag != tar.TypeReg || !wanted {
			continue
		}
		if prev, dup := found[base]; dup {
			return nil, fmt.Errorf("%s: two files named %s (%s and %s): cannot tell which to install", r.TarballName, base, prev.Path, hdr.Name)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: reading %s: %v", r.TarballName, hdr.Name, err)
		}
		found[base] = File{Path: hdr.Name, Mode: fs.FileMode(hdr.Mode).Perm(), Data: data}
	}
	// Hash the rest (tar padding, gzip trailer) so the whole file is compared.
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return nil, fmt.Errorf("%s: %v", r.TarballName, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != r.SHA256 {
		return nil, fmt.Errorf("%s: changed since it was verified (sha256 %s, verified %s): build again", r.TarballName, got, r.SHA256)
	}
	var missing []string
	for n, req := range want {
		if _, ok := found[n]; !ok && req {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("%s: no regular file named %s in the tarball", r.TarballName, strings.Join(missing, ", "))
	}
	return found, nil
}

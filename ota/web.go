package ota

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// webFolder is a folder written by `nodebake publish DIR` on any web
// server.
type webFolder struct {
	base   string
	client *http.Client
}

// webClient gives up on a server that stops answering, but never limits
// how long a large file may take to arrive. It follows no redirect from
// https to http, nor, unless insecure, to http at all.
func webClient(insecure bool, roots *x509.CertPool) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       &tls.Config{RootCAs: roots},
			TLSHandshakeTimeout:   30 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			if (!insecure || via[0].URL.Scheme == "https") && req.URL.Scheme != "https" {
				return fmt.Errorf("refusing a redirect from https to %s", req.URL.Redacted())
			}
			return nil
		},
	}
}

func (w webFolder) small(ctx context.Context, names []string) (map[string][]byte, error) {
	got := map[string][]byte{}
	for _, f := range names {
		body, u, err := w.get(ctx, f, -1)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(io.LimitReader(body, maxManifest+1))
		body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		if len(b) > maxManifest {
			return nil, fmt.Errorf("%s: larger than %d bytes: not a channel's %s", u, maxManifest, f)
		}
		got[f] = b
	}
	return got, nil
}

// errNotFound is a 404 answer.
var errNotFound = errors.New("not found")

func (w webFolder) open(ctx context.Context, file string, want File) (io.ReadCloser, error) {
	body, _, err := w.get(ctx, file, want.Size)
	return body, err
}

func (w webFolder) openRange(ctx context.Context, file string, want File, off, n int64) (io.ReadCloser, error) {
	u, err := url.JoinPath(w.base, file)
	if err != nil {
		return nil, fmt.Errorf("bundle URL %q: %w", w.base, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return rangeResponse(w.client, req, want.Size, off, n)
}

// rangeResponse sends req for bytes off to off+n-1 of a file of size
// bytes and returns the body of a 206 answer whose Content-Range is
// exactly that. A 200 answer (the whole file) is errNoRanges.
func rangeResponse(c *http.Client, req *http.Request, size, off, n int64) (io.ReadCloser, error) {
	want := fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, size)
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		resp.Body.Close()
		return nil, errNoRanges
	case resp.StatusCode != http.StatusPartialContent:
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s (%s): %s", req.URL.Redacted(), want, resp.Status)
	case resp.Header.Get("Content-Range") != want || (resp.ContentLength >= 0 && resp.ContentLength != n):
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: asked for %s, the server sends %q (%d bytes): the published bundle is incomplete or mixed with another",
			req.URL.Redacted(), want, resp.Header.Get("Content-Range"), resp.ContentLength)
	}
	return resp.Body, nil
}

// get requests base/name and returns the body. A known size must match
// the response's length when the server gives one.
func (w webFolder) get(ctx context.Context, name string, size int64) (io.ReadCloser, string, error) {
	u, err := url.JoinPath(w.base, name)
	if err != nil {
		return nil, "", fmt.Errorf("bundle URL %q: %w", w.base, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, u, err
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, u, err
	}
	if resp.StatusCode == http.StatusNotFound {
		resp.Body.Close()
		return nil, u, fmt.Errorf("GET %s: %w", u, errNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, u, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if size >= 0 && resp.ContentLength >= 0 && resp.ContentLength != size {
		resp.Body.Close()
		return nil, u, fmt.Errorf("GET %s: the server sends %d bytes, the signed manifest says %d: the published bundle is incomplete or mixed with another", u, resp.ContentLength, size)
	}
	return resp.Body, u, nil
}

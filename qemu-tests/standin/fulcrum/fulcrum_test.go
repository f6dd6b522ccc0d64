package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// Negotiation as in Fulcrum's Server::rpc_server_version: the highest
// version both sides speak, or an error that closes the connection.
func TestVersionNegotiation(t *testing.T) {
	f := &fulcrum{conf: &config{}}
	for _, c := range []struct {
		params string
		want   string // the negotiated version, or "" for an error
	}{
		{`["w", "1.4"]`, "1.4"},
		{`["w", "1.4.2"]`, "1.4.2"},
		{`["w", ["1.4", "1.4"]]`, "1.4"},
		{`["w", ["1.2", "1.4.1"]]`, "1.4.1"},
		{`["w", ["1.4", "1.6"]]`, "1.4.2"},
		{`["w"]`, "1.4"},
		{`[]`, "1.4"},
		{`["w", "1.2"]`, ""},
		{`["w", "1.5"]`, ""},
		{`["w", ["1.5", "1.6"]]`, ""},
		{`["w", ["1.4", "1.2"]]`, ""},
		{`["w", "one.four"]`, ""},
	} {
		var params []json.RawMessage
		if err := json.Unmarshal([]byte(c.params), &params); err != nil {
			t.Fatal(err)
		}
		s := &session{f: f}
		res, rerr := s.version(params, json.RawMessage(c.params))
		switch {
		case c.want == "" && (rerr == nil || !rerr.disconnect):
			t.Errorf("%s: %v, want an error that disconnects", c.params, res)
		case c.want != "" && (rerr != nil || res.([]string)[1] != c.want):
			t.Errorf("%s: %v %v, want %s", c.params, res, rerr, c.want)
		}
	}
	s := &session{f: f}
	s.version(nil, nil)
	if _, rerr := s.version(nil, nil); rerr == nil || rerr.Message != "server.version already sent" {
		t.Errorf("second server.version: %v", rerr)
	}
}

func TestConfig(t *testing.T) {
	base := "datadir = /d\nbitcoind = 127.0.0.1:8332\nrpccookie = /c  # comment\n"
	c, err := parseConfig("2.1.1", "f.conf", strings.NewReader(base+"ADMIN = 8000\nstats = 0.0.0.0:8080\nPeering\nssl = 0.0.0.0:50002\ncert = c.pem\nkey = k.pem\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.rpccookie != "/c" || strings.Join(c.admin, " ") != "127.0.0.1:8000" || strings.Join(c.stats, " ") != "0.0.0.0:8080" ||
		len(c.tcp) != 0 || strings.Join(c.ssl, " ") != "0.0.0.0:50002" {
		t.Errorf("parsed %+v", c)
	}
	if c, err := parseConfig("1.11.1", "f.conf", strings.NewReader(base)); err != nil || strings.Join(c.tcp, " ") != "0.0.0.0:50001" {
		t.Errorf("default tcp: %v %v", c, err)
	}
	for text, want := range map[string]string{
		"datadir = /d\nrpccookie = /c\n":             "required option missing: bitcoind",
		base + "rpcuser = u\n":                       "rpccookie cannot be used together with rpcuser/rpcpassword",
		base + "ssl = 0.0.0.0:50002\n":               "SSL option requires both cert and key",
		base + "wss = 0.0.0.0:50004\n":               "serves no Web Socket ports",
		base + "polltime = 60\n":                     "polltime = 60: want seconds between 0.5 and 30",
		base + "tcp = 50001\n":                       "50001: want interface:port",
		base + "\n\nutxo-cache = 2000\n":             "f.conf line 6: 'utxo-cache': this option was removed in Fulcrum 2.0.0",
		base + "fast-sync = 2000\n":                  "f.conf line 4: unknown option 'fast-sync'",
		strings.Replace(base, "datadir", "dbdir", 1): "unknown option 'dbdir'",
	} {
		if _, err := parseConfig("2.1.1", "f.conf", strings.NewReader(text)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
	if _, err := parseConfig("1.9.0", "f.conf", strings.NewReader(base)); err == nil {
		t.Error("a release without an option list was accepted")
	}
}

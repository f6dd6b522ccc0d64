package bitcoinconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func load(t *testing.T, args []string, files map[string]string) (*Settings, error) {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, rest, err := ParseArgs(append([]string{"-datadir=" + dir}, args...))
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		t.Fatalf("rest %v", rest)
	}
	return s, s.Load(filepath.Join(dir, "unused-default"))
}

// The rules deciding which value wins are bitcoind's, including the one
// that surprises: an included file cannot override the file including it.
func TestPrecedence(t *testing.T) {
	s, err := load(t, []string{"-rpcport=1", "-rpcport=2", "-norest"}, map[string]string{
		"bitcoin.conf": "rpcport=3\ndbcache=100 # main file\ndbcache=200\nincludeconf=user.conf\nrpcbind=127.0.0.1\n[test]\ntxindex=0\n[main]\ntxindex=1\n",
		"user.conf":    "dbcache=300\nprune=550\nrpcbind=10.0.0.1\nincludeconf=nested.conf\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"rpcport": "2", "dbcache": "100", "prune": "550", "txindex": "1", "rest": "0"} {
		if got, _ := s.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if got := strings.Join(s.All("rpcbind"), ","); got != "127.0.0.1,10.0.0.1" {
		t.Errorf("rpcbind = %s", got)
	}
	if len(s.ConfFiles) != 2 || len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "includeconf cannot be used from included files") {
		t.Errorf("files %v, warnings %v", s.ConfFiles, s.Warnings)
	}
}

func TestBool(t *testing.T) {
	s, err := load(t, []string{"-a", "-b=0", "-noc"}, map[string]string{"bitcoin.conf": "d=1\ne=true\n"})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"a": true, "b": false, "c": false, "d": true, "unset": true} {
		if got, err := s.Bool(name, true); err != nil || got != want {
			t.Errorf("%s = %v (%v), want %v", name, got, err, want)
		}
	}
	if _, err := s.Bool("e", false); err == nil {
		t.Error("e=true read as a boolean; bitcoind reads booleans as integers")
	}
}

func TestErrors(t *testing.T) {
	for name, c := range map[string]struct {
		args  []string
		files map[string]string
		want  string
	}{
		"missing include":        {nil, map[string]string{"bitcoin.conf": "includeconf=gone.conf\n"}, "Failed to include configuration file gone.conf"},
		"missing -conf":          {[]string{"-conf=gone.conf"}, nil, "could not be opened"},
		"includeconf on the cli": {[]string{"-includeconf=x.conf"}, nil, "cannot be used from commandline"},
		"line without =":         {nil, map[string]string{"bitcoin.conf": "server=1\nnotxindex\n"}, "parse error on line 2: notxindex, if you intended to specify a negated option, use notxindex=1 instead"},
		"missing datadir":        {[]string{"-datadir=/nonexistent/x"}, nil, `Specified data directory "/nonexistent/x" does not exist.`},
	} {
		_, err := load(t, c.args, c.files)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

func TestRestAndRelativePaths(t *testing.T) {
	s, rest, err := ParseArgs([]string{"-datadir=/d", "-rpcwait", "getblockhash", "0"})
	if err != nil || strings.Join(rest, " ") != "getblockhash 0" {
		t.Fatalf("rest %v, %v", rest, err)
	}
	s.DataDir = "/d"
	if s.Path(".cookie") != "/d/.cookie" || s.Path("/run/x.pid") != "/run/x.pid" {
		t.Errorf("Path: %s %s", s.Path(".cookie"), s.Path("/run/x.pid"))
	}
}

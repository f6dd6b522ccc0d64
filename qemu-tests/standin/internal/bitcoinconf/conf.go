// Package bitcoinconf reads options the way Bitcoin Core's bitcoind and
// bitcoin-cli do, for the stand-in programs of package standin: leading
// -name[=value] arguments, then bitcoin.conf and the files it includes
// (includeconf). It keeps the rules that decide which value wins, because a
// config that relies on the wrong rule works with a stand-in only if the
// stand-in gets them right:
//   - on the command line the last value of an option wins, in config files
//     the first one does, and the command line beats the config files;
//   - an included file is read after the file that includes it, so it
//     cannot override a value that file already set;
//   - -nofoo means foo=0; a boolean is read as an integer ("true" is no
//     boolean to bitcoind, so it is refused here rather than read as 0).
//
// Only the mainnet section is read: the stand-ins serve mainnet only.
package bitcoinconf

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Settings are the options a program was started with.
type Settings struct {
	cmd  map[string][]string
	conf map[string][]string
	// confOrder lists config-file option names in the order first seen.
	confOrder []string
	// cmdOrder lists command-line option names in the order first seen.
	cmdOrder []string
	// DataDir is the data directory (after Load).
	DataDir string
	// ConfFiles are the config files read by Load, the main one first.
	ConfFiles []string
	// Warnings are what bitcoind would log as warnings while reading.
	Warnings []string
}

// ParseArgs reads the leading -name[=value] arguments (one or two
// dashes). The arguments after them (bitcoin-cli's method and parameters)
// are returned as rest.
func ParseArgs(args []string) (s *Settings, rest []string, err error) {
	s = &Settings{cmd: map[string][]string{}, conf: map[string][]string{}}
	for i, a := range args {
		if !strings.HasPrefix(a, "-") || a == "-" {
			return s, args[i:], nil
		}
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		name, value, _ := strings.Cut(a, "=")
		if name == "" {
			return nil, nil, fmt.Errorf("invalid parameter %s", args[i])
		}
		if name == "includeconf" {
			return nil, nil, fmt.Errorf("-includeconf cannot be used from commandline; -includeconf=%s", value)
		}
		name, value = s.negate(name, value, "-"+name)
		if _, seen := s.cmd[name]; !seen {
			s.cmdOrder = append(s.cmdOrder, name)
		}
		s.cmd[name] = append(s.cmd[name], value)
	}
	return s, nil, nil
}

// negate turns nofoo[=1] into foo=0, as bitcoind does.
func (s *Settings) negate(name, value, shown string) (string, string) {
	if !strings.HasPrefix(name, "no") || len(name) == 2 {
		return name, value
	}
	n, err := strconv.Atoi(value)
	switch {
	case value == "" || (err == nil && n != 0):
		return name[2:], "0"
	default:
		s.Warnings = append(s.Warnings, fmt.Sprintf("Parsed potentially confusing double-negative %s=%s", shown, value))
		return name[2:], "1"
	}
}

// Load finds the data directory (-datadir, else defaultDataDir, which is
// created if missing as bitcoind does) and reads the config file (-conf,
// relative to the data directory; bitcoin.conf there by default) and the
// files it includes.
func (s *Settings) Load(defaultDataDir string) error {
	s.DataDir = defaultDataDir
	explicit := false
	if d, ok := s.lastCmd("datadir"); ok && d != "" {
		s.DataDir, explicit = d, true
	}
	if !explicit {
		if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
			return fmt.Errorf("cannot create the default data directory: %v", err)
		}
	}
	if !isDir(s.DataDir) {
		return fmt.Errorf("Specified data directory \"%s\" does not exist.", s.DataDir)
	}
	conf, given := s.lastCmd("conf")
	if !given || conf == "" {
		conf = "bitcoin.conf"
	}
	conf = s.Path(conf)
	if err := s.readFile(conf, true); err != nil {
		if given || !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("Error reading configuration file: specified config file \"%s\" could not be opened: %v", conf, err)
		}
		return nil
	}
	// A datadir set in the config file moves the data directory, as in
	// bitcoind (unless the command line set one).
	if d, ok := s.firstConf("datadir"); ok && !explicit && d != "" {
		if !isDir(d) {
			return fmt.Errorf("Specified data directory \"%s\" does not exist.", d)
		}
		s.DataDir = d
	}
	for _, inc := range s.conf["includeconf"] {
		if err := s.readFile(s.Path(inc), false); err != nil {
			return fmt.Errorf("Error reading configuration file: Failed to include configuration file %s: %v", inc, err)
		}
	}
	return nil
}

// Path resolves p as bitcoind resolves file options: relative to the data
// directory.
func (s *Settings) Path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(s.DataDir, p)
}

// readFile reads one config file. Sections other than [main] belong to
// other chains and are skipped; so are "test.foo=" style names.
func (s *Settings) readFile(path string, top bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	s.ConfFiles = append(s.ConfFiles, path)
	section := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || strings.HasPrefix(name, "-") {
			hint := ""
			if strings.HasPrefix(line, "no") {
				hint = ", if you intended to specify a negated option, use " + line + "=1 instead"
			}
			return fmt.Errorf("parse error on line %d: %s%s", n, line, hint)
		}
		if sec, rest, dotted := strings.Cut(name, "."); dotted {
			if sec != "main" {
				continue
			}
			name = rest
		} else if section != "" && section != "main" {
			continue
		}
		if name == "includeconf" && !top {
			s.Warnings = append(s.Warnings, fmt.Sprintf("includeconf cannot be used from included files; ignoring -includeconf=%s (in %s)", value, path))
			continue
		}
		name, value = s.negate(name, value, name)
		if _, seen := s.conf[name]; !seen {
			s.confOrder = append(s.confOrder, name)
		}
		s.conf[name] = append(s.conf[name], value)
	}
	return sc.Err()
}

func (s *Settings) lastCmd(name string) (string, bool) {
	v := s.cmd[name]
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

func (s *Settings) firstConf(name string) (string, bool) {
	v := s.conf[name]
	if len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// Get is the value of a single-valued option: the command line's last,
// else the config files' first.
func (s *Settings) Get(name string) (string, bool) {
	if v, ok := s.lastCmd(name); ok {
		return v, true
	}
	return s.firstConf(name)
}

// GetDefault is Get with a default.
func (s *Settings) GetDefault(name, def string) string {
	if v, ok := s.Get(name); ok {
		return v
	}
	return def
}

// All is every value of a multi-valued option (rpcbind, rpcallowip,
// zmqpub*): the command line's, then the config files'.
func (s *Settings) All(name string) []string {
	return append(append([]string(nil), s.cmd[name]...), s.conf[name]...)
}

// Bool is a boolean option: "" and non-zero integers are true, 0 is false.
func (s *Settings) Bool(name string, def bool) (bool, error) {
	v, ok := s.Get(name)
	if !ok {
		return def, nil
	}
	if v == "" {
		return true, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return false, fmt.Errorf("-%s=%s: bitcoind reads booleans as integers: write %s=1 or %s=0", name, v, name, name)
	}
	return n != 0, nil
}

// Names lists every option given, command line first, each once.
func (s *Settings) Names() []string {
	seen := map[string]bool{}
	var names []string
	for _, n := range append(append([]string{}, s.cmdOrder...), s.confOrder...) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	return names
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

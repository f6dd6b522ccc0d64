package main

import (
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"

	"github.com/nodebake/nodebake/internal/hosttools"
)

// debian answers what this machine's dpkg knows.
type debian interface {
	// everywhere says whether the package is on every Debian machine
	// (Essential, or Priority required), so no list needs to name it.
	everywhere(pkg string) bool
	// owners lists the packages that installed the program here; false
	// when it is not installed.
	owners(program string) ([]string, bool)
}

// lists are the Makefile's package lists.
type lists struct {
	build, test []string // test includes build, as in the Makefile
}

// check compares the programs found with the table and the lists and
// returns one message per problem, sorted.
func check(found map[string][]string, open []unresolved, table, build []hosttools.Tool, device map[string]string, l lists, deb debian) []string {
	var problems []string
	for _, u := range open {
		problems = append(problems, fmt.Sprintf("%s: %s runs %s, which is not a constant: name the program with a constant, or add it to internal/hostcheck's allowed list with the reason it needs no Debian package", u.at, u.call, u.expr))
	}

	declared := map[string]hosttools.Tool{}
	for _, t := range table {
		declared[t.Name] = t
	}
	names := make([]string, 0, len(found))
	for n := range found {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, ok := device[n]; ok {
			continue
		}
		where := runAt(found[n])
		t, ok := declared[n]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s (%s) is not in hosttools.Programs: add it with its Debian package (dpkg -S names it)", n, where))
			continue
		}
		if p := missing(t, l.test, deb); p != "" {
			problems = append(problems, fmt.Sprintf("%s (%s): package %s is not in the Makefile's TEST_PACKAGES: add it", n, where, p))
		}
	}

	for _, t := range table {
		if _, ok := found[t.Name]; !ok && !strings.HasPrefix(t.Name, "/") {
			problems = append(problems, fmt.Sprintf("%s: hosttools.Programs names it but no code runs it: remove it", t.Name))
			continue
		}
		if _, ok := found[t.Name]; !ok {
			// A file the code reads, not runs: the scan cannot see it, so
			// its package is checked here.
			if p := missing(t, l.test, deb); p != "" {
				problems = append(problems, fmt.Sprintf("%s (in hosttools.Programs): package %s is not in the Makefile's TEST_PACKAGES: add it", t.Name, p))
			}
		}
		if t.Package == hosttools.GoToolchain {
			continue
		}
		if owners, ok := deb.owners(t.Name); ok && !contains(owners, t.Package) {
			problems = append(problems, fmt.Sprintf("%s: hosttools.Programs says package %s, but dpkg says %s installed it here: correct the table", t.Name, t.Package, strings.Join(owners, ", ")))
		}
	}

	for _, t := range build {
		if p := missing(t, l.build, deb); p != "" {
			problems = append(problems, fmt.Sprintf("%s (nodebake build runs it, hosttools.Build): package %s is not in the Makefile's BUILD_PACKAGES: add it", t.Name, p))
		}
	}
	return problems
}

// missing returns t's package if a fresh machine would lack it after
// installing list, else "".
func missing(t hosttools.Tool, list []string, deb debian) string {
	if t.Package == hosttools.GoToolchain || contains(list, t.Package) || deb.everywhere(t.Package) {
		return ""
	}
	return t.Package
}

// runAt shows where a program is run: the first place, and how many more.
func runAt(places []string) string {
	s := "run at " + places[0]
	if n := len(places) - 1; n == 1 {
		s += " and 1 other place"
	} else if n > 1 {
		s += fmt.Sprintf(" and %d other places", n)
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// dpkg is the debian of this machine.
type dpkg struct{}

func (dpkg) everywhere(pkg string) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Essential} ${Priority}", pkg).Output()
	if err != nil {
		return false // unknown here, so not on every machine
	}
	f := strings.Fields(string(out))
	return len(f) == 2 && (f[0] == "yes" || f[1] == "required")
}

func (dpkg) owners(program string) ([]string, bool) {
	path := program
	if !strings.HasPrefix(program, "/") {
		p, err := exec.LookPath(program)
		if err != nil {
			return nil, false
		}
		path = p
	}
	// Bookworm's packages list many programs under /bin and /sbin, which
	// PATH reaches through the /usr symlinks.
	for _, p := range []string{path, strings.TrimPrefix(path, "/usr")} {
		out, err := exec.Command("dpkg-query", "-S", p).Output()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			pkgs, _, ok := strings.Cut(line, ": ")
			if !ok || strings.HasPrefix(line, "diversion ") {
				continue
			}
			var list []string
			for _, q := range strings.Split(pkgs, ", ") {
				name, _, _ := strings.Cut(q, ":") // drop :amd64
				list = append(list, name)
			}
			return list, true
		}
	}
	return nil, false
}

// splitPosition splits file:line.
func splitPosition(at string) (string, int, bool) {
	i := strings.LastIndexByte(at, ':')
	if i < 0 {
		return at, 0, false
	}
	n, err := strconv.Atoi(at[i+1:])
	return at[:i], n, err == nil
}

// lessPosition orders file:line by file, then line as a number.
func lessPosition(a, b string) bool {
	fa, la, _ := splitPosition(a)
	fb, lb, _ := splitPosition(b)
	if fa != fb {
		return fa < fb
	}
	return la < lb
}

func joinLines(lines []string) string { return strings.Join(lines, "\n  ") }

package spec

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// decode parses b strictly and keeps the node tree so later checks can name
// the line of a field.
func decode(b []byte, name string) (*Spec, *yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, nil, syntaxError(name, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil, fmt.Errorf("%s:1: empty spec: start from the image.yaml in the nodebake repository", name)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	s := &Spec{}
	if err := dec.Decode(s); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, nil, syntaxError(name, err)
		}
		idx := index(&doc)
		var list Errors
		for _, msg := range te.Errors {
			list = append(list, typeError(msg, idx))
		}
		return nil, nil, list.withLines(name, &doc)
	}
	return s, &doc, nil
}

// syntaxError puts one of yaml.v3's messages that is about no field in the
// file:line form of every other spec error, on line 1 when it names none.
func syntaxError(name string, err error) error {
	msg, line := strings.TrimPrefix(err.Error(), "yaml: "), 1
	if m := lineMsg.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	return fmt.Errorf("%s:%d: %s", name, line, msg)
}

// lineMsg matches yaml.v3's "line N: message".
var lineMsg = regexp.MustCompile(`^line (\d+): (.*)$`)

// typeError turns one of yaml.v3's messages into a field error on the path
// whose key sits on that line.
func typeError(msg string, idx map[int]string) Error {
	m := lineMsg.FindStringSubmatch(msg)
	if m == nil {
		return Error{Msg: msg}
	}
	line, _ := strconv.Atoi(m[1])
	text := m[2]
	if f, ok := strings.CutPrefix(text, "field "); ok {
		if name, _, ok := strings.Cut(f, " not found"); ok {
			text = fmt.Sprintf("unknown field %q", name)
		}
	}
	text = strings.Replace(text, "cannot unmarshal !!", "wrong type: got !!", 1)
	return Error{Line: line, Path: idx[line], Msg: text}
}

// index maps each line that starts a mapping key or sequence item to the
// dotted path of the value there (users[1].name).
func index(doc *yaml.Node) map[int]string {
	idx := map[int]string{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := join(path, n.Content[i].Value)
				idx[n.Content[i].Line] = p
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if _, taken := idx[c.Line]; !taken {
					idx[c.Line] = p
				}
				walk(c, p)
			}
		}
	}
	walk(doc, "")
	return idx
}

// lineOf finds the line of a dotted path; for a path that is absent (a
// required field left out) it falls back to the nearest present parent.
func lineOf(doc *yaml.Node, path string) int {
	byPath := map[string]int{}
	for line, p := range index(doc) {
		if old, ok := byPath[p]; !ok || line < old {
			byPath[p] = line
		}
	}
	for p := path; p != ""; p = parent(p) {
		if l, ok := byPath[p]; ok {
			return l
		}
	}
	return 1
}

func parent(p string) string {
	if i := strings.LastIndexAny(p, ".["); i >= 0 {
		return p[:i]
	}
	return ""
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Error is one problem in the spec.
type Error struct {
	Line int
	Path string
	Msg  string
}

// Errors is every problem found; the build reports them all at once so a
// user fixes the file in one pass.
type Errors []Error

func (e Errors) withLines(name string, doc *yaml.Node) error {
	for i := range e {
		if e[i].Line == 0 && doc != nil {
			e[i].Line = lineOf(doc, e[i].Path)
		}
	}
	sort.SliceStable(e, func(i, j int) bool { return e[i].Line < e[j].Line })
	var b strings.Builder
	for i, err := range e {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s:%d: ", name, err.Line)
		if err.Path != "" {
			b.WriteString(err.Path + ": ")
		}
		b.WriteString(err.Msg)
	}
	return &SpecError{Text: b.String(), List: e}
}

// SpecError is returned by Load when image.yaml is wrong.
type SpecError struct {
	Text string
	List Errors
}

func (e *SpecError) Error() string { return e.Text }

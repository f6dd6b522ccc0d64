package main

import (
	"fmt"
	"go/ast"
	"go/constant"
	"go/token"
	"go/types"
	"path/filepath"
	"sort"

	"golang.org/x/tools/go/packages"
	"golang.org/x/tools/go/types/typeutil"
)

// A use is one place where code names a program that it runs.
type use struct {
	program string
	at      string // file:line, relative to the module
}

// An unresolved program argument: code runs something that is no constant.
type unresolved struct {
	at   string
	call string // e.g. exec.Command
	expr string // the argument, as written
}

// allowKey names an argument that may stay unresolved: the file it is in,
// relative to the module, and the argument as written.
type allowKey struct{ file, expr string }

// programArg is where exec's functions take the program.
var programArg = map[string]int{"Command": 0, "CommandContext": 1, "LookPath": 0}

// A site is a call whose argument arg names a program: a call to one of
// exec's functions, or to a launcher (a function that passes its own
// parameter on to one).
type site struct {
	pkg  *packages.Package
	fn   *ast.FuncDecl // the function the call is in; nil at package level
	call *ast.CallExpr
	arg  int
}

// result is what resolve makes of a program argument.
type result struct {
	kind   int
	consts []constUse // resolvedConst: the programs, where each is written
	param  int        // resolvedParam: the argument index at the enclosing function's call sites
}

// constUse is a program named by a string constant at pos.
type constUse struct {
	program string
	pos     token.Pos
}

const (
	resolvedNone  = iota // nothing this analysis can name
	resolvedConst        // string constants (several from a table a loop runs through)
	resolvedParam        // a parameter of the enclosing function: look at its callers
	resolvedFound        // found by exec.LookPath or by a launcher, which is checked as a site itself
)

// scanner finds the programs a set of loaded packages runs.
type scanner struct {
	root      string                  // module directory, for relative file names
	calls     map[string][]site       // by callee (funcKey): every static call of a module function
	launchers map[string]map[int]bool // funcKey → argument indices that name a program
	done      map[string]bool         // site already resolved (packages repeat across test variants and tag sets)
	uses      map[use]bool            // the programs found, each with a place
	open      map[string]unresolved   // by position
	allowed   map[allowKey]string     // unresolved arguments allowed on purpose, with the reason
}

func newScanner(root string, allowed map[allowKey]string) *scanner {
	return &scanner{
		root:      root,
		calls:     map[string][]site{},
		launchers: map[string]map[int]bool{},
		done:      map[string]bool{},
		uses:      map[use]bool{},
		open:      map[string]unresolved{},
		allowed:   allowed,
	}
}

// load type-checks every package of the module in dir, tests included,
// built with the given tags.
func load(dir, tags string) ([]*packages.Package, error) {
	cfg := &packages.Config{
		Mode:  packages.NeedName | packages.NeedFiles | packages.NeedSyntax | packages.NeedTypes | packages.NeedTypesInfo,
		Dir:   dir,
		Tests: true,
	}
	if tags != "" {
		cfg.BuildFlags = []string{"-tags=" + tags}
	}
	pkgs, err := packages.Load(cfg, "./...")
	if err != nil {
		return nil, fmt.Errorf("loading the packages in %s (tags %q): %w", dir, tags, err)
	}
	var errs []string
	packages.Visit(pkgs, nil, func(p *packages.Package) {
		for _, e := range p.Errors {
			errs = append(errs, e.Error())
		}
	})
	if len(errs) > 0 {
		return nil, fmt.Errorf("packages in %s (tags %q) do not build, fix them first:\n  %s", dir, tags, joinLines(errs))
	}
	return pkgs, nil
}

// add indexes the calls in pkgs and queues the sites of exec's functions.
func (s *scanner) add(pkgs []*packages.Package) []site {
	var queue []site
	for _, p := range pkgs {
		for _, f := range p.Syntax {
			for _, d := range f.Decls {
				fn, _ := d.(*ast.FuncDecl)
				ast.Inspect(d, func(n ast.Node) bool {
					call, ok := n.(*ast.CallExpr)
					if !ok {
						return true
					}
					callee := typeutil.StaticCallee(p.TypesInfo, call)
					if callee == nil {
						return true
					}
					if callee.Pkg() != nil && callee.Pkg().Path() == "os/exec" {
						if i, ok := programArg[callee.Name()]; ok && len(call.Args) > i {
							queue = append(queue, site{p, fn, call, i})
						}
						return true
					}
					k := s.funcKey(p, callee)
					s.calls[k] = append(s.calls[k], site{p, fn, call, -1})
					return true
				})
			}
		}
	}
	return queue
}

// funcKey names a function by where it is declared, the same in every
// variant of its package (a package and its test variant have distinct
// type objects).
func (s *scanner) funcKey(p *packages.Package, f *types.Func) string {
	return p.Fset.Position(f.Pos()).String()
}

// run resolves the queued sites and the callers of every launcher found
// on the way, then looks again at the arguments left unresolved: a call to
// a launcher found later counts as found.
func (s *scanner) run(queue []site) {
	var left []site
	for len(queue) > 0 {
		st := queue[0]
		queue = queue[1:]
		key := fmt.Sprintf("%s#%d", s.position(st.pkg, st.call.Pos()), st.arg)
		if s.done[key] {
			continue
		}
		s.done[key] = true
		if s.isAllowed(st.pkg, st.call.Args[st.arg]) {
			continue
		}
		r := s.resolve(st.pkg, st.fn, st.call.Args[st.arg])
		switch r.kind {
		case resolvedConst:
			for _, c := range r.consts {
				s.uses[use{c.program, s.position(st.pkg, c.pos)}] = true
			}
		case resolvedParam:
			obj := st.pkg.TypesInfo.Defs[st.fn.Name].(*types.Func)
			k := s.funcKey(st.pkg, obj)
			if s.launchers[k] == nil {
				s.launchers[k] = map[int]bool{}
			}
			if s.launchers[k][r.param] {
				continue
			}
			s.launchers[k][r.param] = true
			for _, c := range s.calls[k] {
				n := len(c.call.Args)
				switch {
				case c.call.Ellipsis.IsValid() && r.param >= n-1:
					// f(name, args...): the program is somewhere in a slice.
					left = append(left, site{c.pkg, c.fn, c.call, n - 1})
				case r.param < n:
					queue = append(queue, site{c.pkg, c.fn, c.call, r.param})
				}
				// Otherwise the call passes fewer variadic arguments, none of
				// them a program: it runs nothing.
			}
		case resolvedNone:
			left = append(left, st)
		}
	}
	for _, st := range left {
		expr := st.call.Args[st.arg]
		if s.resolve(st.pkg, st.fn, expr).kind == resolvedFound {
			continue
		}
		if s.isAllowed(st.pkg, expr) {
			continue
		}
		at := s.position(st.pkg, expr.Pos())
		s.open[at] = unresolved{at, types.ExprString(st.call.Fun), types.ExprString(expr)}
	}
}

// isAllowed reports whether the program argument expr is one of the
// allowed ones: a binary the tests build, or one found by a lookup of a
// declared program. It is checked before resolving, because a path built
// with filepath.Join ends in a constant that names no host program.
func (s *scanner) isAllowed(p *packages.Package, expr ast.Expr) bool {
	file, _, _ := splitPosition(s.position(p, expr.Pos()))
	_, ok := s.allowed[allowKey{file, allowText(expr)}]
	return ok
}

// allowText is how allowed names an argument: as written, but a call by
// the function it calls alone, as bin(…), so that one entry covers them all.
func allowText(e ast.Expr) string {
	if c, ok := e.(*ast.CallExpr); ok {
		return types.ExprString(c.Fun) + "(…)"
	}
	return types.ExprString(e)
}

// resolve says what program the expression e, an argument in fn, names.
func (s *scanner) resolve(p *packages.Package, fn *ast.FuncDecl, e ast.Expr) result {
	e = ast.Unparen(e)
	if tv, ok := p.TypesInfo.Types[e]; ok && tv.Value != nil && tv.Value.Kind() == constant.String {
		return result{kind: resolvedConst, consts: []constUse{{constant.StringVal(tv.Value), e.Pos()}}}
	}
	switch e := e.(type) {
	case *ast.Ident:
		v, _ := p.TypesInfo.Uses[e].(*types.Var)
		if v == nil || fn == nil || v.Parent() == p.Types.Scope() {
			return result{} // a package variable may be set anywhere
		}
		if i, variadic := paramIndex(p, fn, v); i >= 0 && !variadic {
			return result{kind: resolvedParam, param: i}
		}
		// A local variable set once: what it was set to.
		if rhs := assignments(p, fn, v); len(rhs) == 1 && rhs[0] != nil {
			return s.resolve(p, fn, rhs[0])
		}
	case *ast.IndexExpr:
		// format[0] of a variadic parameter format: the argument at that
		// place in each call.
		id, _ := ast.Unparen(e.X).(*ast.Ident)
		k, ok := p.TypesInfo.Types[e.Index]
		if id == nil || !ok || k.Value == nil || fn == nil {
			return result{}
		}
		v, _ := p.TypesInfo.Uses[id].(*types.Var)
		n, exact := constant.Int64Val(k.Value)
		if !exact {
			return result{}
		}
		if i, variadic := paramIndex(p, fn, v); variadic {
			return result{kind: resolvedParam, param: i + int(n)}
		}
		// for _, c := range [][]string{{"mkfs.vfat", …}, …} { … c[0] … }
		if table := rangedTable(p, fn, v); table != nil {
			r := result{kind: resolvedConst}
			for _, row := range table.Elts {
				row, ok := row.(*ast.CompositeLit)
				if !ok || int(n) >= len(row.Elts) {
					return result{}
				}
				c := s.resolve(p, fn, row.Elts[n])
				if c.kind != resolvedConst {
					return result{}
				}
				r.consts = append(r.consts, c.consts...)
			}
			return r
		}
	case *ast.CallExpr:
		callee := typeutil.StaticCallee(p.TypesInfo, e)
		switch {
		case callee == nil:
		case callee.FullName() == "os/exec.LookPath":
			return result{kind: resolvedFound}
		case callee.FullName() == "path/filepath.Join" && len(e.Args) > 0 && !e.Ellipsis.IsValid():
			return s.resolve(p, fn, e.Args[len(e.Args)-1])
		case len(s.launchers[s.funcKey(p, callee)]) > 0:
			return result{kind: resolvedFound}
		}
	}
	return result{}
}

// paramIndex is v's place among fn's parameters (-1 if it is none of
// them), and whether it is the variadic one.
func paramIndex(p *packages.Package, fn *ast.FuncDecl, v *types.Var) (int, bool) {
	obj, _ := p.TypesInfo.Defs[fn.Name].(*types.Func)
	if obj == nil || v == nil {
		return -1, false
	}
	sig := obj.Type().(*types.Signature)
	for i := range sig.Params().Len() {
		if sig.Params().At(i) == v {
			return i, sig.Variadic() && i == sig.Params().Len()-1
		}
	}
	return -1, false
}

// assignments lists the values fn gives the local variable v. A variable
// set by a range loop or left at its zero value gets none listed, so that
// it is never taken for a constant.
func assignments(p *packages.Package, fn *ast.FuncDecl, v *types.Var) []ast.Expr {
	var rhs []ast.Expr
	is := func(e ast.Expr) bool {
		id, ok := e.(*ast.Ident)
		return ok && (p.TypesInfo.Defs[id] == v || p.TypesInfo.Uses[id] == v)
	}
	ast.Inspect(fn, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			for i, l := range n.Lhs {
				if !is(l) {
					continue
				}
				switch {
				case len(n.Lhs) == len(n.Rhs):
					rhs = append(rhs, n.Rhs[i])
				case i == 0:
					rhs = append(rhs, n.Rhs[0]) // p, err := f(): the first result
				default:
					rhs = append(rhs, nil, nil) // another result: not followed
				}
			}
		case *ast.ValueSpec:
			for i, name := range n.Names {
				if is(name) && len(n.Values) == len(n.Names) {
					rhs = append(rhs, n.Values[i])
				}
			}
		case *ast.RangeStmt:
			if n.Key != nil && is(n.Key) || n.Value != nil && is(n.Value) {
				rhs = append(rhs, nil, nil)
			}
		}
		return true
	})
	return rhs
}

// rangedTable is the composite literal that the loop variable v ranges
// over as its value, or nil.
func rangedTable(p *packages.Package, fn *ast.FuncDecl, v *types.Var) *ast.CompositeLit {
	var table *ast.CompositeLit
	ast.Inspect(fn, func(n ast.Node) bool {
		r, ok := n.(*ast.RangeStmt)
		if !ok || r.Value == nil {
			return true
		}
		if id, ok := r.Value.(*ast.Ident); ok && p.TypesInfo.Defs[id] == v {
			table, _ = ast.Unparen(r.X).(*ast.CompositeLit)
		}
		return table == nil
	})
	return table
}

// position is file:line, relative to the module.
func (s *scanner) position(p *packages.Package, pos token.Pos) string {
	ps := p.Fset.Position(pos)
	file := ps.Filename
	if rel, err := filepath.Rel(s.root, file); err == nil {
		file = rel
	}
	return fmt.Sprintf("%s:%d", filepath.ToSlash(file), ps.Line)
}

// programs lists the uses found, by program, each program's places sorted.
func (s *scanner) programs() map[string][]string {
	m := map[string][]string{}
	for u := range s.uses {
		m[u.program] = append(m[u.program], u.at)
	}
	for _, at := range m {
		sort.Slice(at, func(i, j int) bool { return lessPosition(at[i], at[j]) })
	}
	return m
}

// problems lists the unresolved arguments, sorted by place.
func (s *scanner) problems() []unresolved {
	var list []unresolved
	for _, u := range s.open {
		list = append(list, u)
	}
	sort.Slice(list, func(i, j int) bool { return lessPosition(list[i].at, list[j].at) })
	return list
}

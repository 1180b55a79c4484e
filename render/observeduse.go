package render

import (
	"strconv"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
)

// A status projection (and a child that reads another's live state) is
// evaluated with every live child filled into observed.children: a
// Deployment's whole spec and metadata, when the template reads its
// status.readyReplicas. What a template reads of observed.children is
// known from its source: each reference spelled
// observed.children.<key>.<field>, and each field its observed
// declaration constrains. Only those top-level fields of the live
// children are sent to the evaluation; a template that reads observed
// any other way (as a whole, by a computed key, through an alias or a
// let) gets everything.

// observedUse is which top-level fields (metadata, spec, status, ...) of
// each observed child a kind's template reads.
type observedUse struct {
	// all is set when the template reads the children in a way the
	// source does not spell out: every child is sent whole.
	all bool
	// fields are the fields read of each child, by key; key "" is every
	// key (a pattern constraint, [string]: status: _).
	fields map[string]map[string]bool
	// whole are the keys read as a whole (observed.children.<key>).
	whole map[string]bool
}

func newObservedUse() *observedUse {
	return &observedUse{fields: map[string]map[string]bool{}, whole: map[string]bool{}}
}

// observedUseOf reads what the files of inst, and of the packages of the
// template module it imports, read of observed.children.
func observedUseOf(inst *build.Instance) *observedUse {
	u := newObservedUse()
	seen := map[*build.Instance]bool{}
	var visit func(*build.Instance)
	visit = func(in *build.Instance) {
		if in == nil || seen[in] {
			return
		}
		seen[in] = true
		for _, f := range in.Files {
			u.file(f, in == inst)
		}
		for _, imp := range in.Imports {
			visit(imp)
		}
	}
	visit(inst)
	return u
}

// file reads one file; top is set for the template package's own files,
// whose top-level observed is the field cuerator fills.
func (u *observedUse) file(f *ast.File, top bool) {
	for _, decl := range f.Decls {
		if field, ok := decl.(*ast.Field); ok && top && labelName(field.Label) == "observed" {
			u.declared(field.Value)
			u.refs(field.Value)
			continue
		}
		u.refs(decl)
	}
}

// declared records what the observed declaration v constrains of the
// children: observed: children: <key or pattern>: <field>: ...
func (u *observedUse) declared(v ast.Expr) {
	for _, children := range u.fieldsOf(v) {
		if labelName(children.Label) != "children" {
			continue // pods, inputs: not children
		}
		for _, perKey := range u.fieldsOf(children.Value) {
			key, ok := childKeyOf(perKey.Label)
			if !ok {
				u.all = true
				return
			}
			for _, field := range u.fieldsOf(perKey.Value) {
				name := labelName(field.Label)
				if name == "" {
					u.wholeKey(key)
					continue
				}
				u.read(key, name)
			}
		}
	}
}

// fieldsOf lists the fields of the struct v; anything but a struct of
// plain fields (or top, which constrains nothing) makes u read
// everything.
func (u *observedUse) fieldsOf(v ast.Expr) []*ast.Field {
	switch v := v.(type) {
	case *ast.Ident:
		if v.Name == "_" {
			return nil
		}
	case *ast.StructLit:
		var out []*ast.Field
		for _, d := range v.Elts {
			f, ok := d.(*ast.Field)
			if !ok {
				if _, comment := d.(*ast.CommentGroup); comment {
					continue
				}
				u.all = true
				return nil
			}
			out = append(out, f)
		}
		return out
	}
	u.all = true
	return nil
}

// refs records every reference to observed within n.
func (u *observedUse) refs(n ast.Node) {
	ast.Walk(n, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.Field:
			// A label names, it does not read: only a pattern's or a
			// computed label's expression is walked, and an alias of a
			// field named observed could read it under another name.
			switch l := n.Label.(type) {
			case *ast.Alias:
				if inner, ok := l.Expr.(ast.Label); !ok || labelName(inner) == "observed" {
					u.all = true
				}
			case *ast.Ident, *ast.BasicLit:
				if labelName(n.Label) == "observed" {
					// A field named observed below the top: it may be
					// the one cuerator fills, reached another way.
					u.all = true
				}
			default:
				u.refs(n.Label)
			}
			if n.Value != nil {
				u.refs(n.Value)
			}
			return false
		case *ast.SelectorExpr:
			base, sels := chain(n)
			if id, ok := base.(*ast.Ident); ok && id.Name == "observed" {
				u.reference(sels)
				return false
			}
		case *ast.Ident:
			if n.Name == "observed" {
				u.all = true // observed as a whole
			}
		}
		return true
	}, nil)
}

// reference records a reference observed.<sels...>.
func (u *observedUse) reference(sels []string) {
	switch {
	case len(sels) == 0 || sels[0] != "children":
		// observed.pods, observed.inputs: not children.
	case len(sels) == 1:
		u.all = true // observed.children
	case len(sels) == 2:
		u.wholeKey(sels[1])
	default:
		u.read(sels[1], sels[2])
	}
}

func (u *observedUse) read(key, field string) {
	if u.fields[key] == nil {
		u.fields[key] = map[string]bool{}
	}
	u.fields[key][field] = true
}

func (u *observedUse) wholeKey(key string) {
	if key == "" {
		u.all = true
		return
	}
	u.whole[key] = true
}

// chain flattens a.b.c into a and [b c]; a selector that is not a plain
// name ends the chain there (a.b."c" is still [b c]).
func chain(n *ast.SelectorExpr) (ast.Expr, []string) {
	var sels []string
	var x ast.Expr = n
	for {
		s, ok := x.(*ast.SelectorExpr)
		if !ok {
			break
		}
		name := labelName(s.Sel)
		if name == "" {
			// Not a name: the chain stops before it, read whole.
			sels = sels[:0]
		} else {
			sels = append([]string{name}, sels...)
		}
		x = s.X
	}
	return x, sels
}

// childKeyOf is the child key a label names: "" for a pattern ([string]);
// false for a label computed at evaluation.
func childKeyOf(l ast.Label) (string, bool) {
	if _, pattern := l.(*ast.ListLit); pattern {
		return "", true
	}
	name := labelName(l)
	return name, name != ""
}

// labelName is the name an identifier or string label spells; "" for any
// other label.
func labelName(l ast.Label) string {
	switch l := l.(type) {
	case *ast.Ident:
		return l.Name
	case *ast.BasicLit:
		if s, err := strconv.Unquote(l.Value); err == nil {
			return s
		}
	}
	return ""
}

// trim is obs with each child cut to the fields the template reads; obs
// itself when it reads them whole. The values are shared, not copied.
func (u *observedUse) trim(obs Observed) Observed {
	if u == nil || u.all || len(obs.Children) == 0 {
		return obs
	}
	children := make(map[string]any, len(obs.Children))
	for key, live := range obs.Children {
		obj, ok := live.(map[string]any)
		if !ok || u.whole[key] {
			children[key] = live
			continue
		}
		kept := map[string]any{}
		for _, fields := range []map[string]bool{u.fields[key], u.fields[""]} {
			for f := range fields {
				if v, ok := obj[f]; ok {
					kept[f] = v
				}
			}
		}
		if len(kept) > 0 {
			children[key] = kept
		}
	}
	obs.Children = children
	return obs
}

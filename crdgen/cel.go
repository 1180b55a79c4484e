package crdgen

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiservercel "k8s.io/apiserver/pkg/cel"
)

// Constraints that OpenAPI cannot express become CEL validation rules
// (x-kubernetes-validations), so that the API server refuses what the
// template would refuse:
//
//	#Name (metadata.name)               root rules on self.metadata.name
//	strings.HasPrefix/HasSuffix/Contains  startsWith, endsWith, contains
//	a | b of constrained types          (a) || (b)
//	a bound or != by another field      a rule on the object holding both
//	b: a (equal to another field)       self.b == self.a
//	list.UniqueItems() of objects       self.all(x, self.exists_one(y, y == x))
//	a nullable enum                     self == "a" || self == "b"
//	if enabled {secret!: string}        !self.enabled || has(self.secret) (conditional.go)
//	@immutable()                        self == oldSelf (a transition rule)
//
// Each rule's message names the field as cue vet does ("spec.max: invalid
// value (out of bound >=spec.min)"). A constraint with no CEL form (most
// other builtins, interpolations) is reported as a Warning; CUE still
// enforces it when the operator renders the CR.
//
// The API server refuses a CRD whose rules may cost more than its budget,
// and it estimates a rule's cost from the longest strings and lists it may
// read. A rule that reads a whole string or list, and every rule inside a
// list or map, therefore needs bounds: where the CUE schema sets none, the
// CRD gets these, and a Warning says so (the CRD is then stricter than
// `cue vet`, until the schema states its own bound).
const (
	defaultMaxLength     = 4096
	defaultMaxItems      = 256
	defaultMaxProperties = 256
)

// Warning is a constraint of the CUE schema that the CRD enforces
// differently: not at all, or with a bound the schema does not state.
type Warning struct {
	// Path is the CR field, as cue vet names it (spec.storage.size).
	Path    string
	Message string
}

func (w Warning) String() string { return w.Path + ": " + w.Message }

// celTerm is one constraint compiled to CEL.
type celTerm struct {
	// expr is "" when the schema's type alone satisfies the constraint.
	expr string
	// desc is the constraint in CUE syntax, naming other fields by path.
	desc string
	// verb is how cue vet words a violation: "out of bound" for bounds
	// and patterns, "does not satisfy" for the rest.
	verb string
	// scans is set when the rule reads a whole string or list: its cost
	// grows with their length.
	scans bool
}

func (t celTerm) message(path string) string {
	return fmt.Sprintf("%s: invalid value (%s %s)", path, t.verb, t.desc)
}

// celCompiler compiles the constraints of the value CEL names self.
type celCompiler struct {
	self string
	// ref resolves a reference to another field to its CEL expression and
	// its path; nil where no field can be referred to.
	ref func(cue.Value) (expr, path string, err error)
}

// celNoForm is a constraint that has no CEL equivalent.
type celNoForm struct{ constraint string }

func (e celNoForm) Error() string { return e.constraint + " has no CEL form" }

// notChecked words the warning for constraint c, which err kept from CEL.
func notChecked(c any, err error) string {
	reason := err.Error()
	if nf, ok := err.(celNoForm); ok && nf.constraint == fmt.Sprint(c) {
		reason = "it has no CEL form"
	}
	return fmt.Sprintf("%v is not checked at admission (%s); cuerator and cue vet check it", c, reason)
}

func (cc *celCompiler) compile(v cue.Value, depth int) (celTerm, error) {
	if depth > 16 {
		return celTerm{}, celNoForm{fmt.Sprint(v)}
	}
	op, args := v.Expr()
	switch op {
	case cue.AndOp, cue.OrOp:
		return cc.junction(v, op, args, depth)
	case cue.SelectorOp:
		if name := fmt.Sprint(v); strings.HasSuffix(name, "()") {
			return cc.call(v, strings.TrimSuffix(name, "()"), nil)
		}
		if _, ok := cueFieldRef(v); ok {
			expr, path, err := cc.reference(v)
			if err != nil {
				return celTerm{}, err
			}
			return celTerm{expr: cc.self + " == " + expr, desc: path, verb: "does not equal"}, nil
		}
		if r, ok := cueDeref(v); ok {
			return cc.compile(r, depth+1)
		}
	case cue.NoOp:
		if len(args) != 1 {
			break
		}
		a := args[0]
		if aop, _ := a.Expr(); aop != cue.NoOp {
			return cc.compile(a, depth+1)
		}
		if a.IsNull() {
			// The API server runs no rule on a null value.
			return celTerm{expr: "false", desc: "null", verb: "does not satisfy"}, nil
		}
		if lit, ok := celLiteral(a); ok {
			return celTerm{expr: cc.self + " == " + lit, desc: lit, verb: "does not satisfy"}, nil
		}
		if !a.IsConcrete() {
			// A type (string, int): the schema states it.
			return celTerm{desc: fmt.Sprint(a), verb: "does not satisfy"}, nil
		}
	case cue.GreaterThanEqualOp, cue.GreaterThanOp, cue.LessThanEqualOp, cue.LessThanOp, cue.NotEqualOp:
		if len(args) != 1 {
			break
		}
		operand, text, err := cc.operand(args[0])
		if err != nil {
			return celTerm{}, err
		}
		sym := celOps[op]
		verb := "out of bound"
		if op == cue.NotEqualOp {
			verb = "does not satisfy"
		}
		return celTerm{expr: cc.self + " " + sym + " " + operand, desc: sym + text, verb: verb}, nil
	case cue.RegexMatchOp, cue.NotRegexMatchOp:
		if len(args) != 1 || !args[0].IsConcrete() {
			break
		}
		re, err := args[0].String()
		if err != nil {
			break
		}
		expr, sym := cc.self+".matches("+strconv.Quote(re)+")", "=~"
		if op == cue.NotRegexMatchOp {
			expr, sym = "!"+expr, "!~"
		}
		return celTerm{expr: expr, desc: sym + strconv.Quote(re), verb: "out of bound", scans: true}, nil
	case cue.CallOp:
		if len(args) > 0 {
			// A builtin without arguments prints as "list.UniqueItems()".
			return cc.call(v, strings.TrimSuffix(fmt.Sprint(args[0]), "()"), args[1:])
		}
	}
	return celTerm{}, celNoForm{fmt.Sprint(v)}
}

var celOps = map[cue.Op]string{
	cue.GreaterThanEqualOp: ">=",
	cue.GreaterThanOp:      ">",
	cue.LessThanEqualOp:    "<=",
	cue.LessThanOp:         "<",
	cue.NotEqualOp:         "!=",
}

// junction compiles `a & b` to (a) && (b) and `a | b` to (a) || (b).
func (cc *celCompiler) junction(v cue.Value, op cue.Op, args []cue.Value, depth int) (celTerm, error) {
	joinCEL, joinCUE := " && ", " & "
	if op == cue.OrOp {
		joinCEL, joinCUE = " || ", " | "
	}
	var exprs, descs []string
	out := celTerm{verb: "does not satisfy"}
	trivial := false
	for _, a := range args {
		t, err := cc.compile(a, depth+1)
		if err != nil {
			return celTerm{}, err
		}
		descs = append(descs, t.desc)
		out.scans = out.scans || t.scans
		switch {
		case t.expr == "" && op == cue.OrOp:
			trivial = true
		case t.expr == "false" && op == cue.OrOp:
			// null | T: the rule never sees null.
			descs = descs[:len(descs)-1]
		case t.expr != "":
			exprs = append(exprs, "("+t.expr+")")
		}
	}
	out.desc = strings.Join(descs, joinCUE)
	if trivial || len(exprs) == 0 {
		return out, nil
	}
	if len(exprs) == 1 {
		out.expr = strings.TrimSuffix(strings.TrimPrefix(exprs[0], "("), ")")
	} else {
		out.expr = strings.Join(exprs, joinCEL)
	}
	return out, nil
}

// call compiles a validator builtin v (name "pkg.Func", args its
// arguments) that has the same meaning in CEL.
func (cc *celCompiler) call(v cue.Value, name string, args []cue.Value) (celTerm, error) {
	desc := fmt.Sprint(v)
	str := func() (string, bool) {
		if len(args) != 1 || !args[0].IsConcrete() {
			return "", false
		}
		s, err := args[0].String()
		return strconv.Quote(s), err == nil
	}
	num := func() (string, bool) {
		if len(args) != 1 || !args[0].IsConcrete() {
			return "", false
		}
		n, err := args[0].Int64()
		return strconv.FormatInt(n, 10), err == nil
	}
	term := func(expr string, scans bool) (celTerm, error) {
		return celTerm{expr: expr, desc: desc, verb: "does not satisfy", scans: scans}, nil
	}
	// CEL's size() counts a string's code points, as MinRunes and MaxRunes do.
	switch name {
	case "strings.HasPrefix":
		// The API server estimates the cost of startsWith and endsWith by
		// self's length, not the prefix's: they scan too.
		if s, ok := str(); ok {
			return term(cc.self+".startsWith("+s+")", true)
		}
	case "strings.HasSuffix":
		if s, ok := str(); ok {
			return term(cc.self+".endsWith("+s+")", true)
		}
	case "strings.Contains":
		if s, ok := str(); ok {
			return term(cc.self+".contains("+s+")", true)
		}
	case "strings.MinRunes", "list.MinItems", "struct.MinFields":
		if n, ok := num(); ok {
			return term("size("+cc.self+") >= "+n, false)
		}
	case "strings.MaxRunes", "list.MaxItems", "struct.MaxFields":
		if n, ok := num(); ok {
			return term("size("+cc.self+") <= "+n, false)
		}
	case "list.UniqueItems":
		if len(args) == 0 {
			return term(cc.self+".all(x, "+cc.self+".exists_one(y, y == x))", true)
		}
	}
	return celTerm{}, celNoForm{desc}
}

// operand compiles the right side of a comparison: a literal or another
// field.
func (cc *celCompiler) operand(v cue.Value) (expr, text string, err error) {
	if _, ok := cueFieldRef(v); ok {
		expr, path, err := cc.reference(v)
		return expr, path, err
	}
	if lit, ok := celLiteral(v); ok {
		return lit, lit, nil
	}
	return "", "", celNoForm{fmt.Sprint(v)}
}

func (cc *celCompiler) reference(v cue.Value) (expr, path string, err error) {
	if cc.ref == nil {
		return "", "", celNoForm{"a reference to another field"}
	}
	return cc.ref(v)
}

// celLiteral is the CEL (and CUE) text of a concrete scalar.
func celLiteral(v cue.Value) (string, bool) {
	if !v.IsConcrete() {
		return "", false
	}
	switch v.Kind() {
	case cue.StringKind:
		s, err := v.String()
		return strconv.Quote(s), err == nil
	case cue.IntKind, cue.FloatKind, cue.BoolKind:
		raw, err := v.MarshalJSON()
		return string(raw), err == nil
	}
	return "", false
}

// cueFieldRef reports whether v refers to a field whose value the user
// sets (not a definition, nor a constant), and returns that field.
func cueFieldRef(v cue.Value) (cue.Value, bool) {
	if op, _ := v.Expr(); op != cue.SelectorOp || strings.HasSuffix(fmt.Sprint(v), "()") {
		return cue.Value{}, false // not a reference, or a builtin validator
	}
	r := cue.Dereference(v)
	sels := r.Path().Selectors()
	if !r.Exists() || len(sels) == 0 || sels[len(sels)-1].LabelType() != cue.StringLabel {
		return cue.Value{}, false
	}
	if _, hasDefault := r.Default(); r.IsConcrete() && !hasDefault {
		return cue.Value{}, false
	}
	return r, true
}

// rule turns a constraint OpenAPI cannot express, on the node at the top of
// the stack, into a CEL rule, or into a warning when it has no CEL form.
func (w *schemaWalk) rule(c cue.Value) {
	top := len(w.stack) - 1
	node := w.stack[top]
	// A rule sits on the nearest node that holds the field and every field
	// the constraint refers to.
	refs := map[string]celRef{}
	at := top
	var noForm error
	cueEachRef(c, func(r cue.Value) {
		ref, err := w.locate(r)
		if err != nil {
			noForm = err
			return
		}
		refs[cue.Dereference(r).Path().String()] = ref
		at = min(at, ref.frame)
	})
	if noForm != nil {
		w.warn(node.path, "%s", notChecked(c, noForm))
		return
	}
	var guards []string
	for _, key := range slices.Sorted(maps.Keys(refs)) {
		ref := refs[key]
		names, ok := w.fieldsBetween(at, ref.frame)
		if !ok {
			w.warn(node.path, "%s", notChecked(c, fmt.Errorf("it refers to %s from inside a list or map", ref.path)))
			return
		}
		ref.expr, ref.guards = celAccess("self", append(names, ref.names...), append(w.absentBetween(at, ref.frame), ref.absent...))
		refs[key] = ref
		guards = append(guards, ref.guards...)
	}
	cc := &celCompiler{ref: func(r cue.Value) (string, string, error) {
		ref, ok := refs[cue.Dereference(r).Path().String()]
		if !ok {
			return "", "", fmt.Errorf("it refers to %v where the CRD cannot follow", r)
		}
		return ref.expr, ref.path, nil
	}}
	var (
		term celTerm
		err  error
	)
	expr := w.within(at+1, "self", 0, func(self string) string {
		cc.self = self
		term, err = cc.compile(c, 0)
		return term.expr
	})
	if err != nil {
		w.warn(node.path, "%s", notChecked(c, err))
		return
	}
	if term.expr == "" {
		return // the schema's types already say it
	}
	if node.s.XIntOrString {
		w.warn(node.path, "%s", notChecked(c, errors.New("no CEL rule is generated for an int-or-string value")))
		return
	}
	if len(guards) > 0 {
		expr = strings.Join(guards, " || ") + " || " + expr
	}
	rule := apiextensionsv1.ValidationRule{Rule: expr, Message: term.message(node.path)}
	if names, ok := w.fieldsBetween(at, top); ok && at < top {
		rule.FieldPath = celFieldPath(names)
	}
	w.stack[at].s.XValidations = append(w.stack[at].s.XValidations, rule)
	if term.scans {
		w.bounded[node.path] = true
	}
	w.boundEnclosing()
}

// celRef is another field a constraint refers to, located from the node
// being walked.
type celRef struct {
	// frame is the stack index of the nearest node holding the field.
	frame int
	// names are the fields from there down to it; absent marks those
	// that may be absent.
	names  []string
	absent []bool
	path   string
	// expr and guards read the field from the node the rule sits on.
	expr   string
	guards []string
}

// locate finds the field r refers to among the fields of the nodes
// enclosing the one being walked. A reference names a field by where it
// is written, which inside a definition (#Limits.min) is not where the
// walk meets it (spec.limits.min): the field is recognised by its
// declaration's position.
func (w *schemaWalk) locate(r cue.Value) (celRef, error) {
	target := cue.Dereference(r)
	sels := target.Path().Selectors()
	for k := len(w.stack) - 2; k >= 0; k-- {
		holder := w.stack[k].v
		for j := 1; j <= len(sels); j++ {
			rel := sels[len(sels)-j:]
			if !cueAllFields(rel) {
				break
			}
			if f := holder.LookupPath(cue.MakePath(rel...)); f.Exists() && f.Pos() == target.Pos() {
				ref := celRef{frame: k, path: w.stack[k].path}
				parent := holder
				for _, s := range rel {
					name := s.Unquoted()
					ref.names = append(ref.names, name)
					ref.absent = append(ref.absent, cueMayBeAbsent(parent, name))
					ref.path += "." + name
					parent = parent.LookupPath(cue.MakePath(s))
				}
				return ref, nil
			}
		}
	}
	return celRef{}, fmt.Errorf("it refers to %v, which is not a field of the spec", target.Path())
}

func cueAllFields(sels []cue.Selector) bool {
	for _, s := range sels {
		if s.LabelType() != cue.StringLabel {
			return false
		}
	}
	return true
}

// cueMayBeAbsent reports whether the field name of v may be absent after
// the API server's defaulting: it is optional, or required and not given.
func cueMayBeAbsent(v cue.Value, name string) bool {
	iter, err := v.Fields(cue.Optional(true))
	if err != nil {
		return true
	}
	for iter.Next() {
		if iter.Selector().Unquoted() != name {
			continue
		}
		ft := iter.FieldType()
		return ft&(cue.OptionalConstraint|cue.RequiredConstraint) != 0 || cueNeedsInput(iter.Value())
	}
	return true
}

// cueEachRef calls f with every reference to another field in constraint c.
func cueEachRef(c cue.Value, f func(cue.Value)) {
	var visit func(v cue.Value, depth int)
	visit = func(v cue.Value, depth int) {
		if depth > 16 {
			return
		}
		if _, ok := cueFieldRef(v); ok {
			f(v)
			return
		}
		op, args := v.Expr()
		switch op {
		case cue.AndOp, cue.OrOp, cue.GreaterThanEqualOp, cue.GreaterThanOp, cue.LessThanEqualOp, cue.LessThanOp, cue.NotEqualOp:
			for _, a := range args {
				visit(a, depth+1)
			}
		case cue.NoOp:
			if len(args) == 1 {
				if aop, _ := args[0].Expr(); aop != cue.NoOp {
					visit(args[0], depth+1)
				}
			}
		case cue.SelectorOp:
			if r, ok := cueDeref(v); ok {
				visit(r, depth+1)
			}
		}
	}
	visit(c, 0)
}

// fieldsBetween returns the field names from the node at stack index from
// down to the node at index to, or false when a list or map lies between.
func (w *schemaWalk) fieldsBetween(from, to int) ([]string, bool) {
	var names []string
	for i := from + 1; i <= to; i++ {
		if w.stack[i].step.kind != stepField {
			return nil, false
		}
		names = append(names, w.stack[i].step.name)
	}
	return names, true
}

func (w *schemaWalk) absentBetween(from, to int) []bool {
	var absent []bool
	for i := from + 1; i <= to; i++ {
		absent = append(absent, w.stack[i].step.mayBeAbsent)
	}
	return absent
}

// within returns the CEL expression that holds when inner holds for the
// node at the top of the stack, read from the node at index i-1 as self:
// fields that may be absent are tested with has(), lists and maps are
// quantified with all().
func (w *schemaWalk) within(i int, acc string, vars int, inner func(self string) string) string {
	if i >= len(w.stack) {
		return inner(acc)
	}
	st := w.stack[i].step
	switch st.kind {
	case stepItem:
		v := fmt.Sprintf("i%d", vars)
		return acc + ".all(" + v + ", " + w.within(i+1, v, vars+1, inner) + ")"
	case stepValue:
		k := fmt.Sprintf("k%d", vars)
		return acc + ".all(" + k + ", " + w.within(i+1, acc+"["+k+"]", vars+1, inner) + ")"
	}
	next := acc + "." + celField(st.name)
	body := w.within(i+1, next, vars, inner)
	if st.mayBeAbsent && body != "" {
		return "!has(" + next + ") || " + body
	}
	return body
}

// celAccess reads the field at names below base, with a has() guard for
// each field that may be absent.
func celAccess(base string, names []string, absent []bool) (expr string, guards []string) {
	expr = base
	for i, n := range names {
		expr += "." + celField(n)
		if absent[i] {
			guards = append(guards, "!has("+expr+")")
		}
	}
	return expr, guards
}

// celField is a property name as the API server's CEL environment names it
// (a-b is a__dash__b, a keyword is escaped too).
func celField(name string) string {
	if e, ok := apiservercel.Escape(name); ok {
		return e
	}
	return name
}

// celFieldPath is a rule's fieldPath: the JSON path of the field it reports.
func celFieldPath(names []string) string {
	var b strings.Builder
	for _, n := range names {
		if celPlainName(n) {
			b.WriteString("." + n)
		} else {
			b.WriteString("['" + n + "']")
		}
	}
	return b.String()
}

func celPlainName(n string) bool {
	for i, r := range n {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return n != ""
}

// boundEnclosing marks the lists and maps enclosing the node being walked:
// a rule inside them is run once per item, and its cost multiplied by
// their length.
func (w *schemaWalk) boundEnclosing() {
	for i := 1; i < len(w.stack); i++ {
		if k := w.stack[i].step.kind; k == stepItem || k == stepValue {
			w.bounded[w.stack[i-1].path] = true
		}
	}
}

// immutable adds the transition rules of a field declared @immutable():
// once the CR exists, its value may not change, nor may it be added or
// removed. s is the schema of the field, parent that of its object.
func (w *schemaWalk) immutable(fv cue.Value, s, parent *apiextensionsv1.JSONSchemaProps, name, path string, optional bool) error {
	attr, ok := cueAttr(fv, "immutable")
	if !ok {
		return nil
	}
	if attr.Contents() != "" {
		return crdFieldError(fv, path, "@immutable() takes no arguments, not %q", attr.Contents())
	}
	if !w.rules {
		w.warn(path, "@immutable() applies to spec fields only; the status is the operator's")
		return nil
	}
	for _, f := range w.stack {
		if f.step.kind == stepItem {
			return crdFieldError(fv, path, "@immutable() cannot be checked inside a list: the API server cannot match a list's items with their old versions; make the whole list immutable")
		}
	}
	msg := path + ": is immutable"
	s.XValidations = append(s.XValidations, apiextensionsv1.ValidationRule{Rule: "self == oldSelf", Message: msg})
	if optional {
		field := "self." + celField(name)
		old := "oldSelf." + celField(name)
		parent.XValidations = append(parent.XValidations, apiextensionsv1.ValidationRule{
			Rule:      "has(" + field + ") == has(" + old + ")",
			Message:   msg,
			FieldPath: celFieldPath([]string{name}),
		})
	}
	return nil
}

// cueAttr returns v's field attribute @name(...).
func cueAttr(v cue.Value, name string) (cue.Attribute, bool) {
	for _, a := range v.Attributes(cue.FieldAttr) {
		if a.Name() == name {
			return a, true
		}
	}
	return cue.Attribute{}, false
}

// nameRules compiles the kind's #Name, the rule on metadata.name, into
// root rules: the schema cannot constrain metadata, CEL at the root can.
func nameRules(def cue.Value) ([]apiextensionsv1.ValidationRule, []Warning) {
	c := &crdConstraints{s: &apiextensionsv1.JSONSchemaProps{Type: "string"}, celOnly: true}
	c.walk(def, 0)
	const path = "metadata.name"
	var (
		rules    []apiextensionsv1.ValidationRule
		warnings []Warning
	)
	for _, l := range c.leftovers {
		// metadata.name is at most 253 characters long: rules reading it
		// need no bound.
		cc := &celCompiler{self: "self.metadata.name"}
		term, err := cc.compile(l, 0)
		if err != nil {
			warnings = append(warnings, Warning{Path: path, Message: notChecked(l, err)})
			continue
		}
		if term.expr == "" {
			continue
		}
		rules = append(rules, apiextensionsv1.ValidationRule{Rule: term.expr, Message: term.message(path), FieldPath: ".metadata.name"})
	}
	return rules, warnings
}

// applyBounds gives every string, list and map of the spec that the schema
// leaves unbounded a default maxLength, maxItems or maxProperties. A CR's
// author controls how long they are, and a template's work (and the
// operator's, rendering it) grows with them: a comprehension that pairs the
// items of a list costs the square of its length. The nodes whose rules'
// cost depends on a bound (w.bounded) need one for the API server's CEL
// budget as well, and their warning says so.
func (w *schemaWalk) applyBounds(s *apiextensionsv1.JSONSchemaProps, path string) {
	why := "so that a CR's size, and the work its template does on it, stay bounded"
	if w.bounded[path] {
		why = "so that its CEL rules fit the API server's cost budget"
	}
	switch {
	case s.Type == "string" && s.MaxLength == nil && len(s.Enum) == 0:
		s.MaxLength = crdPtr(int64(defaultMaxLength))
		w.warn(path, "the CRD limits it to %d characters %s; the CUE schema does not (add strings.MaxRunes(n) to agree)", defaultMaxLength, why)
	case s.Type == "array" && s.MaxItems == nil:
		s.MaxItems = crdPtr(int64(defaultMaxItems))
		w.warn(path, "the CRD limits it to %d items %s; the CUE schema does not (add list.MaxItems(n) to agree)", defaultMaxItems, why)
	case s.Type == "object" && s.AdditionalProperties != nil && s.MaxProperties == nil:
		s.MaxProperties = crdPtr(int64(defaultMaxProperties))
		w.warn(path, "the CRD limits it to %d keys %s; the CUE schema does not (add struct.MaxFields(n) to agree)", defaultMaxProperties, why)
	}
	for name, p := range s.Properties {
		w.applyBounds(&p, path+"."+name)
		s.Properties[name] = p
	}
	if s.Items != nil && s.Items.Schema != nil {
		w.applyBounds(s.Items.Schema, path+"[]")
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		w.applyBounds(s.AdditionalProperties.Schema, path+"[*]")
	}
}

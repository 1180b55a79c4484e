package crdgen

import (
	"bytes"
	"fmt"
	"strings"

	"cuelang.org/go/cue"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// crdConstraints collects the value validations of a scalar, list or struct
// from its expression tree: those OpenAPI can express go into the schema,
// the others into leftovers, for CEL.
type crdConstraints struct {
	s    *apiextensionsv1.JSONSchemaProps
	nots []apiextensionsv1.JSONSchemaProps
	// enum is nil until a disjunction of literals is seen; several are
	// intersected. enumFrom holds those disjunctions.
	enum     []apiextensionsv1.JSON
	enumFrom []cue.Value
	hasEnum  bool
	set      bool
	// setFrom is the list.UniqueItems() call, for a list of objects.
	setFrom cue.Value
	// leftovers are the constraints OpenAPI cannot express.
	leftovers []cue.Value
	// celOnly puts every constraint into leftovers: for a value that the
	// schema cannot constrain at all (metadata.name).
	celOnly bool
}

func (c *crdConstraints) finish() {
	// The API server checks enum even for a null value, and a null in the
	// enum never matches: a nullable field's enum is a CEL rule, which the
	// API server does not run on null.
	if c.hasEnum {
		if c.s.Nullable {
			c.leftovers = append(c.leftovers, c.enumFrom...)
		} else {
			c.s.Enum = c.enum
		}
	}
	switch len(c.nots) {
	case 0:
	case 1:
		c.s.Not = &c.nots[0]
	default:
		for i := range c.nots {
			c.s.AllOf = append(c.s.AllOf, apiextensionsv1.JSONSchemaProps{Not: &c.nots[i]})
		}
	}
	if c.set {
		if c.s.Items != nil && c.s.Items.Schema != nil && crdIsScalar(c.s.Items.Schema) {
			c.s.XListType = crdPtr("set")
		} else {
			c.leftovers = append(c.leftovers, c.setFrom)
		}
	}
}

func crdIsScalar(s *apiextensionsv1.JSONSchemaProps) bool {
	switch s.Type {
	case "string", "integer", "number", "boolean":
		return true
	}
	return s.XIntOrString
}

func (c *crdConstraints) isNumber() bool { return c.s.Type == "integer" || c.s.Type == "number" }

func (c *crdConstraints) walk(v cue.Value, depth int) {
	if depth > 16 {
		return
	}
	op, args := v.Expr()
	switch op {
	case cue.AndOp:
		for _, a := range args {
			c.walk(a, depth+1)
		}
	case cue.OrOp:
		c.disjunction(v, args, depth)
	case cue.SelectorOp:
		// A validator called without arguments (list.UniqueItems()) is a
		// selector of its package.
		if name := fmt.Sprint(v); strings.HasSuffix(name, "()") {
			c.call(v, strings.TrimSuffix(name, "()"), nil)
			return
		}
		if _, ok := cueFieldRef(v); ok {
			// Equal to another field: a cross-field rule.
			c.leftovers = append(c.leftovers, v)
			return
		}
		if r, ok := cueDeref(v); ok {
			c.walk(r, depth+1)
		}
	case cue.NoOp:
		if len(args) != 1 {
			return
		}
		a := args[0]
		if aop, _ := a.Expr(); aop != cue.NoOp {
			c.walk(a, depth+1)
			return
		}
		if lit, ok := cueLiteral(a); ok {
			if c.celOnly {
				c.leftovers = append(c.leftovers, v)
				return
			}
			c.intersectEnum(v, []apiextensionsv1.JSON{lit})
		}
	case cue.GreaterThanEqualOp, cue.GreaterThanOp, cue.LessThanEqualOp, cue.LessThanOp:
		if len(args) != 1 {
			return
		}
		if f, ok := cueNumber(args[0]); ok && c.isNumber() && !c.celOnly {
			c.bound(op, f)
			return
		}
		// A bound on a string, or by another field.
		c.leftovers = append(c.leftovers, v)
	case cue.RegexMatchOp:
		if c.s.Type != "string" || len(args) != 1 {
			return
		}
		re, err := args[0].String()
		if err != nil || c.celOnly || !args[0].IsConcrete() {
			c.leftovers = append(c.leftovers, v)
			return
		}
		if c.s.Pattern != "" && c.s.Pattern != re {
			// Two patterns: keep the first here, the second as allOf.
			c.s.AllOf = append(c.s.AllOf, apiextensionsv1.JSONSchemaProps{Pattern: re})
			return
		}
		c.s.Pattern = re
	case cue.NotRegexMatchOp:
		if c.s.Type != "string" || len(args) != 1 {
			return
		}
		re, err := args[0].String()
		if err != nil || c.celOnly || !args[0].IsConcrete() {
			c.leftovers = append(c.leftovers, v)
			return
		}
		c.nots = append(c.nots, apiextensionsv1.JSONSchemaProps{Pattern: re})
	case cue.NotEqualOp:
		if len(args) != 1 {
			return
		}
		if lit, ok := cueLiteral(args[0]); ok && !c.celOnly {
			if _, ref := cueFieldRef(args[0]); !ref {
				c.nots = append(c.nots, apiextensionsv1.JSONSchemaProps{Enum: []apiextensionsv1.JSON{lit}})
				return
			}
		}
		c.leftovers = append(c.leftovers, v)
	case cue.CallOp:
		if len(args) > 0 {
			c.call(v, fmt.Sprint(args[0]), args[1:])
		}
	default:
		// Interpolations, arithmetic and the like.
		c.leftovers = append(c.leftovers, v)
	}
}

// call handles a validator builtin v: name is "pkg.Func", args its
// arguments. Those OpenAPI has no keyword for are leftovers.
func (c *crdConstraints) call(v cue.Value, name string, args []cue.Value) {
	if c.celOnly {
		c.leftovers = append(c.leftovers, v)
		return
	}
	intArg := func() (int64, bool) {
		if len(args) != 1 {
			return 0, false
		}
		n, err := args[0].Int64()
		return n, err == nil
	}
	// A builtin without arguments prints as "list.UniqueItems()".
	switch strings.TrimSuffix(name, "()") {
	case "strings.MinRunes":
		if n, ok := intArg(); ok && c.s.Type == "string" {
			c.s.MinLength = crdMaxInt(c.s.MinLength, n)
		}
	case "strings.MaxRunes":
		if n, ok := intArg(); ok && c.s.Type == "string" {
			c.s.MaxLength = crdMinInt(c.s.MaxLength, n)
		}
	case "list.MinItems":
		if n, ok := intArg(); ok && c.s.Type == "array" {
			c.s.MinItems = crdMaxInt(c.s.MinItems, n)
		}
	case "list.MaxItems":
		if n, ok := intArg(); ok && c.s.Type == "array" {
			c.s.MaxItems = crdMinInt(c.s.MaxItems, n)
		}
	case "time.Time":
		if c.s.Type == "string" {
			c.s.Format = "date-time"
		}
	case "list.UniqueItems":
		if c.s.Type == "array" {
			c.set, c.setFrom = true, v
		}
	case "struct.MinFields":
		if n, ok := intArg(); ok && c.s.Type == "object" {
			c.s.MinProperties = crdMaxInt(c.s.MinProperties, n)
		}
	case "struct.MaxFields":
		if n, ok := intArg(); ok && c.s.Type == "object" {
			c.s.MaxProperties = crdMinInt(c.s.MaxProperties, n)
		}
	default:
		c.leftovers = append(c.leftovers, v)
	}
}

// disjunction handles v, `a | b | ...`: literals only make an enum;
// literals that all satisfy a single constrained type (its default,
// typically) leave that type's constraints; anything else is a leftover.
func (c *crdConstraints) disjunction(v cue.Value, args []cue.Value, depth int) {
	if c.celOnly {
		c.leftovers = append(c.leftovers, v)
		return
	}
	var (
		lits    []apiextensionsv1.JSON
		litVals []cue.Value
		others  []cue.Value
	)
	for _, a := range args {
		if a.IsNull() {
			continue // nullable, handled by the kind
		}
		if lit, ok := cueLiteral(a); ok {
			lits = append(lits, lit)
			litVals = append(litVals, a)
			continue
		}
		others = append(others, a)
	}
	switch len(others) {
	case 0:
		if len(lits) > 0 {
			c.intersectEnum(v, lits)
		}
		return
	case 1:
		if cueTypeOnly(others[0]) {
			// `string | *"x"`: the default only.
			return
		}
		satisfied := true
		for _, l := range litVals {
			satisfied = satisfied && others[0].Unify(l).Validate(cue.Concrete(true)) == nil
		}
		if satisfied {
			c.walk(others[0], depth+1)
			return
		}
	}
	c.leftovers = append(c.leftovers, v)
}

func (c *crdConstraints) intersectEnum(from cue.Value, vals []apiextensionsv1.JSON) {
	c.enumFrom = append(c.enumFrom, from)
	if !c.hasEnum {
		c.hasEnum = true
		c.enum = vals
		return
	}
	var out []apiextensionsv1.JSON
	for _, e := range c.enum {
		for _, v := range vals {
			if bytes.Equal(e.Raw, v.Raw) {
				out = append(out, e)
				break
			}
		}
	}
	c.enum = out
}

func (c *crdConstraints) bound(op cue.Op, f float64) {
	s := c.s
	switch op {
	case cue.GreaterThanEqualOp, cue.GreaterThanOp:
		excl := op == cue.GreaterThanOp
		if s.Minimum == nil || f > *s.Minimum || f == *s.Minimum && excl {
			s.Minimum, s.ExclusiveMinimum = &f, excl
		}
	case cue.LessThanEqualOp, cue.LessThanOp:
		excl := op == cue.LessThanOp
		if s.Maximum == nil || f < *s.Maximum || f == *s.Maximum && excl {
			s.Maximum, s.ExclusiveMaximum = &f, excl
		}
	}
}

// cueNumber returns the number a bound is written with; not a field the
// user sets, which a default would make look like one.
func cueNumber(v cue.Value) (float64, bool) {
	if _, ref := cueFieldRef(v); ref {
		return 0, false
	}
	f, err := v.Float64()
	return f, err == nil && v.IsConcrete()
}

// cueTypeOnly reports whether v is a bare type (string, int, [...]),
// which the schema's type already states.
func cueTypeOnly(v cue.Value) bool {
	op, args := v.Expr()
	if op == cue.NoOp && len(args) == 1 {
		aop, _ := args[0].Expr()
		return aop == cue.NoOp && !args[0].IsConcrete() && cueKindOf(args[0]) != cue.StructKind
	}
	return false
}

// cueLiteral returns the JSON of a concrete scalar.
func cueLiteral(v cue.Value) (apiextensionsv1.JSON, bool) {
	if !v.IsConcrete() {
		return apiextensionsv1.JSON{}, false
	}
	switch v.Kind() {
	case cue.StringKind, cue.IntKind, cue.FloatKind, cue.BoolKind:
	default:
		return apiextensionsv1.JSON{}, false
	}
	raw, err := v.MarshalJSON()
	if err != nil {
		return apiextensionsv1.JSON{}, false
	}
	return apiextensionsv1.JSON{Raw: raw}, true
}

func crdMaxInt(p *int64, n int64) *int64 {
	if p != nil && *p >= n {
		return p
	}
	return &n
}

func crdMinInt(p *int64, n int64) *int64 {
	if p != nil && *p <= n {
		return p
	}
	return &n
}

func crdPtr[T any](v T) *T { return &v }

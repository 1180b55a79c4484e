package crdgen

import (
	"bytes"
	"fmt"
	"strings"

	"cuelang.org/go/cue"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// from its expression tree.
type crdConstraints struct {
	s    *apiextensionsv1.JSONSchemaProps
	nots []apiextensionsv1.JSONSchemaProps
	// enum is nil until a disjunction of literals is seen; several are
	// intersected.
	enum    []apiextensionsv1.JSON
	hasEnum bool
	set     bool
}

func (c *crdConstraints) finish() {
	// The API server checks enum even for a null value, and a null in the
	// enum never matches: a nullable field cannot have an enum (CUE still
	// checks it at render time).
	if c.hasEnum && !c.s.Nullable {
		c.s.Enum = c.enum
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
		c.disjunction(args, depth)
	case cue.SelectorOp:
		// A validator called without arguments (list.UniqueItems()) is a
		// selector of its package.
		if name := fmt.Sprint(v); strings.HasSuffix(name, "()") {
			c.call(strings.TrimSuffix(name, "()"), nil)
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
			c.intersectEnum([]apiextensionsv1.JSON{lit})
		}
	case cue.GreaterThanEqualOp, cue.GreaterThanOp, cue.LessThanEqualOp, cue.LessThanOp:
		if !c.isNumber() || len(args) != 1 {
			return
		}
		f, err := args[0].Float64()
		if err != nil {
			return
		}
		c.bound(op, f)
	case cue.RegexMatchOp:
		if c.s.Type != "string" || len(args) != 1 {
			return
		}
		if re, err := args[0].String(); err == nil {
			if c.s.Pattern != "" && c.s.Pattern != re {
				// Two patterns: keep the first here, the second as allOf.
				c.s.AllOf = append(c.s.AllOf, apiextensionsv1.JSONSchemaProps{Pattern: re})
				return
			}
			c.s.Pattern = re
		}
	case cue.NotRegexMatchOp:
		if c.s.Type != "string" || len(args) != 1 {
			return
		}
		if re, err := args[0].String(); err == nil {
			c.nots = append(c.nots, apiextensionsv1.JSONSchemaProps{Pattern: re})
		}
	case cue.NotEqualOp:
		if len(args) != 1 {
			return
		}
		if lit, ok := cueLiteral(args[0]); ok {
			c.nots = append(c.nots, apiextensionsv1.JSONSchemaProps{Enum: []apiextensionsv1.JSON{lit}})
		}
	case cue.CallOp:
		if len(args) > 0 {
			c.call(fmt.Sprint(args[0]), args[1:])
		}
	}
}

// call handles a validator builtin: name is "pkg.Func", args its arguments.
func (c *crdConstraints) call(name string, args []cue.Value) {
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
			c.set = true
		}
	case "struct.MinFields":
		if n, ok := intArg(); ok && c.s.Type == "object" {
			c.s.MinProperties = crdMaxInt(c.s.MinProperties, n)
		}
	case "struct.MaxFields":
		if n, ok := intArg(); ok && c.s.Type == "object" {
			c.s.MaxProperties = crdMinInt(c.s.MaxProperties, n)
		}
	}
}

// disjunction handles `a | b | ...`: literals only make an enum; literals
// that all satisfy a single constrained type (its default, typically) leave
// that type's constraints; anything else constrains nothing here.
func (c *crdConstraints) disjunction(args []cue.Value, depth int) {
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
			c.intersectEnum(lits)
		}
	case 1:
		for _, l := range litVals {
			if others[0].Unify(l).Validate(cue.Concrete(true)) != nil {
				return
			}
		}
		c.walk(others[0], depth+1)
	}
}

func (c *crdConstraints) intersectEnum(vals []apiextensionsv1.JSON) {
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

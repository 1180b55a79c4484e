package crdgen

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"cuelang.org/go/cue"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// A comprehension makes a field depend on a sibling, a switch:
//
//	tls: {
//		enabled: bool | *false
//		if enabled {
//			secretName!: string
//		}
//	}
//
// The evaluated struct shows only the fields of the switch's default, so
// the walk probes each value of each switch of a struct (a bool, or an enum
// of at most maxSwitchValues literals) and compares the fields it gets. A
// field present or required under some values only becomes a property with
// neither a default nor a place in `required`, and CEL rules on the struct
// say when it is required (`!self.enabled || has(self.secretName)`) and,
// in a closed struct, when it is allowed (`self.enabled ||
// !has(self.secretName)`). A field whose constraints, rather than its
// presence, depend on a switch, or that depends on two switches, is a
// Warning. Conditions on other fields than siblings are not seen.
const maxSwitchValues = 8

// conditional is a field whose presence depends on a switch.
type conditional struct {
	// value is the field where the switch brings it.
	value     cue.Value
	fieldType cue.SelectorType
	// switchName is the sibling the field depends on; present and required
	// are the CEL literals of its values under which the field exists and
	// is required, of all its values.
	switchName        string
	present, required []string
	all               []string
}

// switchValues returns the values a switch field can take, as CUE values:
// true and false, or an enum's literals.
func switchValues(v cue.Value) []cue.Value {
	if cueKindOf(v) == cue.BoolKind {
		return []cue.Value{v.Context().Encode(true), v.Context().Encode(false)}
	}
	op, args := cueShape(v, cue.StringKind|cue.IntKind).Expr()
	if op != cue.OrOp || len(args) > maxSwitchValues {
		return nil
	}
	for _, a := range args {
		if _, ok := celLiteral(a); !ok {
			return nil
		}
	}
	return args
}

// conditionals probes the switches of struct sv at path and returns its
// fields that depend on one, by name.
func (w *schemaWalk) conditionals(sv cue.Value, path string) map[string]*conditional {
	type probed struct {
		value     cue.Value
		fieldType cue.SelectorType
		text      string
	}
	fieldsOf := func(v cue.Value) map[string]probed {
		out := map[string]probed{}
		iter, err := v.Fields(cue.Optional(true))
		if err != nil {
			return nil
		}
		for iter.Next() {
			out[iter.Selector().Unquoted()] = probed{iter.Value(), iter.FieldType(), fmt.Sprint(iter.Value())}
		}
		return out
	}
	base := fieldsOf(sv)
	out := map[string]*conditional{}
	dependsOn := map[string][]string{}
	for _, sw := range slices.Sorted(maps.Keys(base)) {
		values := switchValues(base[sw].value)
		if values == nil {
			continue
		}
		present := map[string][]string{}
		required := map[string][]string{}
		seen := map[string]probed{}
		var all []string
		for _, x := range values {
			lit, _ := celLiteral(x)
			fields := fieldsOf(sv.FillPath(cue.MakePath(cue.Str(sw)), x))
			if fields == nil {
				continue // a value the struct refuses
			}
			all = append(all, lit)
			for name, f := range fields {
				if name == sw {
					continue
				}
				present[name] = append(present[name], lit)
				if f.fieldType&cue.RequiredConstraint != 0 || f.fieldType&cue.OptionalConstraint == 0 && cueNeedsInput(f.value) {
					required[name] = append(required[name], lit)
				}
				if b, ok := base[name]; ok && b.text != f.text && !slices.Contains(dependsOn[name], sw) {
					dependsOn[name] = append(dependsOn[name], sw)
					w.warn(path+"."+name, "its constraints depend on %s.%s (%v when it is %s), which the CRD does not check; cuerator and cue vet do", path, sw, f.value, lit)
				}
				if _, ok := seen[name]; !ok {
					seen[name] = f
				}
			}
		}
		for name, f := range seen {
			p, r := present[name], required[name]
			if len(p) == len(all) && (len(r) == 0 || len(r) == len(all)) {
				continue // the same for every value of the switch
			}
			if c, dup := out[name]; dup {
				w.warn(path+"."+name, "whether it is required depends on %s.%s and %s.%s; the CRD checks neither, cuerator and cue vet do", path, c.switchName, path, sw)
				continue
			}
			out[name] = &conditional{value: f.value, fieldType: f.fieldType, switchName: sw, present: p, required: r, all: all}
		}
	}
	return out
}

// conditionalRules are the rules of a field that depends on a switch, on
// the struct holding both; open is set when the struct keeps unknown
// fields, so that an absent field may be given anyway.
func (c *conditional) rules(path, name string, switchMayBeAbsent, open bool) []apiextensionsv1.ValidationRule {
	sw := "self." + celField(c.switchName)
	field := "self." + celField(name)
	in := func(lits []string) string {
		if len(lits) == 1 {
			return sw + " == " + lits[0]
		}
		return sw + " in [" + strings.Join(lits, ", ") + "]"
	}
	when := func(lits []string) string { return path + "." + c.switchName + " is " + strings.Join(lits, " or ") }
	var rules []apiextensionsv1.ValidationRule
	if len(c.required) > 0 {
		rule := "!(" + in(c.required) + ") || has(" + field + ")"
		if switchMayBeAbsent {
			rule = "!has(" + sw + ") || " + rule
		}
		rules = append(rules, apiextensionsv1.ValidationRule{
			Rule:      rule,
			Message:   fmt.Sprintf("%s.%s: field is required but not present (when %s)", path, name, when(c.required)),
			FieldPath: celFieldPath([]string{name}),
		})
	}
	if len(c.present) < len(c.all) && !open {
		cond := in(c.present)
		if switchMayBeAbsent {
			cond = "has(" + sw + ") && " + cond
		}
		rules = append(rules, apiextensionsv1.ValidationRule{
			Rule:      "(" + cond + ") || !has(" + field + ")",
			Message:   fmt.Sprintf("%s.%s: field not allowed (unless %s)", path, name, when(c.present)),
			FieldPath: celFieldPath([]string{name}),
		})
	}
	return rules
}

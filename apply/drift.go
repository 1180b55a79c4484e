package apply

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/typed"

	"github.com/cuerator/cuerator/child"
)

// The comparisons here need no request: they run on the desired object and
// the live one from the informer cache. Only the fields the template sets
// are compared, so defaults and other controllers' fields never count.

// desiredFields is the set of fields a desired object sets.
func desiredFields(desired *unstructured.Unstructured) (*typed.TypedValue, *fieldpath.Set, error) {
	tv, err := typed.DeducedParseableType.FromUnstructured(desired.Object)
	if err != nil {
		return nil, nil, err
	}
	set, err := tv.ToFieldSet()
	if err != nil {
		return nil, nil, err
	}
	return tv, set, nil
}

// extractFields returns the part of live at the fields in set.
func extractFields(live *unstructured.Unstructured, set *fieldpath.Set) (*typed.TypedValue, error) {
	tv, err := typed.DeducedParseableType.FromUnstructured(live.Object)
	if err != nil {
		return nil, err
	}
	// Leaves only: a set that also names a parent makes ExtractItems drop
	// the parent's content.
	return tv.ExtractItems(set.Leaves()), nil
}

// managedDigest is the digest of what live holds at the fields desired
// sets. Right after an apply it is the server's normalized form of desired;
// when it changes later, someone else changed a field cuerator owns.
func managedDigest(desired, live *unstructured.Unstructured) (string, error) {
	_, set, err := desiredFields(desired)
	if err != nil {
		return "", err
	}
	ex, err := extractFields(live, set)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(ex.AsValue().Unstructured())
	if err != nil {
		return "", err
	}
	return digest(b), nil
}

// Drift is a change to fields of a child that cuerator applied.
type Drift struct {
	Object string
	// Fields are the drifted field paths, e.g. .spec.replicas.
	Fields []string
	// Managers are the other field managers that hold those fields now.
	Managers []string
	// Corrected is false when the drift policy only reports.
	Corrected bool
}

func (d Drift) String() string {
	who := "unknown manager"
	if len(d.Managers) > 0 {
		who = "field manager " + strings.Join(d.Managers, ", ")
	}
	return fmt.Sprintf("%s: %s changed by %s", d.Object, strings.Join(d.Fields, ", "), who)
}

// describeDrift names the fields where live differs from desired and the
// field managers other than cuerator that own them.
func describeDrift(desired, live *unstructured.Unstructured) (fields, managers []string, err error) {
	dtv, set, err := desiredFields(desired)
	if err != nil {
		return nil, nil, err
	}
	ex, err := extractFields(live, set)
	if err != nil {
		return nil, nil, err
	}
	cmp, err := dtv.Compare(ex)
	if err != nil {
		return nil, nil, err
	}
	changed := cmp.Modified.Union(cmp.Added).Union(cmp.Removed)
	changed.Leaves().Iterate(func(p fieldpath.Path) { fields = append(fields, p.String()) })
	sort.Strings(fields)

	for _, mf := range live.GetManagedFields() {
		if mf.Manager == child.FieldManager || mf.FieldsV1 == nil {
			continue
		}
		owned := &fieldpath.Set{}
		if err := owned.FromJSON(bytes.NewReader(mf.FieldsV1.Raw)); err != nil {
			continue
		}
		if holdsAny(owned, fields) && !contains(managers, mf.Manager) {
			managers = append(managers, mf.Manager)
		}
	}
	sort.Strings(managers)
	return fields, managers, nil
}

// holdsAny reports whether owned has one of paths or a field below one.
// Deduced types make lists atomic, so a drifted list is named as a whole
// while a manager owns fields inside it.
func holdsAny(owned *fieldpath.Set, paths []string) bool {
	found := false
	owned.Leaves().Iterate(func(p fieldpath.Path) {
		s := p.String()
		for _, want := range paths {
			if s == want || strings.HasPrefix(s, want+".") || strings.HasPrefix(s, want+"[") {
				found = true
			}
		}
	})
	return found
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

package render

import (
	"fmt"

	"cuelang.org/go/cue"
	rbacv1 "k8s.io/api/rbac/v1"
)

// RoleRules are the rules of the Roles the template produces. The API
// server lets the operator create a Role only with permissions it holds
// itself (RBAC's escalation check), so its own RBAC must include them
// (generate/rbac grants them).
func (k *Kind) RoleRules() []rbacv1.PolicyRule { return k.roleRules }

// loadRoleRules reads the rules of the template's Roles without a CR, as
// checkRandom reads its children: the operator's RBAC is generated before
// any CR exists, so rules that depend on one are refused when the module
// loads. A Role only some specs produce is not seen here.
func (k *Kind) loadRoleRules() error {
	iter, err := k.template.LookupPath(pathObjects).Fields()
	if err != nil {
		return nil // incomplete without a CR: no child to read
	}
	for iter.Next() {
		obj := iter.Value()
		apiVersion, _ := obj.LookupPath(cue.ParsePath("apiVersion")).String()
		kind, _ := obj.LookupPath(cue.ParsePath("kind")).String()
		if apiVersion != rbacv1.SchemeGroupVersion.String() || kind != "Role" {
			continue
		}
		rules := obj.LookupPath(cue.ParsePath("rules"))
		var out []rbacv1.PolicyRule
		if err := rules.Decode(&out); err != nil {
			return fmt.Errorf("%sobjects.%s.rules: a Role's rules must not depend on the CR: the operator's RBAC must hold what the Role grants before the CR exists (%v)",
				where(rules.Pos()), iter.Selector(), Diagnose(err))
		}
		k.roleRules = append(k.roleRules, out...)
	}
	return nil
}

// Package gitops reads cuerator CRs the way GitOps tools do: Argo CD through
// the Lua health check of deploy/argocd, Flux through kstatus and the CEL
// health checks of deploy/flux. The tests here run them on CR fixtures; the
// e2e tests run them on live CRs.
package gitops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

// ArgoCDHealth is what an Argo CD health script returns.
type ArgoCDHealth struct {
	Status  string
	Message string
}

// argoCDHealthStatuses are the statuses Argo CD accepts from a script; it
// shows any other as Unknown.
var argoCDHealthStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

// RunArgoCDHealth runs a health script as Argo CD runs one from argocd-cm:
// without the standard libraries except base, package and table (the
// script may not use string), with a one-second deadline, obj a global
// table converted from the object's JSON value, and the table the script
// returns read as {status, message}.
func RunArgoCDHealth(script string, obj map[string]any) (ArgoCDHealth, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for name, open := range map[string]lua.LGFunction{
		lua.LoadLibName: lua.OpenPackage,
		lua.BaseLibName: lua.OpenBase,
		lua.TabLibName:  lua.OpenTable,
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(open), Protect: true}, lua.LString(name)); err != nil {
			return ArgoCDHealth{}, fmt.Errorf("open Lua library %s: %w", name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return ArgoCDHealth{}, err
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return ArgoCDHealth{}, fmt.Errorf("the script returned %s, Argo CD expects a table", l.Get(-1).Type())
	}
	h := ArgoCDHealth{Status: lua.LVAsString(ret.RawGetString("status")), Message: lua.LVAsString(ret.RawGetString("message"))}
	if !argoCDHealthStatuses[h.Status] {
		return ArgoCDHealth{}, fmt.Errorf("the script returned status %q, which Argo CD shows as Unknown", h.Status)
	}
	return h, nil
}

// toLua converts a JSON value as Argo CD does: objects and arrays become
// tables, numbers (float64 or int64 in unstructured objects) Lua numbers.
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for k, item := range v {
			t.RawSetH(lua.LString(k), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}

// ArgoCDHealthScripts reads the health scripts of an argocd-cm patch, by
// data key.
func ArgoCDHealthScripts(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Data map[string]string `json:"data"`
	}
	if err := yaml.UnmarshalStrict(b, &cm); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if cm.Kind != "ConfigMap" || cm.Metadata.Name != "argocd-cm" || cm.Metadata.Namespace != "argocd" {
		return nil, fmt.Errorf("%s: not a patch of ConfigMap argocd/argocd-cm", path)
	}
	if len(cm.Data) == 0 {
		return nil, errors.New(path + ": no health check in data")
	}
	return cm.Data, nil
}

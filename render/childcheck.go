package render

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"cuelang.org/go/cue"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/cuerator/cuerator/kubeschema"
)

// checkChild checks a child against its kind's built-in schema, offline,
// and names each issue by its path under the template's objects and the
// file:line that sets it (v is the child's CUE value). known is false when
// the kind has no built-in schema.
func checkChild(obj *unstructured.Unstructured, v cue.Value, dir, at string) (errs []FieldError, known bool) {
	issues, known := kubeschema.Check(obj)
	for _, i := range issues {
		fe := FieldError{Path: at + "." + i.PathString(), Message: i.Message}
		if pos := positionAt(v, i.Path).Pos(); pos.IsValid() && pos.Filename() != "" {
			file := filepath.ToSlash(pos.Filename())
			if rest, ok := strings.CutPrefix(file, "/"); ok {
				file = rest
			} else {
				// A file the template @embeds is named relative to the
				// template's package: the kind's directory.
				file = path.Join(dir, file)
			}
			fe.Pos = fmt.Sprintf("%s:%d", file, pos.Line())
		}
		errs = append(errs, fe)
	}
	return errs, known
}

// positionAt is the value at path below v, or its deepest ancestor that
// the template defines.
func positionAt(v cue.Value, path []any) cue.Value {
	for _, p := range path {
		var next cue.Value
		switch p := p.(type) {
		case string:
			next = v.LookupPath(cue.MakePath(cue.Str(p)))
		case int:
			next = v.LookupPath(cue.MakePath(cue.Index(p)))
		}
		if !next.Exists() || !next.Pos().IsValid() {
			return v
		}
		v = next
	}
	return v
}

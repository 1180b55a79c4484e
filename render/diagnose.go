package render

import (
	"fmt"
	"path/filepath"
	"strings"

	cueerrors "cuelang.org/go/cue/errors"
)

// FieldError is one reason a CR or template was rejected.
type FieldError struct {
	// Path is the CR field path (spec.size) or the template path.
	Path string
	// Message says what is wrong with it.
	Message string
	// Pos is the CUE file:line of the constraint, when known.
	Pos string
}

func (e FieldError) String() string {
	s := e.Path + ": " + e.Message
	if e.Path == "" {
		s = e.Message
	}
	if e.Pos != "" {
		s += " (" + e.Pos + ")"
	}
	return s
}

// ValidationError lists every field error of one evaluation.
type ValidationError struct {
	Errs []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errs))
	for i, fe := range e.Errs {
		parts[i] = fe.String()
	}
	return strings.Join(parts, "; ")
}

// Diagnose turns a CUE error into a ValidationError whose paths are CR
// paths ("spec.size" rather than "cr.spec.size"). It drops the "empty
// disjunction", default-conflict and duplicate lines that CUE adds next to
// the real reason.
func Diagnose(err error) error {
	if err == nil {
		return nil
	}
	all := cueerrors.Errors(err)
	if len(all) == 0 {
		return err
	}
	var (
		out   []FieldError
		noise []FieldError
		seen  = map[string]bool{}
	)
	for _, e := range all {
		// Error() carries wrapped causes that Msg() leaves out; it starts
		// with the path, which FieldError keeps apart.
		path := strings.Join(e.Path(), ".")
		fe := FieldError{
			Path:    strings.TrimPrefix(path, "cr."),
			Message: strings.TrimPrefix(e.Error(), path+": "),
		}
		if rest, ok := strings.CutPrefix(fe.Message, "incomplete value "); ok && strings.HasPrefix(path, "cr.") {
			fe.Message = "required value is missing (want " + rest + ")"
		}
		if pos := e.Position(); pos.IsValid() {
			fe.Pos = fmt.Sprintf("%s:%d", strings.TrimPrefix(filepath.ToSlash(pos.Filename()), "/"), pos.Line())
		}
		if fe.Path == "cr" {
			fe.Path = ""
		}
		key := fe.Path + "\x00" + fe.Message
		if seen[key] {
			continue
		}
		seen[key] = true
		if strings.Contains(fe.Message, "empty disjunction") {
			noise = append(noise, fe)
			continue
		}
		out = append(out, fe)
	}
	if len(out) == 0 {
		out = noise
	}
	return &ValidationError{Errs: withoutDefaultConflicts(out)}
}

// withoutDefaultConflicts drops "conflicting values" next to another error
// of the same field: a value that breaks `int & <=100 | *1` fails both
// branches, and the default's "conflicting values 1 and 200" says nothing
// the bound's "out of bound <=100" does not say better.
func withoutDefaultConflicts(errs []FieldError) []FieldError {
	explained := map[string]bool{}
	for _, fe := range errs {
		if !strings.HasPrefix(fe.Message, "conflicting values ") {
			explained[fe.Path] = true
		}
	}
	out := errs[:0:0]
	for _, fe := range errs {
		if explained[fe.Path] && strings.HasPrefix(fe.Message, "conflicting values ") {
			continue
		}
		out = append(out, fe)
	}
	return out
}

// TemplateError is a failure of the template itself rather than of the CR:
// the CR was valid, and no CR can fix it.
type TemplateError struct {
	Dir string
	Err error
}

func (e *TemplateError) Error() string { return "template " + e.Dir + ": " + e.Err.Error() }
func (e *TemplateError) Unwrap() error { return e.Err }

// Package schemas embeds the CUE module that defines every kind cuerator
// serves: per kind, an api package (the CR schema the CRD is generated
// from) and a template package (the children a CR turns into).
package schemas

import "embed"

// FS holds the module with cue.mod at its root.
//
//go:embed all:cue.mod common memcached webapp database search monitoring
var FS embed.FS

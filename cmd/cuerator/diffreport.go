package main

import (
	"io"
	"strings"

	"github.com/cuerator/cuerator/apply"
	"github.com/cuerator/cuerator/preview"
)

// ANSI colours of the diff report.
const (
	colorReset = "\x1b[0m"
	colorBold  = "\x1b[1m"
	colorRed   = "\x1b[31m"
	colorGreen = "\x1b[32m"
	colorCyan  = "\x1b[36m"
)

// writeDiff prints the report of one CR: one line per child, and the diff of
// each changed one. With color, additions are green and removals red.
func writeDiff(w io.Writer, d *preview.CRDiff, color bool) error {
	paint := func(c, s string) string {
		if !color || c == "" {
			return s
		}
		return c + s + colorReset
	}
	var b strings.Builder
	line := func(c, s string) { b.WriteString(paint(c, s) + "\n") }
	for _, c := range d.Children {
		prefix := d.CR + ": " + c.Object
		switch c.Action {
		case apply.ActionCreate:
			line(colorGreen, prefix+" would be created")
		case apply.ActionDelete:
			line(colorRed, prefix+" would be pruned")
		case apply.ActionOrphan:
			line(colorRed, prefix+" would be orphaned (kept, without cuerator's labels)")
		case preview.ActionRefuse:
			line(colorRed, d.CR+": "+c.Refusal().String()+"; the operator would leave it and stall")
		case apply.ActionConfigure:
			line(colorBold, prefix+" would change")
			for _, l := range strings.Split(strings.TrimSuffix(c.Diff, "\n"), "\n") {
				line(diffLineColor(l), l)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func diffLineColor(line string) string {
	switch {
	case strings.HasPrefix(line, "+++"), strings.HasPrefix(line, "---"):
		return colorBold
	case strings.HasPrefix(line, "+"):
		return colorGreen
	case strings.HasPrefix(line, "-"):
		return colorRed
	case strings.HasPrefix(line, "@@"):
		return colorCyan
	}
	return ""
}

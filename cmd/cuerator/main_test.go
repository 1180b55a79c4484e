package main

import (
	"bytes"
	"testing"
)

// cliRun is what one in-process run of the CLI printed and returned.
type cliRun struct {
	stdout, stderr string
	err            error
}

// runCLI runs the command line args as `cuerator` would, in this process.
func runCLI(t *testing.T, args ...string) cliRun {
	t.Helper()
	root := newRootCmd()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(args)
	err := root.Execute()
	return cliRun{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

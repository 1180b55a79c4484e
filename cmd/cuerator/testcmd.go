package main

import (
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/templatetest"
)

func testCmd(templates *string) *cobra.Command {
	var update, verbose bool
	var run string
	cmd := &cobra.Command{
		Use:   "test [DIR...]",
		Short: "Run the golden tests of a template module, offline",
		Long: `test renders each test's CR, as the operator would but with no cluster, and
compares the children and the projected status with the test's expected
files. The children are checked against the Kubernetes API's schemas of their
kinds too, so that a misspelt field fails with its file:line.

A test is a directory with a cr.yaml, found anywhere under DIR (default: the
tests/ directory of --templates):

  cr.yaml        the CR (namespace "default" unless it names one)
  observed.yaml  optional: pods: [{name, phase}], children: {<key>: {metadata,
                 spec, status}} and inputs: {<key>: object}, what children
                 that read others, readiness and the status projection read
  children/      the expected children, one <key>.yaml per template key
  status.yaml    the expected projected status
  error.txt      instead of children/ and status.yaml: the expected error

Every output needs its expected file; --update writes them. A template's
random reads ` + templatetest.RandomText + `. Exit status: 0 every test passed, 1 some
failed, 2 the tests could not run.`,
		Example: `  # In CI: the tests next to the templates
  cuerator test --templates ./kinds

  # Write the expected files of new or changed tests, then review the diff
  cuerator test --templates ./kinds --update && git diff ./kinds/tests`,
		RunE: func(cmd *cobra.Command, dirs []string) error {
			var filter *regexp.Regexp
			if run != "" {
				var err error
				if filter, err = regexp.Compile(run); err != nil {
					return fmt.Errorf("--run: %w", err)
				}
			}
			if len(dirs) == 0 {
				if *templates == "" {
					return fmt.Errorf("name the directory of the tests, or --templates DIR whose tests/ holds them")
				}
				dirs = []string{filepath.Join(*templates, "tests")}
			}
			lib, err := load(*templates, templatetest.Options()...)
			if err != nil {
				return err
			}
			var cases []templatetest.Case
			for _, dir := range dirs {
				found, err := templatetest.Find(dir)
				if err != nil {
					return err
				}
				for _, c := range found {
					if filter == nil || filter.MatchString(c.Name) {
						cases = append(cases, c)
					}
				}
			}
			if len(cases) == 0 {
				return fmt.Errorf("no test found in %s (a test is a directory with a %s)", strings.Join(dirs, ", "), templatetest.CRFile)
			}
			return runTests(cmd.OutOrStdout(), lib, cases, update, verbose)
		},
	}
	cmd.Flags().BoolVar(&update, "update", false, "write the expected files from what the templates render, instead of comparing")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list the children no built-in schema checks")
	cmd.Flags().StringVar(&run, "run", "", "run only the tests whose name matches this regular expression")
	return cmd
}

// runTests runs the cases and reports each as go test does: ok or FAIL and
// the name, then why, indented.
func runTests(out io.Writer, lib *render.Library, cases []templatetest.Case, update, verbose bool) error {
	failed, broken := 0, 0
	for _, c := range cases {
		res, err := templatetest.Run(lib, c, update)
		switch {
		case err != nil:
			broken++
			fmt.Fprintf(out, "ERROR %s: %v\n", c.Name, err)
			continue
		case update:
			if len(res.Updated) == 0 {
				fmt.Fprintf(out, "ok    %s (unchanged)\n", c.Name)
			} else {
				fmt.Fprintf(out, "wrote %s: %s\n", c.Name, strings.Join(res.Updated, ", "))
			}
		case res.Passed():
			fmt.Fprintf(out, "ok    %s\n", c.Name)
		default:
			failed++
			fmt.Fprintf(out, "FAIL  %s\n", c.Name)
			for _, f := range res.Failures {
				fmt.Fprintf(out, "%s\n", indent(f, "      "))
			}
		}
		if verbose && len(res.Unchecked) > 0 {
			fmt.Fprintf(out, "      not checked offline (no built-in schema): %s\n", strings.Join(res.Unchecked, ", "))
		}
	}
	passed := len(cases) - failed - broken
	fmt.Fprintf(out, "%d tests: %d passed, %d failed", len(cases), passed, failed)
	if broken > 0 {
		fmt.Fprintf(out, ", %d could not run", broken)
	}
	fmt.Fprintln(out)
	switch {
	case broken > 0:
		return exitCode(2)
	case failed > 0:
		return exitCode(1)
	}
	return nil
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

// Command cuerator is the operator and the CLI that shares its packages.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		if code, ok := err.(exitCode); ok {
			os.Exit(int(code))
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(2)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:     "cuerator",
		Version: buildVersion(),
		// Run as kubectl-cuerator, help and usage say `kubectl cuerator`.
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: displayName(os.Args[0])},
		Short:         "Kubernetes operators from CUE templates",
		Long:          "cuerator serves custom resource kinds described in CUE: it generates their CRDs, renders each CR into its children and keeps them applied with server-side apply.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var templates string
	root.PersistentFlags().StringVar(&templates, "templates", "", "directory of a CUE template module to use instead of the built-in one")
	root.AddCommand(runCmd(&templates), crdsCmd(&templates), renderCmd(&templates), vetCmd(&templates), rbacCmd(&templates))
	root.AddCommand(testCmd(&templates), diffCmd(&templates), checkCmd(&templates), argoCDHealthCmd(&templates), bundleCmd(&templates), configMapCmd(&templates), chartCmd(&templates), migrateCmd(&templates), versionCmd())
	return root
}

// exitCode ends the command with that code after it has printed its own report.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit code %d", int(c)) }

package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// version is stamped at build time: go build -ldflags "-X main.version=v0.1.0"
// (make build, hack/build-static.sh and so the image).
var version string

// buildVersion is the stamped version, else the module version of a `go
// install ...@version`, else "dev".
func buildVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "dev"
}

type versionInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

func versionCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of cuerator",
		Example: `  cuerator version
  cuerator version -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := versionInfo{Version: buildVersion(), GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
			out := cmd.OutOrStdout()
			switch format {
			case "":
				_, err := fmt.Fprintf(out, "cuerator %s (%s, %s)\n", v.Version, v.GoVersion, v.Platform)
				return err
			case "json":
				b, err := json.MarshalIndent(v, "", "    ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(out, "%s\n", b)
				return err
			case "yaml":
				b, err := yaml.Marshal(v)
				if err != nil {
					return err
				}
				_, err = out.Write(b)
				return err
			}
			return fmt.Errorf("--output %q: want yaml or json", format)
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", "", "print as yaml or json instead of a line")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"yaml", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

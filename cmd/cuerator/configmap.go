package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	yaml "go.yaml.in/yaml/v3"

	"github.com/cuerator/cuerator/generate/configmap"
	"github.com/cuerator/cuerator/generate/rbac"
	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/schemas"
)

type configMapOptions struct {
	name, namespace, mountPath, outputDir, format string
}

func configMapCmd(templates *string) *cobra.Command {
	opts := configMapOptions{}
	cmd := &cobra.Command{
		Use:   "configmap",
		Short: "Pack the templates into a ConfigMap that the operator reads live",
		Long: `configmap prints the template module as a ConfigMap, one key per file. Mounted
with the projected volume that puts each key back at its path, it is a template
directory for 'cuerator run --templates', which follows its updates without a
restart: apply a new ConfigMap and the kubelet swaps the files.

With --output-dir it writes what deploy/live-templates adds to the operator:
the ConfigMap (templates.yaml), the JSON patch of the manager Deployment that
mounts it and passes --templates (manager_patch.yaml), and the ClusterRole
that lets the operator install its kinds' CRDs (crd_installer_role.yaml).`,
		Example: `  # Update the templates of a running operator (deploy/live-templates)
  cuerator configmap --templates ./kinds | kubectl apply --server-side -f -

  # What 'make generate' writes
  cuerator configmap --output-dir deploy/live-templates`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(opts.format); err != nil {
				return err
			}
			lib, err := loadLibrary(*templates)
			if err != nil {
				return err
			}
			files, err := templateFiles(*templates)
			if err != nil {
				return err
			}
			module, err := configmap.Pack(files, opts.name, opts.namespace)
			if err != nil {
				return err
			}
			if opts.outputDir == "" {
				b, err := generatedYAML("cuerator configmap", module.ConfigMap)
				if err != nil {
					return err
				}
				return writeManifests(cmd.OutOrStdout(), opts.format, b)
			}
			return writeLiveTemplates(opts, lib, module)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.name, "name", "cuerator-templates", "name of the ConfigMap")
	f.StringVar(&opts.namespace, "namespace", "cuerator-system", "namespace of the ConfigMap: the operator's")
	f.StringVar(&opts.mountPath, "mount-path", "/etc/cuerator/templates", "where the patch mounts the templates in the manager container")
	f.StringVar(&opts.outputDir, "output-dir", "", "write templates.yaml, manager_patch.yaml and crd_installer_role.yaml into this directory instead of printing the ConfigMap")
	addOutputFlag(cmd, &opts.format)
	return cmd
}

// templateFiles reads the module's files, as loadLibrary loads them.
func templateFiles(dir string) (map[string][]byte, error) {
	if dir == "" {
		return render.ModuleFiles(schemas.FS)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("--templates: %w", err)
	}
	defer root.Close()
	return render.ModuleFiles(root.FS())
}

func writeLiveTemplates(opts configMapOptions, lib *render.Library, module *configmap.Module) error {
	const by = "cuerator configmap --output-dir"
	templates, err := generatedYAML(by, module.ConfigMap)
	if err != nil {
		return err
	}
	patch, err := generatedYAML(by, module.ManagerPatch(opts.mountPath))
	if err != nil {
		return err
	}
	role, err := rbac.YAML(generatedHeader(by), rbac.CRDInstallerClusterRole(lib))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(opts.outputDir, 0o755); err != nil {
		return err
	}
	for name, content := range map[string][]byte{"templates.yaml": templates, "manager_patch.yaml": patch, "crd_installer_role.yaml": role} {
		if err := os.WriteFile(filepath.Join(opts.outputDir, name), content, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func generatedHeader(by string) string {
	return fmt.Sprintf("# Generated from the templates by `%s` (make generate): do not edit.\n", by)
}

// generatedYAML is obj as YAML under the header of a generated file,
// without the empty creationTimestamp that a typed object marshals.
func generatedYAML(by string, obj any) ([]byte, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		return nil, err
	}
	if m, ok := generic.(map[string]any); ok {
		if md, ok := m["metadata"].(map[string]any); ok {
			delete(md, "creationTimestamp")
		}
	}
	// yaml.v3 writes a template file as a literal block, tabs and all, so
	// that the ConfigMap reads (and diffs) as the file does.
	var buf bytes.Buffer
	buf.WriteString(generatedHeader(by))
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(generic); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

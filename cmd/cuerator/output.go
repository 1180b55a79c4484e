package main

import (
	"bytes"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/yaml"

	"github.com/cuerator/cuerator/render"
)

// addOutputFlag gives cmd kubectl's -o/--output for the formats that fit
// objects: yaml (the default) and json.
func addOutputFlag(cmd *cobra.Command, format *string) {
	cmd.Flags().StringVarP(format, "output", "o", "yaml", "output format: yaml or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"yaml", "json"}, cobra.ShellCompDirectiveNoFileComp))
}

func checkOutput(format string) error {
	if format != "yaml" && format != "json" {
		return fmt.Errorf("--output %q: want yaml or json", format)
	}
	return nil
}

// writeObjects prints objects as kubectl -o does: in yaml one document
// each; in json the object, or a v1 List when there are several.
func writeObjects(w io.Writer, format string, objs []*unstructured.Unstructured) error {
	if format == "yaml" {
		return writeYAML(w, objs)
	}
	var obj runtime.Object
	if len(objs) == 1 {
		obj = objs[0]
	} else {
		list := &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "v1", "kind": "List"}}
		for _, o := range objs {
			list.Items = append(list.Items, *o)
		}
		obj = list
	}
	return (&printers.JSONPrinter{}).PrintObj(obj, w)
}

// writeManifests prints generated YAML as it is, or its objects in json.
func writeManifests(w io.Writer, format string, manifests []byte) error {
	if format == "yaml" {
		_, err := w.Write(manifests)
		return err
	}
	objs, err := render.ReadManifests(bytes.NewReader(manifests))
	if err != nil {
		return err
	}
	return writeObjects(w, format, objs)
}

func writeYAML(w io.Writer, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "---\n%s", b); err != nil {
			return err
		}
	}
	return nil
}

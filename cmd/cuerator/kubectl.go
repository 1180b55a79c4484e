package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// kubectlFlags are kubectl's own flags for reaching a cluster
// (k8s.io/cli-runtime), so that --kubeconfig, --context, -n/--namespace,
// --as and the rest mean here what they mean to kubectl, with the same
// defaults: KUBECONFIG, then ~/.kube/config, then the pod's service
// account; the namespace of the current context.
type kubectlFlags struct {
	config *genericclioptions.ConfigFlags
}

// addKubectlFlags gives cmd kubectl's flags for a cluster, -n/--namespace
// among them unless withNamespace is false.
func addKubectlFlags(cmd *cobra.Command, withNamespace bool) kubectlFlags {
	f := genericclioptions.NewConfigFlags(true)
	if !withNamespace {
		f.Namespace = nil
	}
	return registerKubectlFlags(cmd, f)
}

// addNamespaceFlags gives a command that reaches no cluster the flags that
// pick the namespace of CRs that name none, as kubectl picks it.
func addNamespaceFlags(cmd *cobra.Command) kubectlFlags {
	return registerKubectlFlags(cmd, &genericclioptions.ConfigFlags{KubeConfig: ptr.To(""), Context: ptr.To(""), Namespace: ptr.To("")})
}

func registerKubectlFlags(cmd *cobra.Command, f *genericclioptions.ConfigFlags) kubectlFlags {
	f.AddFlags(cmd.Flags())
	k := kubectlFlags{config: f}
	_ = cmd.RegisterFlagCompletionFunc("context", k.completeContexts)
	// Namespaces come from the cluster: only for a command that reaches one.
	if f.Namespace != nil && f.APIServer != nil {
		_ = cmd.RegisterFlagCompletionFunc("namespace", k.completeNamespaces)
	}
	return k
}

// namespace is --namespace, else the current context's, else "default".
func (k kubectlFlags) namespace() (string, error) {
	ns, _, err := k.config.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("kubeconfig: %w", err)
	}
	return ns, nil
}

func (k kubectlFlags) restConfig() (*rest.Config, error) {
	cfg, err := k.config.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

func (k kubectlFlags) completeContexts(_ *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
	raw, err := k.config.ToRawKubeConfigLoader().RawConfig()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for name := range raw.Contexts {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeNamespaces asks the cluster, as kubectl's completion does.
func (k kubectlFlags) completeNamespaces(cmd *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
	cfg, err := k.restConfig()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
	defer cancel()
	list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, ns := range list.Items {
		if strings.HasPrefix(ns.Name, prefix) {
			names = append(names, ns.Name)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// kubectlPluginName is the binary's name as a kubectl plugin: `kubectl
// cuerator ...` runs kubectl-cuerator from PATH.
const kubectlPluginName = "kubectl-cuerator"

// displayName is how help and usage name the command: as kubectl's when the
// binary runs as its plugin.
func displayName(arg0 string) string {
	if strings.TrimSuffix(filepath.Base(arg0), ".exe") == kubectlPluginName {
		return "kubectl cuerator"
	}
	return "cuerator"
}

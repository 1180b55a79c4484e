package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// The seed's sample manifest, byte for byte, through kubectl.
const sample = "../../examples/memcached-sample.yaml"

type deployment struct {
	Metadata struct {
		Labels          map[string]string `json:"labels"`
		OwnerReferences []struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
			UID        string `json:"uid"`
			Controller bool   `json:"controller"`
		} `json:"ownerReferences"`
	} `json:"metadata"`
	Spec struct {
		Replicas int `json:"replicas"`
		Template struct {
			Spec struct {
				Containers []struct {
					Name  string `json:"name"`
					Image string `json:"image"`
					Ports []struct {
						Name          string `json:"name"`
						ContainerPort int    `json:"containerPort"`
					} `json:"ports"`
				} `json:"containers"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

func getJSON(t *testing.T, into any, args ...string) {
	t.Helper()
	out := kubectl(t, append([]string{"get", "-o", "json"}, args...)...)
	if err := json.Unmarshal([]byte(out), into); err != nil {
		t.Fatalf("decode kubectl get %v: %v", args, err)
	}
}

// podNames lists the names of the CR's running pods, as a user would.
func podNames(t *testing.T, ns, cr string) []string {
	var list struct {
		Items []struct {
			Metadata struct {
				Name              string  `json:"name"`
				DeletionTimestamp *string `json:"deletionTimestamp"`
			} `json:"metadata"`
		} `json:"items"`
	}
	getJSON(t, &list, "pods", "-n", ns, "-l", "memcached_cr="+cr, "--field-selector=status.phase=Running")
	var names []string
	for _, p := range list.Items {
		if p.Metadata.DeletionTimestamp == nil {
			names = append(names, p.Metadata.Name)
		}
	}
	slices.Sort(names)
	return names
}

func statusNodes(t *testing.T, ns, cr string) []string {
	var m struct {
		Status struct {
			Nodes []string `json:"nodes"`
		} `json:"status"`
	}
	getJSON(t, &m, "memcached", cr, "-n", ns)
	slices.Sort(m.Status.Nodes)
	return m.Status.Nodes
}

func waitNodes(t *testing.T, ns, cr string, want int) {
	t.Helper()
	eventually(t, 90*time.Second, fmt.Sprintf("status.nodes lists the %d pods", want), func() error {
		pods, nodes := podNames(t, ns, cr), statusNodes(t, ns, cr)
		if len(pods) != want || !slices.Equal(pods, nodes) {
			return fmt.Errorf("pods %v, status.nodes %v", pods, nodes)
		}
		return nil
	})
}

func TestMemcachedSample(t *testing.T) {
	ns := namespace(t, "memcached-sample")
	kubectl(t, "apply", "-n", ns, "-f", sample)

	var d deployment
	eventually(t, 30*time.Second, "Deployment created", func() error {
		_, err := kubectlOut(testCluster.KubeconfigPath, "get", "deployment", "memcached-sample", "-n", ns)
		return err
	})
	getJSON(t, &d, "deployment", "memcached-sample", "-n", ns)
	var cr struct {
		Metadata struct{ UID string } `json:"metadata"`
	}
	getJSON(t, &cr, "memcached", "memcached-sample", "-n", ns)

	if d.Spec.Replicas != 3 {
		t.Errorf("replicas = %d, want 3", d.Spec.Replicas)
	}
	c := d.Spec.Template.Spec.Containers
	if len(c) != 1 || c[0].Name != "memcached" || c[0].Image != "memcached:1.6" ||
		len(c[0].Ports) != 1 || c[0].Ports[0].ContainerPort != 11211 || c[0].Ports[0].Name != "memcached" {
		t.Errorf("containers = %+v", c)
	}
	if d.Metadata.Labels["app"] != "memcached" || d.Metadata.Labels["memcached_cr"] != "memcached-sample" {
		t.Errorf("labels = %v", d.Metadata.Labels)
	}
	refs := d.Metadata.OwnerReferences
	if len(refs) != 1 || refs[0].Kind != "Memcached" || refs[0].APIVersion != "cache.example.com/v1alpha1" ||
		refs[0].Name != "memcached-sample" || refs[0].UID != cr.Metadata.UID || !refs[0].Controller {
		t.Errorf("ownerReferences = %+v", refs)
	}

	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "memcached/memcached-sample", "--timeout=90s")
	waitNodes(t, ns, "memcached-sample", 3)
	if got := kubectl(t, "get", "memcached", "memcached-sample", "-n", ns, "-o", "jsonpath={.status.children[*].object}={.status.children[*].status}"); got != "Deployment/"+ns+"/memcached-sample=Current" {
		t.Errorf("status.children = %q", got)
	}

	t.Run("scale with kubectl patch", func(t *testing.T) {
		kubectl(t, "patch", "-n", ns, "memcached", "memcached-sample", "--type=merge", "-p", `{"spec":{"size":5}}`)
		eventually(t, 30*time.Second, "Deployment scaled to 5", func() error {
			getJSON(t, &d, "deployment", "memcached-sample", "-n", ns)
			if d.Spec.Replicas != 5 {
				return fmt.Errorf("replicas %d", d.Spec.Replicas)
			}
			return nil
		})
		waitNodes(t, ns, "memcached-sample", 5)
		kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "memcached/memcached-sample", "--timeout=90s")
	})

	t.Run("deleting the CR removes the Deployment", func(t *testing.T) {
		kubectl(t, "delete", "-n", ns, "memcached", "memcached-sample", "--wait=true", "--timeout=60s")
		eventually(t, 60*time.Second, "Deployment garbage collected", func() error {
			out, err := kubectlOut(testCluster.KubeconfigPath, "get", "deployment", "memcached-sample", "-n", ns, "--ignore-not-found", "-o", "name")
			if err != nil {
				return err
			}
			if strings.TrimSpace(out) != "" {
				return fmt.Errorf("still there: %s", out)
			}
			return nil
		})
	})
}

// Admission rejects every bad size with a message naming spec.size, and
// nothing in the cluster changes.
func TestMemcachedInvalidSizeRejected(t *testing.T) {
	ns := namespace(t, "memcached-invalid")
	seed, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	kubectl(t, "apply", "-n", ns, "-f", sample)
	// The operator's status writes change the resourceVersion; a rejected
	// apply must change neither the spec nor the generation.
	before := kubectl(t, "get", "memcached", "memcached-sample", "-n", ns, "-o", "jsonpath={.metadata.generation} {.spec}")

	for name, spec := range map[string]string{
		"zero":    "  size: 0\n",
		"eleven":  "  size: 11\n",
		"string":  "  size: \"three\"\n",
		"missing": "  image: \"memcached:1.6\"\n",
	} {
		t.Run(name, func(t *testing.T) {
			for _, crName := range []string{"memcached-sample", "memcached-new"} {
				manifest := strings.Replace(strings.SplitAfter(string(seed), "spec:\n")[0], "memcached-sample", crName, 1) + spec
				out := kubectlFails(t, manifest, "apply", "-n", ns, "-f", "-")
				if !strings.Contains(out, "spec.size") {
					t.Errorf("rejection of %s does not name spec.size:\n%s", crName, out)
				}
			}
		})
	}
	after := kubectl(t, "get", "memcached", "memcached-sample", "-n", ns, "-o", "jsonpath={.metadata.generation} {.spec}")
	if before != after {
		t.Errorf("existing CR changed: %q -> %q", before, after)
	}
	if out := kubectl(t, "get", "memcached,deployments", "-n", ns, "-o", "name"); strings.Contains(out, "memcached-new") {
		t.Errorf("a rejected CR left objects behind:\n%s", out)
	}
}

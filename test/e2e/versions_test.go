package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cuerator/cuerator/schemas"
	"github.com/cuerator/cuerator/test/mount"
	"github.com/cuerator/cuerator/test/versions"
)

// A live kind moves from v1alpha1 to v1beta1 with its CRs in place, the
// way a platform team rolls out new templates: the operator of the old
// templates (Memcached v1alpha1 only) reconciles CRs that a GitOps tool
// applied; it is replaced by the operator of test/versions (v1beta1, which
// the template renders and etcd stores, and v1alpha1, still served). The
// operator installs the CRD with both versions, serves the conversion
// webhook that the real API server calls over TLS on loopback, rewrites
// every CR in v1beta1 and trims storedVersions. Both versions read back
// with kubectl, old manifests still apply, and the children stay.
func TestVersionUpgrade(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "cuerator")
	goBuild(t, "go", "build", "-o", bin, "./cmd/cuerator")
	renamed := renaming{suffix: "versions.test.cuerator.dev"}
	group := renamed.group("cache.example.com")
	crd := "memcacheds." + group
	resource := func(version string) string { return "memcacheds." + version + "." + group }
	t.Cleanup(func() { deleteCRD(t, crd) })
	ns := namespace(t, "versions-upgrade")

	oldDir, newDir := versionModules(t, renamed)

	// v1alpha1 manifests as a Git repository holds them, applied as Flux
	// applies them.
	manifest := func(name string, size int) string {
		return fmt.Sprintf("apiVersion: %s/v1alpha1\nkind: Memcached\nmetadata: {name: %s, namespace: %s}\nspec: {size: %d, image: \"memcached:1.6\"}\n", group, name, ns, size)
	}
	fluxApply := func(doc string) string {
		return kubectlIn(t, doc, "apply", "--server-side", "--field-manager=kustomize-controller", "-f", "-")
	}

	old := startOperator(t, bin, "v1alpha1-operator", "--templates", oldDir, "--watch-namespace", ns)
	fluxApply(manifest("memcached-sample", 3) + "---\n" + manifest("small", 1))
	for _, cr := range []string{"memcached-sample", "small"} {
		kubectl(t, "wait", "-n", ns, "--for=condition=Ready", resource("v1alpha1")+"/"+cr, "--timeout=90s")
		if got := storedAPIVersion(t, group, ns, cr); got != group+"/v1alpha1" && testCluster.EtcdURL != "" {
			t.Fatalf("%s is stored as %s before the upgrade", cr, got)
		}
	}
	before := map[string]deploymentState{}
	for _, cr := range []string{"memcached-sample", "small"} {
		before[cr] = deploymentOf(t, ns, cr)
	}
	old.stop(t)

	webhook := freeAddr(t)
	operator := startOperator(t, bin, "v1beta1-operator", "--templates", newDir, "--watch-namespace", ns,
		"--webhook-bind-address", webhook, "--conversion-webhook-url", "https://"+webhook+"/convert")

	// One CRD, both versions, v1beta1 stored, conversions through the
	// operator's webhook.
	var live struct {
		Spec struct {
			Versions []struct {
				Name            string `json:"name"`
				Served, Storage bool
				Deprecated      bool `json:"deprecated"`
			} `json:"versions"`
			Conversion struct {
				Strategy string `json:"strategy"`
				Webhook  struct {
					ClientConfig struct {
						URL      string `json:"url"`
						CABundle string `json:"caBundle"`
					} `json:"clientConfig"`
				} `json:"webhook"`
			} `json:"conversion"`
		} `json:"spec"`
		Status struct {
			StoredVersions []string `json:"storedVersions"`
		} `json:"status"`
	}
	readCRD := func() {
		if err := json.Unmarshal([]byte(kubectl(t, "get", "crd", crd, "-o", "json")), &live); err != nil {
			t.Fatal(err)
		}
	}
	readCRD()
	if c := live.Spec.Conversion; c.Strategy != "Webhook" || c.Webhook.ClientConfig.URL != "https://"+webhook+"/convert" || c.Webhook.ClientConfig.CABundle == "" {
		t.Errorf("conversion %+v, want the webhook at https://%s/convert with a caBundle", c, webhook)
	}
	var served []string
	for _, v := range live.Spec.Versions {
		served = append(served, fmt.Sprintf("%s served=%v storage=%v deprecated=%v", v.Name, v.Served, v.Storage, v.Deprecated))
	}
	if want := []string{"v1beta1 served=true storage=true deprecated=false", "v1alpha1 served=true storage=false deprecated=true"}; !slices.Equal(served, want) {
		t.Errorf("versions %v, want %v", served, want)
	}

	// Storage migrated by the operator: every CR rewritten in v1beta1,
	// then storedVersions trimmed.
	eventually(t, 2*time.Minute, "status.storedVersions trimmed to [v1beta1]", func() error {
		readCRD()
		if !slices.Equal(live.Status.StoredVersions, []string{"v1beta1"}) {
			return fmt.Errorf("storedVersions %v", live.Status.StoredVersions)
		}
		return nil
	})
	if testCluster.EtcdURL == "" {
		t.Log("an existing cluster: etcd is not read")
	}
	for _, cr := range []string{"memcached-sample", "small"} {
		if got := storedAPIVersion(t, group, ns, cr); got != group+"/v1beta1" && testCluster.EtcdURL != "" {
			t.Errorf("%s is stored as %s after the migration", cr, got)
		}
	}

	// What the operator says it did.
	if log, err := os.ReadFile(operator.logPath); err != nil || !strings.Contains(string(log), crd+": 2 CRs rewritten in v1beta1; status.storedVersions [v1alpha1 v1beta1] trimmed to [v1beta1]") {
		t.Errorf("the operator's log does not report the migration of both CRs: %v\n%s", err, operator.logTail())
	}

	// Both versions read back, with kubectl, each with its own columns;
	// v1alpha1 with its deprecation warning.
	if got := stdout(kubectlStreams(t, "", "get", resource("v1alpha1")+"/memcached-sample", "-n", ns, "-o", "jsonpath={.spec.size}")); got != "3" {
		t.Errorf("v1alpha1 spec.size %q, want 3", got)
	}
	if got := kubectl(t, "get", resource("v1beta1")+"/memcached-sample", "-n", ns, "-o", "jsonpath={.spec.replicas} {.spec.verbose}"); got != "3 false" {
		t.Errorf("v1beta1 spec.replicas, spec.verbose %q, want 3 false", got)
	}
	alphaTable := kubectl(t, "get", resource("v1alpha1"), "-n", ns)
	betaTable := kubectl(t, "get", resource("v1beta1"), "-n", ns)
	if !strings.Contains(alphaTable, "SIZE") || !strings.Contains(alphaTable, "is deprecated; use "+group+"/v1beta1") {
		t.Errorf("kubectl get in v1alpha1:\n%s", alphaTable)
	}
	if !strings.Contains(betaTable, "REPLICAS") || strings.Contains(betaTable, "deprecated") || !strings.Contains(betaTable, "small") {
		t.Errorf("kubectl get in v1beta1:\n%s", betaTable)
	}

	// The old manifests, applied again unchanged, write nothing.
	rv := kubectl(t, "get", resource("v1beta1")+"/memcached-sample", "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}")
	fluxApply(manifest("memcached-sample", 3) + "---\n" + manifest("small", 1))
	if again := kubectl(t, "get", resource("v1beta1")+"/memcached-sample", "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}"); again != rv {
		t.Errorf("re-applying the unchanged v1alpha1 manifest wrote the CR: resourceVersion %s, then %s", rv, again)
	}
	// A change in a v1alpha1 manifest reaches the operator, which reads v1beta1.
	fluxApply(manifest("memcached-sample", 2))
	eventually(t, 90*time.Second, "the Deployment scaled to the v1alpha1 manifest's size", func() error {
		if got := deploymentOf(t, ns, "memcached-sample").Replicas; got != 2 {
			return fmt.Errorf("replicas %d", got)
		}
		return nil
	})
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", resource("v1alpha1")+"/memcached-sample", "--timeout=90s")

	// The children did not change: the same Deployments, spec unchanged
	// but for the size that the manifest changed.
	for cr, was := range before {
		now := deploymentOf(t, ns, cr)
		if cr == "memcached-sample" {
			was.Replicas, was.Generation = 2, now.Generation
		}
		if now.UID != was.UID || now.Generation != was.Generation || now.Replicas != was.Replicas || now.Containers != was.Containers {
			t.Errorf("Deployment %s changed in the upgrade:\n before %+v\n after  %+v", cr, was, now)
		}
	}

	// A field only v1beta1 has: written in v1beta1, kept on a v1alpha1
	// round trip in an annotation, rendered, and not undone by the next
	// apply of the v1alpha1 manifest.
	kubectlIn(t, fmt.Sprintf("apiVersion: %s/v1beta1\nkind: Memcached\nmetadata: {name: small, namespace: %s}\nspec: {verbose: true}\n", group, ns),
		"apply", "--server-side", "--field-manager=team-b", "-f", "-")
	eventually(t, 90*time.Second, "the Deployment of small runs memcached -vv", func() error {
		if got := deploymentOf(t, ns, "small").Containers; !strings.Contains(got, "-vv") {
			return fmt.Errorf("containers %s", got)
		}
		return nil
	})
	if got := stdout(kubectlStreams(t, "", "get", resource("v1alpha1")+"/small", "-n", ns, "-o", `jsonpath={.metadata.annotations.cache\.example\.com/v1beta1-verbose}`)); got != "true" {
		t.Errorf("v1alpha1 small: verbose annotation %q, want true", got)
	}
	fluxApply(manifest("small", 1))
	if got := kubectl(t, "get", resource("v1beta1")+"/small", "-n", ns, "-o", "jsonpath={.spec.verbose}"); got != "true" {
		t.Errorf("after the v1alpha1 manifest's apply, v1beta1 spec.verbose %q, want true", got)
	}

	// The CLI finds nothing left to migrate.
	if run := runCuerator(t, bin, nil, "--templates", newDir, "migrate"); run.code != 0 || !strings.Contains(run.stdout, crd+": every CR is stored in v1beta1") {
		t.Errorf("cuerator migrate: exit %d\n%s%s", run.code, run.stdout, run.stderr)
	}
	// The breaking-change gate: the new templates break nothing of the
	// old; a rollback to the old templates would strand v1beta1, which
	// etcd now holds.
	if run := runCuerator(t, bin, nil, "check", "--templates", newDir, "--against", oldDir); run.code != 0 || !strings.Contains(run.stdout, "no breaking change from "+oldDir) {
		t.Errorf("cuerator check --against the old templates: exit %d\n%s%s", run.code, run.stdout, run.stderr)
	}
	rollback := runCuerator(t, bin, nil, "check", "--templates", oldDir, "--preflight", "-n", ns)
	if want := "would fail: Memcached: CRD " + crd + " lists v1beta1 in status.storedVersions, and the templates drop it"; rollback.code != 1 || !strings.Contains(rollback.stdout, want) {
		t.Errorf("cuerator check --preflight of the old templates: exit %d, want 1 and %q\n%s%s", rollback.code, want, rollback.stdout, rollback.stderr)
	}
	operator.mustRun(t)
}

// deploymentState is what a user compares of a Deployment before and
// after an upgrade.
type deploymentState struct {
	UID        string
	Generation int64
	Replicas   int64
	Containers string
}

func deploymentOf(t *testing.T, ns, name string) deploymentState {
	t.Helper()
	var d struct {
		Metadata struct {
			UID        string `json:"uid"`
			Generation int64  `json:"generation"`
		} `json:"metadata"`
		Spec struct {
			Replicas int64 `json:"replicas"`
			Template struct {
				Spec struct {
					Containers json.RawMessage `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(kubectl(t, "get", "deployment", name, "-n", ns, "-o", "json")), &d); err != nil {
		t.Fatal(err)
	}
	return deploymentState{UID: d.Metadata.UID, Generation: d.Metadata.Generation, Replicas: d.Spec.Replicas, Containers: string(d.Spec.Template.Spec.Containers)}
}

// storedAPIVersion reads a CR's value from etcd, as the API server stored
// it, and returns the apiVersion it is encoded in; "" when the cluster's
// etcd is not known.
func storedAPIVersion(t *testing.T, group, ns, name string) string {
	t.Helper()
	if testCluster.EtcdURL == "" {
		return ""
	}
	key := "/registry/" + group + "/memcacheds/" + ns + "/" + name
	body, _ := json.Marshal(map[string]string{"key": base64.StdEncoding.EncodeToString([]byte(key))})
	resp, err := http.Post(testCluster.EtcdURL+"/v3/kv/range", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("etcd: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		KVs []struct {
			Value []byte `json:"value"`
		} `json:"kvs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.KVs) != 1 {
		t.Fatalf("etcd %s: %d values, %v", key, len(out.KVs), err)
	}
	var stored struct {
		APIVersion string `json:"apiVersion"`
	}
	if err := json.Unmarshal(out.KVs[0].Value, &stored); err != nil {
		t.Fatalf("etcd %s: not JSON: %v: %q", key, err, out.KVs[0].Value)
	}
	return stored.APIVersion
}

// stdout is the standard output of kubectlStreams: a read of a deprecated
// version warns on standard error.
func stdout(out, _ string) string { return out }

// versionModules writes the template modules before and after the version
// change, with Memcached alone (the other kinds are not what the tests
// are about) in the renamed group: schemas/ (v1alpha1) and test/versions
// (v1beta1 and v1alpha1).
func versionModules(t *testing.T, renamed renaming) (oldDir, newDir string) {
	t.Helper()
	oldFiles, err := mount.Files(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	newFiles, err := versions.Files()
	if err != nil {
		t.Fatal(err)
	}
	oldDir, newDir = t.TempDir(), t.TempDir()
	for dir, files := range map[string]map[string][]byte{oldDir: oldFiles, newDir: newFiles} {
		files = maps.Clone(files)
		maps.DeleteFunc(files, func(path string, _ []byte) bool {
			return strings.HasPrefix(path, "webapp/") || strings.HasPrefix(path, "database/")
		})
		if err := mount.Write(dir, renamed.files(t, files)); err != nil {
			t.Fatal(err)
		}
	}
	return oldDir, newDir
}

// Templates that give a live kind a new version, swapped under a running
// operator (--templates followed live): the operator keeps the kind it
// serves, not a new one beside it, and its controller, which reads the
// version it started with, renders each CR through the new template by
// converting it with #Convert. The CRD gains the new version when the
// operator restarts (TestVersionUpgrade); until then nothing is stranded,
// and nothing is installed without its conversions.
func TestVersionChangeLive(t *testing.T) {
	renamed := renaming{suffix: "live-versions.test.cuerator.dev"}
	group := renamed.group("cache.example.com")
	crd := "memcacheds." + group
	t.Cleanup(func() { deleteCRD(t, crd) })
	oldDir, newDir := versionModules(t, renamed)
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(oldDir)); err != nil {
		t.Fatal(err)
	}
	startOperatorFor(t, dir)
	ns := namespace(t, "versions-live")
	cr := fmt.Sprintf("memcacheds.v1alpha1.%s/cache", group)
	kubectlIn(t, fmt.Sprintf("apiVersion: %s/v1alpha1\nkind: Memcached\nmetadata: {name: cache, namespace: %s}\nspec: {size: 2}\n", group, ns), "apply", "--server-side", "-f", "-")
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=90s")
	before := deploymentOf(t, ns, "cache")

	// The new templates arrive, as a ConfigMap's new content does.
	for _, path := range []string{"memcached/api/api.cue", "memcached/memcached.cue"} {
		b, err := os.ReadFile(filepath.Join(newDir, path))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, path), string(b))
	}
	// verbose, which only v1beta1 has, comes through v1alpha1's annotation:
	// the CR renders through the new template once the operator has it.
	kubectl(t, "annotate", "-n", ns, cr, "cache.example.com/v1beta1-verbose=true")
	eventually(t, 90*time.Second, "the Deployment rendered by the v1beta1 template", func() error {
		if got := deploymentOf(t, ns, "cache").Containers; !strings.Contains(got, "-vv") {
			return fmt.Errorf("containers %s", got)
		}
		return nil
	})
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=90s")
	now := deploymentOf(t, ns, "cache")
	if now.UID != before.UID || now.Replicas != 2 {
		t.Errorf("Deployment before %+v, after %+v: want the same one, 2 replicas", before, now)
	}
	if got := kubectl(t, "get", "deployment", "cache", "-n", ns, "-o", "jsonpath={.metadata.ownerReferences[0].apiVersion}"); got != group+"/v1alpha1" {
		t.Errorf("the Deployment's owner is %s, want the version the CRD serves, %s/v1alpha1", got, group)
	}
	// A change through the served version still reaches the Deployment.
	kubectl(t, "patch", "-n", ns, cr, "--type=merge", "-p", `{"spec":{"size":3}}`)
	eventually(t, 90*time.Second, "the Deployment scaled", func() error {
		if got := deploymentOf(t, ns, "cache").Replicas; got != 3 {
			return fmt.Errorf("replicas %d", got)
		}
		return nil
	})
	if got := kubectl(t, "get", "crd", crd, "-o", "jsonpath={.spec.versions[*].name} {.spec.conversion.strategy}"); got != "v1alpha1 None" {
		t.Errorf("CRD versions and conversion %q: the CRD changes when the operator restarts", got)
	}
}

// deleteCRD deletes a test's CRD, waits until it is gone, and refreshes
// kubectl's discovery cache: a stale cache would resolve the short name
// memcached of the tests that follow to this CRD's group.
func deleteCRD(t *testing.T, name string) {
	t.Helper()
	if out, err := kubectlOut(testCluster.KubeconfigPath, "delete", "crd", name, "--ignore-not-found", "--wait", "--timeout=60s"); err != nil {
		t.Logf("deleting CRD %s: %v\n%s", name, err, out)
	}
	if out, err := kubectlOut(testCluster.KubeconfigPath, "api-resources", "-o", "name"); err != nil {
		t.Logf("refreshing kubectl's discovery: %v\n%s", err, out)
	}
}

package convert

import (
	"context"
	"fmt"
	"slices"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/endpoints/discovery"
	clientdiscovery "k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
)

// Migration is what MigrateStorage did to one CRD.
type Migration struct {
	CRD string
	// Storage is the CRD's storage version.
	Storage string
	// StoredBefore are the versions status.storedVersions listed before:
	// the versions objects may have been stored in.
	StoredBefore []string
	// Rewritten is how many CRs were rewritten in Storage.
	Rewritten int
}

// Done reports whether the CRD needed no migration.
func (m *Migration) Done() bool {
	return m.Rewritten == 0 && slices.Equal(m.StoredBefore, []string{m.Storage})
}

func (m *Migration) String() string {
	if m.Done() {
		return fmt.Sprintf("%s: every CR is stored in %s", m.CRD, m.Storage)
	}
	return fmt.Sprintf("%s: %d CRs rewritten in %s; status.storedVersions %v trimmed to [%s]", m.CRD, m.Rewritten, m.Storage, m.StoredBefore, m.Storage)
}

var crdResource = apiextensionsv1.SchemeGroupVersion.WithResource("customresourcedefinitions")

// migratePage is how many CRs one list request returns.
const migratePage = 500

// MigrateStorage brings the CRs of a CRD into its storage version, after a
// change of the storage version left objects stored in an older one: it
// waits until the API server serves the new storage version (its
// discovery's storageVersionHash), rewrites every CR with an empty patch
// (the API server re-encodes the object in the storage version; spec,
// status and generation stay as they are) and then trims
// status.storedVersions to the storage version, so that a later CRD may
// stop serving the old versions. Nothing is trimmed unless every CR was
// rewritten. A CRD whose storedVersions is already the storage version
// alone is left alone.
func MigrateStorage(ctx context.Context, cfg *rest.Config, crdName string) (*Migration, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	crd, err := getCRD(ctx, dyn, crdName)
	if err != nil {
		return nil, err
	}
	m := &Migration{CRD: crdName, StoredBefore: slices.Clone(crd.Status.StoredVersions), Storage: storageOf(crd)}
	if m.Done() {
		return m, nil
	}
	gvr := schema.GroupVersionResource{Group: crd.Spec.Group, Version: m.Storage, Resource: crd.Spec.Names.Plural}
	if err := waitForStorageVersion(ctx, cfg, gvr, crd.Spec.Names.Kind); err != nil {
		return nil, err
	}

	opts := metav1.ListOptions{Limit: migratePage}
	for {
		list, err := dyn.Resource(gvr).List(ctx, opts)
		if err != nil {
			return m, fmt.Errorf("%s: list the CRs: %w", crdName, err)
		}
		for _, cr := range list.Items {
			_, err := dyn.Resource(gvr).Namespace(cr.GetNamespace()).Patch(ctx, cr.GetName(), types.MergePatchType, []byte("{}"), metav1.PatchOptions{FieldManager: "cuerator-migrate"})
			if apierrors.IsNotFound(err) {
				continue // deleted meanwhile
			}
			if err != nil {
				return m, fmt.Errorf("%s: rewrite %s in %s: %w", crdName, objectKey(cr.GetNamespace(), cr.GetName()), m.Storage, err)
			}
			m.Rewritten++
		}
		if opts.Continue = list.GetContinue(); opts.Continue == "" {
			break
		}
	}

	// Every CR is now stored in the storage version: the old versions can
	// leave storedVersions. The update carries the resourceVersion read,
	// so a CRD changed meanwhile is read again.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		crd, err := getCRD(ctx, dyn, crdName)
		if err != nil {
			return err
		}
		if storageOf(crd) != m.Storage {
			return fmt.Errorf("the storage version changed from %s to %s during the migration", m.Storage, storageOf(crd))
		}
		crd.Status.StoredVersions = []string{m.Storage}
		content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(crd)
		if err != nil {
			return err
		}
		_, err = dyn.Resource(crdResource).UpdateStatus(ctx, &unstructured.Unstructured{Object: content}, metav1.UpdateOptions{FieldManager: "cuerator-migrate"})
		return err
	})
	if err != nil {
		return m, fmt.Errorf("%s: trim status.storedVersions to [%s]: %w", crdName, m.Storage, err)
	}
	return m, nil
}

func getCRD(ctx context.Context, dyn dynamic.Interface, name string) (*apiextensionsv1.CustomResourceDefinition, error) {
	u, err := dyn.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("CRD %s: %w", name, err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, crd); err != nil {
		return nil, fmt.Errorf("CRD %s: %w", name, err)
	}
	return crd, nil
}

// storageOf is the name of crd's storage version.
func storageOf(crd *apiextensionsv1.CustomResourceDefinition) string {
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			return v.Name
		}
	}
	return ""
}

// waitForStorageVersion waits until the API server's discovery gives gvr
// the storage version hash of its version: the API server has taken the
// CRD's new storage version in, and a write is encoded in it.
func waitForStorageVersion(ctx context.Context, cfg *rest.Config, gvr schema.GroupVersionResource, kind string) error {
	dc, err := clientdiscovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	want := discovery.StorageVersionHash(gvr.Group, gvr.Version, kind)
	var got string
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		list, err := dc.ServerResourcesForGroupVersion(gvr.GroupVersion().String())
		if err != nil {
			return false, nil // not served yet
		}
		for _, r := range list.APIResources {
			if r.Name == gvr.Resource {
				got = r.StorageVersionHash
				return got == want, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("%s: the API server does not store %s yet (storageVersionHash %q, want %q): %w", gvr.GroupResource(), gvr.Version, got, want, err)
	}
	return nil
}

func objectKey(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

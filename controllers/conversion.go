package controllers

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/cuerator/cuerator/convert"
	"github.com/cuerator/cuerator/crdgen"
	"github.com/cuerator/cuerator/render"
)

// ConversionOptions configure the conversion webhook, which the operator
// serves when a kind of its templates has several versions: the API server
// sends it every CR it must convert between them.
type ConversionOptions struct {
	// BindAddress is the webhook's host:port (default ":9443").
	BindAddress string
	// CertDir, unless empty, holds the serving certificate, tls.crt and
	// tls.key, as a Secret that cert-manager renews is mounted, and
	// ca.crt, the CA the API server is given when the operator installs
	// the CRDs; they are reloaded when they change. Empty: the operator
	// makes a self-signed certificate at start, for the host of URL or the
	// DNS names of Service.
	CertDir string
	// URL is where the API server reaches the webhook
	// (https://127.0.0.1:9443/convert), for the CRDs the operator
	// installs itself (Options.TemplatesDir).
	URL string
	// Service, instead of URL, is the Service in front of the webhook, as
	// namespace/name or namespace/name:port (port 443 by default).
	Service string
}

// conversionFieldManager owns spec.conversion of the CRDs the operator
// installs, apart from the rest of the CRD (field manager cuerator): the
// webhook's address and CA are this process's, not the templates', and an
// apply of the templates' CRD leaves them as they are.
const conversionFieldManager = "cuerator-conversion"

// selfSignedValidity is how long a self-signed serving certificate lasts;
// the operator makes a new one at every start.
const selfSignedValidity = 365 * 24 * time.Hour

// conversion is the operator's conversion webhook, for the kinds of lib
// that have several versions.
type conversion struct {
	kinds  []*render.Kind
	direct client.Client
	cfg    *rest.Config
	// clientConfig is what the CRDs the operator installs point at; nil
	// when it installs none.
	clientConfig *apiextensionsv1.WebhookClientConfig
}

// setupConversion adds the conversion webhook to mgr when a kind of lib
// has several versions. When the operator installs its CRDs, it points
// the conversion of those that exist already at the webhook, before Setup
// applies the templates' CRDs (so an existing CRD gains its new versions
// with conversions in place), and adds the storage migration.
func setupConversion(mgr ctrl.Manager, lib *render.Library, opts ManagerOptions) (*conversion, error) {
	c := &conversion{cfg: mgr.GetConfig()}
	for _, k := range lib.Kinds() {
		if k.MultiVersion() {
			c.kinds = append(c.kinds, k)
		}
	}
	if len(c.kinds) == 0 {
		return c, nil
	}
	co := opts.Conversion
	if co.BindAddress == "" {
		co.BindAddress = ":9443"
	}
	host, portText, err := net.SplitHostPort(co.BindAddress)
	port, perr := strconv.Atoi(portText)
	if err != nil || perr != nil {
		return nil, fmt.Errorf("conversion webhook address %q: want host:port", co.BindAddress)
	}
	installs := opts.TemplatesDir != ""
	var hosts []string
	if installs {
		var err error
		if c.clientConfig, hosts, err = webhookClientConfig(co, c.kinds); err != nil {
			return nil, err
		}
	}
	wo := webhook.Options{Host: host, Port: port}
	if co.CertDir != "" {
		wo.CertDir = co.CertDir
		if installs {
			ca, err := os.ReadFile(filepath.Join(co.CertDir, "ca.crt"))
			if err != nil {
				return nil, fmt.Errorf("conversion webhook: the CA for the CRDs' caBundle: %w", err)
			}
			c.clientConfig.CABundle = ca
		}
	} else {
		if len(hosts) == 0 {
			hosts = []string{"localhost", "127.0.0.1"}
		}
		cert, err := convert.SelfSigned(hosts, selfSignedValidity)
		if err != nil {
			return nil, fmt.Errorf("conversion webhook: %w", err)
		}
		wo.TLSOpts = []func(*tls.Config){func(cfg *tls.Config) {
			cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert.Serving, nil }
		}}
		if installs {
			c.clientConfig.CABundle = cert.CAPEM
		}
	}
	server := webhook.NewServer(wo)
	server.Register(crdgen.WebhookPath, &convert.Handler{Library: lib, Log: mgr.GetLogger().WithName("conversion")})
	if err := mgr.Add(server); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("conversion-webhook", server.StartedChecker()); err != nil {
		return nil, err
	}
	if !installs {
		return c, nil
	}

	if c.direct, err = client.New(mgr.GetConfig(), client.Options{}); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.pointConversions(ctx, true); err != nil {
		return nil, err
	}
	return c, mgr.Add(&storageMigration{cfg: mgr.GetConfig(), kinds: c.kinds, log: mgr.GetLogger().WithName("storage-migration")})
}

// crdsInstalled points the conversion of CRDs that Setup has just created
// at the webhook.
func (c *conversion) crdsInstalled() error {
	if c.clientConfig == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return c.pointConversions(ctx, false)
}

// pointConversions applies spec.conversion of each kind's CRD, as field
// manager cuerator-conversion; with existingOnly, a CRD not yet created is
// skipped.
func (c *conversion) pointConversions(ctx context.Context, existingOnly bool) error {
	for _, k := range c.kinds {
		name := k.Plural + "." + k.GVK.Group
		conv, err := runtime.DefaultUnstructuredConverter.ToUnstructured(crdgen.Conversion(*c.clientConfig))
		if err != nil {
			return err
		}
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": apiextensionsv1.SchemeGroupVersion.String(),
			"kind":       "CustomResourceDefinition",
			"metadata":   map[string]any{"name": name},
			"spec":       map[string]any{"conversion": conv},
		}}
		if existingOnly {
			live := &unstructured.Unstructured{}
			live.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
			if err := c.direct.Get(ctx, client.ObjectKey{Name: name}, live); apierrors.IsNotFound(err) {
				continue
			} else if err != nil {
				return fmt.Errorf("CRD %s: %w", name, err)
			}
		}
		if err := c.direct.Patch(ctx, obj, client.Apply, client.FieldOwner(conversionFieldManager), client.ForceOwnership); err != nil {
			return fmt.Errorf("CRD %s: point its conversion at the webhook: %w", name, err)
		}
	}
	return nil
}

// webhookClientConfig is where the CRDs the operator installs send their
// conversions, and the hosts a self-signed certificate is for.
func webhookClientConfig(co ConversionOptions, kinds []*render.Kind) (*apiextensionsv1.WebhookClientConfig, []string, error) {
	switch {
	case co.URL != "" && co.Service != "":
		return nil, nil, errors.New("conversion webhook: give its URL or its Service, not both")
	case co.URL != "":
		u, err := url.Parse(co.URL)
		if err != nil || u.Scheme != "https" || u.Hostname() == "" {
			return nil, nil, fmt.Errorf("conversion webhook URL %q: want https://host:port%s", co.URL, crdgen.WebhookPath)
		}
		if u.Path == "" {
			u.Path = crdgen.WebhookPath
		}
		s := u.String()
		return &apiextensionsv1.WebhookClientConfig{URL: &s}, []string{u.Hostname()}, nil
	case co.Service != "":
		ns, name, ok := strings.Cut(co.Service, "/")
		port := int32(443)
		if n, p, hasPort := strings.Cut(name, ":"); hasPort {
			v, err := strconv.ParseInt(p, 10, 32)
			if err != nil {
				return nil, nil, fmt.Errorf("conversion webhook Service %q: port %q", co.Service, p)
			}
			name, port = n, int32(v)
		}
		if !ok || ns == "" || name == "" {
			return nil, nil, fmt.Errorf("conversion webhook Service %q: want namespace/name[:port]", co.Service)
		}
		path := crdgen.WebhookPath
		return &apiextensionsv1.WebhookClientConfig{Service: &apiextensionsv1.ServiceReference{Namespace: ns, Name: name, Path: &path, Port: &port}},
			[]string{name + "." + ns + ".svc", name + "." + ns + ".svc.cluster.local"}, nil
	}
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = fmt.Sprintf("%s (%d versions)", k.GVK.Kind, len(k.Versions))
	}
	return nil, nil, fmt.Errorf("%s: the API server converts between versions through the operator's webhook; give the address it reaches it at (--conversion-webhook-url https://host:port%s, or --conversion-webhook-service namespace/name)",
		strings.Join(names, ", "), crdgen.WebhookPath)
}

// storageMigration rewrites the CRs of each kind of several versions in
// its storage version and trims the CRD's status.storedVersions, once,
// when this replica leads (convert.MigrateStorage). It retries until it
// succeeds, so a CRD's storedVersions never loses a version some CR is
// still stored in.
type storageMigration struct {
	cfg   *rest.Config
	kinds []*render.Kind
	log   logr.Logger
}

var _ manager.LeaderElectionRunnable = (*storageMigration)(nil)

func (*storageMigration) NeedLeaderElection() bool { return true }

func (m *storageMigration) Start(ctx context.Context) error {
	log := m.log
	for _, k := range m.kinds {
		name := k.Plural + "." + k.GVK.Group
		backoff := wait.Backoff{Duration: time.Second, Factor: 2, Steps: 1 << 30, Cap: time.Minute}
		_ = wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
			done, err := convert.MigrateStorage(ctx, m.cfg, name)
			if err != nil {
				log.Error(err, "storage migration failed; retrying", "crd", name)
				return false, nil
			}
			log.Info(done.String(), "crd", name, "rewritten", done.Rewritten, "storedVersions", done.StoredBefore)
			return true, nil
		})
	}
	return nil
}

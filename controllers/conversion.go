package controllers

import (
	"bytes"
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
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
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
	// The serving certificate comes from one of three places:
	//
	// CertDir, a directory of tls.crt and tls.key (and ca.crt, the CA the
	// CRDs are given when the operator installs them), as a Secret that
	// cert-manager renews is mounted; they are reloaded when they change.
	CertDir string
	// CertSecret, namespace/name, a Secret the operator keeps itself: the
	// first replica creates it with a CA of its own and a serving
	// certificate for the DNS names of Service, every replica serves what
	// it holds, the serving certificate is renewed before it expires (the
	// CA stays), and the CRDs of the kinds of several versions get the CA
	// as their caBundle.
	CertSecret string
	// With neither, the operator makes a self-signed certificate at start,
	// for the host of URL (or localhost): for an operator beside the API
	// server, with --templates.
	//
	// URL is where the API server reaches the webhook
	// (https://127.0.0.1:9443/convert), for the CRDs the operator
	// installs itself (Options.TemplatesDir).
	URL string
	// Service, instead of URL, is the Service in front of the webhook, as
	// namespace/name or namespace/name:port (port 443 by default).
	Service string
}

// conversionFieldManager owns spec.conversion of the CRDs the operator
// installs (or, of those it does not, their caBundle), apart from the rest
// of the CRD (field manager cuerator, or whoever applies deploy/crds): the
// webhook's address and CA are this process's, not the templates', and an
// apply of the templates' CRD leaves them as they are.
const conversionFieldManager = "cuerator-conversion"

// selfSignedValidity is how long a self-signed serving certificate lasts;
// the operator makes a new one at every start.
const selfSignedValidity = 365 * 24 * time.Hour

// certCheckInterval is how often a replica reads the certificate Secret
// again: to renew the serving certificate in time, and to serve the one
// another replica renewed.
const certCheckInterval = time.Hour

// conversion is the operator's conversion webhook, for the kinds of lib
// that have several versions.
type conversion struct {
	kinds  []*render.Kind
	direct client.Client
	// installs is set when the operator installs the CRDs (TemplatesDir):
	// it then sets their whole spec.conversion, else only the caBundle of
	// a CertSecret's CA.
	installs bool
	// clientConfig is what the CRDs point at: the address when the
	// operator installs them, and the CA when it knows it.
	clientConfig apiextensionsv1.WebhookClientConfig
	// serving is the certificate served, swapped when a CertSecret's is
	// renewed.
	serving atomic.Pointer[tls.Certificate]
	secret  *convert.CertSecret
	log     logr.Logger
}

// setupConversion adds the conversion webhook to mgr when a kind of lib
// has several versions. When the operator installs its CRDs, it points
// the conversion of those that exist already at the webhook, before Setup
// applies the templates' CRDs (so an existing CRD gains its new versions
// with conversions in place), and adds the storage migration.
func setupConversion(mgr ctrl.Manager, lib *render.Library, opts ManagerOptions) (*conversion, error) {
	c := &conversion{installs: opts.TemplatesDir != "", log: mgr.GetLogger().WithName("conversion")}
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
	address, hosts, err := webhookAddress(co)
	if err != nil {
		return nil, err
	}
	if address == nil && c.installs {
		return nil, fmt.Errorf("%s: the API server converts between versions through the operator's webhook; give the address it reaches it at (--conversion-webhook-url https://host:port%s, or --conversion-webhook-service namespace/name)",
			multiVersionNames(c.kinds), crdgen.WebhookPath)
	}
	if address != nil {
		c.clientConfig = *address
	}
	if c.direct, err = client.New(mgr.GetConfig(), client.Options{}); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	wo := webhook.Options{Host: host, Port: port}
	switch {
	case co.CertDir != "" && co.CertSecret != "":
		return nil, errors.New("conversion webhook: give its certificate's directory or its Secret, not both")
	case co.CertDir != "":
		wo.CertDir = co.CertDir
		if c.installs {
			ca, err := os.ReadFile(filepath.Join(co.CertDir, "ca.crt"))
			if err != nil {
				return nil, fmt.Errorf("conversion webhook: the CA for the CRDs' caBundle: %w", err)
			}
			c.clientConfig.CABundle = ca
		}
	case co.CertSecret != "":
		ns, name, ok := strings.Cut(co.CertSecret, "/")
		if !ok || ns == "" || name == "" {
			return nil, fmt.Errorf("conversion webhook certificate Secret %q: want namespace/name", co.CertSecret)
		}
		if co.Service == "" {
			return nil, errors.New("conversion webhook: a certificate Secret is for the DNS names of its Service: give --conversion-webhook-service namespace/name")
		}
		c.secret = &convert.CertSecret{Client: c.direct, Key: types.NamespacedName{Namespace: ns, Name: name}, Hosts: hosts}
		cert, err := c.secret.Ensure(ctx)
		if err != nil {
			return nil, err
		}
		c.serving.Store(&cert.Serving)
		c.clientConfig.CABundle = cert.CAPEM
		if err := mgr.Add(everyReplica(c.renew)); err != nil {
			return nil, err
		}
	default:
		if len(hosts) == 0 {
			hosts = []string{"localhost", "127.0.0.1"}
		}
		if !c.installs {
			c.log.Info("serving the conversion webhook with a self-signed certificate that no CRD trusts: give --webhook-cert-secret (deploy/conversion) or --webhook-cert-dir with a CA the CRDs carry")
		}
		cert, err := convert.SelfSigned(hosts, selfSignedValidity)
		if err != nil {
			return nil, fmt.Errorf("conversion webhook: %w", err)
		}
		c.serving.Store(&cert.Serving)
		c.clientConfig.CABundle = cert.CAPEM
	}
	if c.serving.Load() != nil {
		wo.TLSOpts = []func(*tls.Config){func(cfg *tls.Config) {
			cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.serving.Load(), nil }
		}}
	}
	server := webhook.NewServer(wo)
	server.Register(crdgen.WebhookPath, &convert.Handler{Library: lib, Log: c.log})
	if err := mgr.Add(server); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("conversion-webhook", server.StartedChecker()); err != nil {
		return nil, err
	}
	if !c.installs {
		// deploy/crds point at the Service; the operator gives them the CA
		// it keeps, when it keeps one.
		if c.secret != nil {
			return c, c.pointConversions(ctx, true)
		}
		return c, nil
	}
	if err := c.pointConversions(ctx, true); err != nil {
		return nil, err
	}
	return c, mgr.Add(&storageMigration{cfg: mgr.GetConfig(), kinds: c.kinds, log: mgr.GetLogger().WithName("storage-migration")})
}

// everyReplica runs f on every replica, leader or not: each serves the
// webhook behind the Service.
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }

// renew reads the certificate Secret every certCheckInterval, renewing
// the serving certificate when it is due, and serves what it holds; a new
// CA (the Secret was deleted) goes into the CRDs.
func (c *conversion) renew(ctx context.Context) error {
	ticker := time.NewTicker(certCheckInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		cert, err := c.secret.Ensure(ctx)
		if err != nil {
			c.log.Error(err, "webhook certificate not renewed; the current one is still served")
			continue
		}
		c.serving.Store(&cert.Serving)
		if !bytes.Equal(cert.CAPEM, c.clientConfig.CABundle) {
			c.clientConfig.CABundle = cert.CAPEM
			if err := c.pointConversions(ctx, true); err != nil {
				c.log.Error(err, "the CRDs keep the old CA")
			}
		}
	}
}

// crdsInstalled points the conversion of CRDs that Setup has just created
// at the webhook.
func (c *conversion) crdsInstalled() error {
	if !c.installs || len(c.kinds) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return c.pointConversions(ctx, false)
}

// pointConversions applies spec.conversion of each kind's CRD, as field
// manager cuerator-conversion: all of it when the operator installs the
// CRDs, else the caBundle alone. With existingOnly, a CRD not yet created
// is skipped.
func (c *conversion) pointConversions(ctx context.Context, existingOnly bool) error {
	for _, k := range c.kinds {
		name := k.Plural + "." + k.GVK.Group
		conv, err := runtime.DefaultUnstructuredConverter.ToUnstructured(crdgen.Conversion(c.clientConfig))
		if err != nil {
			return err
		}
		if !c.installs {
			conv = map[string]any{"webhook": map[string]any{"clientConfig": map[string]any{"caBundle": c.clientConfig.CABundle}}}
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
				if !c.installs {
					c.log.Info("no CRD to give the webhook's CA: apply deploy/crds", "crd", name)
				}
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

// webhookAddress is where the CRDs send their conversions, given as a
// URL or a Service (nil for neither), and the hosts the serving
// certificate is for.
func webhookAddress(co ConversionOptions) (*apiextensionsv1.WebhookClientConfig, []string, error) {
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
		cc, err := crdgen.ServiceWebhook(co.Service)
		if err != nil {
			return nil, nil, err
		}
		svc := cc.Service.Name + "." + cc.Service.Namespace + ".svc"
		return &cc, []string{svc, svc + ".cluster.local"}, nil
	}
	return nil, nil, nil
}

func multiVersionNames(kinds []*render.Kind) string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = fmt.Sprintf("%s (%d versions)", k.GVK.Kind, len(k.Versions))
	}
	return strings.Join(names, ", ")
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

package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// A WebApp whose TLS names an issuer composes cert-manager: it gets a
// Certificate for its domain, issued into the Secret its Ingress serves,
// and reports cert-manager's verdict in status.certificate. Without
// cert-manager's CRD the Certificate cannot be applied and the WebApp says
// so; once the CRD is served, the same WebApp gets its Certificate. The
// test cluster runs no cert-manager: unless it serves Certificates, the
// test installs a stand-in for their CRD (testdata/certificates-crd.yaml,
// a strict schema of the fields involved), and plays cert-manager's part by
// writing the Certificate's status.
func TestWebAppCertManager(t *testing.T) {
	const crd = "crd/certificates.cert-manager.io"
	ns := namespace(t, "webapp-cert-manager")
	const cr = "webapp/shop"
	kubectlIn(t, `apiVersion: apps.example.com/v1alpha1
kind: WebApp
metadata:
  name: shop
spec:
  image: nginx:alpine
  domain: shop.example.com
  tls:
    secretName: shop-example-com-tls
    issuer:
      name: letsencrypt
`, "apply", "-n", ns, "-f", "-")

	if _, err := kubectlOut(testCluster.KubeconfigPath, "get", crd); err != nil {
		// cert-manager is not installed: the WebApp names what is missing.
		eventually(t, 60*time.Second, "the WebApp reports the Certificate it cannot apply", func() error {
			msg, err := kubectlOut(testCluster.KubeconfigPath, "get", "-n", ns, cr, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}: {.status.conditions[?(@.type=="Ready")].message}`)
			if err != nil {
				return fmt.Errorf("%v: %s", err, msg)
			}
			if !strings.HasPrefix(msg, "False: ") || !strings.Contains(msg, "Certificate") {
				return fmt.Errorf("Ready %q", msg)
			}
			return nil
		})
		manifest, err := os.ReadFile("testdata/certificates-crd.yaml")
		if err != nil {
			t.Fatal(err)
		}
		kubectlIn(t, string(manifest), "create", "-f", "-")
		// Gone before the next test: a kind that stops being served while
		// another starts to be is not what that test is about.
		t.Cleanup(func() { _, _ = kubectlOut(testCluster.KubeconfigPath, "delete", crd, "--wait=true", "--timeout=60s") })
		kubectl(t, "wait", "--for=condition=Established", crd, "--timeout=60s")
	}

	eventually(t, 90*time.Second, "Certificate shop created", func() error {
		if !childExists(ns, "certificate", "shop") {
			return fmt.Errorf("no Certificate shop")
		}
		return nil
	})
	uid := crUID(t, ns, cr)
	cert := getObject(t, ns, "certificate", "shop")
	if cert.field("secretName") != "shop-example-com-tls" || cert.field("dnsNames.0") != "shop.example.com" ||
		cert.field("issuerRef.name") != "letsencrypt" || cert.field("issuerRef.kind") != "ClusterIssuer" || cert.field("issuerRef.group") != "cert-manager.io" {
		t.Errorf("Certificate spec: %v", cert.Spec)
	}
	if !cert.controlledBy(uid) {
		t.Errorf("the Certificate is not controlled by the WebApp: %+v", cert.Metadata.OwnerReferences)
	}
	ing := getObject(t, ns, "ingress", "shop")
	if ing.field("tls.0.secretName") != "shop-example-com-tls" || ing.field("tls.0.hosts.0") != "shop.example.com" {
		t.Errorf("Ingress tls: %v", ing.field("tls"))
	}
	if _, ok := ing.Metadata.Annotations["cert-manager.io/cluster-issuer"]; ok {
		t.Error("the Ingress asks cert-manager's ingress-shim for a second Certificate")
	}
	waitForStatus(t, ns, cr, "certificate.ready", "false")
	waitForStatus(t, ns, cr, "url", "https://shop.example.com")

	// cert-manager issues it.
	kubectl(t, "patch", "-n", ns, "certificate/shop", "--subresource=status", "--type=merge", "-p",
		`{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Ready","message":"Certificate is up to date and has not expired"}]}}`)
	waitForStatus(t, ns, cr, "certificate.ready", "true")
	waitForStatus(t, ns, cr, "certificate.message", "Certificate is up to date and has not expired")
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", cr, "--timeout=60s")

	// Without the issuer, the Secret is the user's again: the Certificate
	// goes, the Ingress still serves the Secret.
	kubectl(t, "patch", "-n", ns, cr, "--type=json", "-p", `[{"op":"remove","path":"/spec/tls/issuer"}]`)
	eventually(t, 60*time.Second, "Certificate shop pruned", func() error {
		if childExists(ns, "certificate", "shop") {
			return fmt.Errorf("Certificate shop is still there")
		}
		return nil
	})
	if s := getObject(t, ns, "ingress", "shop").field("tls.0.secretName"); s != "shop-example-com-tls" {
		t.Errorf("Ingress tls secretName %v after the issuer went", s)
	}
	waitForStatus(t, ns, cr, "certificate", "")
}

package crdgen

import (
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/cuerator/cuerator/render"
	"github.com/cuerator/cuerator/test/versions"
)

func TestCRDOfSeveralVersions(t *testing.T) {
	fsys, err := versions.Module()
	if err != nil {
		t.Fatal(err)
	}
	lib, err := render.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	var kind *render.Kind
	for _, k := range lib.Kinds() {
		if k.GVK.Kind == "Memcached" {
			kind = k
		}
	}
	crd, err := Generate(kind)
	if err != nil {
		t.Fatal(err)
	}
	if len(crd.Spec.Versions) != 2 {
		t.Fatalf("%d versions", len(crd.Spec.Versions))
	}
	beta, alpha := crd.Spec.Versions[0], crd.Spec.Versions[1]
	if beta.Name != "v1beta1" || !beta.Served || !beta.Storage || beta.Deprecated {
		t.Errorf("v1beta1: served %v storage %v deprecated %v", beta.Served, beta.Storage, beta.Deprecated)
	}
	if alpha.Name != "v1alpha1" || !alpha.Served || alpha.Storage || !alpha.Deprecated || alpha.DeprecationWarning == nil ||
		!strings.HasPrefix(*alpha.DeprecationWarning, "cache.example.com/v1alpha1 Memcached is deprecated") {
		t.Errorf("v1alpha1: served %v storage %v deprecated %v warning %v", alpha.Served, alpha.Storage, alpha.Deprecated, alpha.DeprecationWarning)
	}
	if beta.AdditionalPrinterColumns[0].JSONPath != ".spec.replicas" || alpha.AdditionalPrinterColumns[0].JSONPath != ".spec.size" {
		t.Errorf("columns: v1beta1 %v, v1alpha1 %v", beta.AdditionalPrinterColumns[0], alpha.AdditionalPrinterColumns[0])
	}
	betaSpec := beta.Schema.OpenAPIV3Schema.Properties["spec"]
	alphaSpec := alpha.Schema.OpenAPIV3Schema.Properties["spec"]
	if _, ok := betaSpec.Properties["replicas"]; !ok || string(betaSpec.Properties["verbose"].Default.Raw) != "false" {
		t.Errorf("v1beta1 spec %v", betaSpec.Properties)
	}
	if size, ok := alphaSpec.Properties["size"]; !ok || *size.Maximum != 10 || len(alphaSpec.Properties) != 2 {
		t.Errorf("v1alpha1 spec %v", alphaSpec.Properties)
	}
	for _, v := range crd.Spec.Versions {
		if len(v.Schema.OpenAPIV3Schema.XValidations) == 0 {
			t.Errorf("%s: no #Name rules at the root", v.Name)
		}
	}
	if crd.Spec.Conversion != nil {
		t.Errorf("conversion %v: the operator sets it", crd.Spec.Conversion)
	}

	url := "https://127.0.0.1:9443" + WebhookPath
	if err := WithConversion(crd, apiextensionsv1.WebhookClientConfig{URL: &url, CABundle: []byte("ca")}); err != nil {
		t.Fatal(err)
	}
	if c := crd.Spec.Conversion; c.Strategy != apiextensionsv1.WebhookConverter || *c.Webhook.ClientConfig.URL != url || c.Webhook.ConversionReviewVersions[0] != "v1" {
		t.Errorf("conversion %+v", c)
	}
	if err := WithConversion(crd, apiextensionsv1.WebhookClientConfig{}); err == nil || !strings.Contains(err.Error(), "exactly one of url or service is required") {
		t.Errorf("a webhook without an address: %v", err)
	}
}

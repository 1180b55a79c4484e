package crdgen

import (
	"fmt"
	"strconv"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// WebhookPath is the path at which the operator serves conversions.
const WebhookPath = "/convert"

// Conversion is the spec.conversion of a kind of several versions: the
// API server sends ConversionReviews (v1) to the webhook at clientConfig,
// the operator, which converts through the kind's #Convert.
func Conversion(clientConfig apiextensionsv1.WebhookClientConfig) *apiextensionsv1.CustomResourceConversion {
	return &apiextensionsv1.CustomResourceConversion{
		Strategy: apiextensionsv1.WebhookConverter,
		Webhook: &apiextensionsv1.WebhookConversion{
			ClientConfig:             clientConfig.DeepCopy(),
			ConversionReviewVersions: []string{"v1"},
		},
	}
}

// WithConversion sets the conversion of crd, when it has several versions,
// to the webhook at clientConfig, and checks the result as the API server
// would. A CRD of one version is left as it is: it needs no conversion.
func WithConversion(crd *apiextensionsv1.CustomResourceDefinition, clientConfig apiextensionsv1.WebhookClientConfig) error {
	if len(crd.Spec.Versions) < 2 {
		return nil
	}
	crd.Spec.Conversion = Conversion(clientConfig)
	return validateCRD(crd)
}

// DeployedWebhookService is the Service in front of the conversion webhook
// of the operator that deploy/ installs (deploy/conversion), which the
// CRDs of deploy/crds point at.
const DeployedWebhookService = "cuerator-system/cuerator-webhook-service"

// ServiceWebhook is the client config of a conversion webhook behind the
// Service ref, namespace/name or namespace/name:port (443 by default), at
// WebhookPath.
func ServiceWebhook(ref string) (apiextensionsv1.WebhookClientConfig, error) {
	ns, name, ok := strings.Cut(ref, "/")
	port := int32(443)
	if n, p, hasPort := strings.Cut(name, ":"); hasPort {
		v, err := strconv.ParseInt(p, 10, 32)
		if err != nil || v < 1 || v > 65535 {
			return apiextensionsv1.WebhookClientConfig{}, fmt.Errorf("conversion webhook Service %q: port %q", ref, p)
		}
		name, port = n, int32(v)
	}
	if !ok || ns == "" || name == "" {
		return apiextensionsv1.WebhookClientConfig{}, fmt.Errorf("conversion webhook Service %q: want namespace/name[:port]", ref)
	}
	path := WebhookPath
	return apiextensionsv1.WebhookClientConfig{Service: &apiextensionsv1.ServiceReference{Namespace: ns, Name: name, Path: &path, Port: &port}}, nil
}

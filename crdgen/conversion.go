package crdgen

import (
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

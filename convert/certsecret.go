package convert

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The keys of the certificate Secret: the serving pair as a
// kubernetes.io/tls Secret holds it, and the CA that signs it.
const (
	SecretCACert = "ca.crt"
	SecretCAKey  = "ca.key"
)

// Validity of what CertSecret makes: the CA outlives many serving
// certificates, so the CRDs' caBundle stays the same when the serving
// certificate is renewed.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	certValidity = 365 * 24 * time.Hour
	// RenewBefore is how long before it expires a serving certificate is
	// renewed.
	RenewBefore = 30 * 24 * time.Hour
)

// CertSecret keeps the webhook's CA and serving certificate in a Secret of
// the operator's namespace: every replica behind the webhook's Service
// serves the same certificate, and the CRDs trust one CA.
type CertSecret struct {
	Client client.Client
	Key    types.NamespacedName
	// Hosts are the names the serving certificate is for: the Service's
	// DNS names, which the API server checks.
	Hosts []string
}

// Ensure returns the certificate of the Secret, having created the Secret
// if there is none and renewed its serving certificate (with the same CA)
// if it expires within RenewBefore or does not cover Hosts. Replicas that
// race to create or renew it all end up with the one that was written.
func (s *CertSecret) Ensure(ctx context.Context) (*Certificate, error) {
	for attempt := 0; attempt < 5; attempt++ {
		secret := &corev1.Secret{}
		err := s.Client.Get(ctx, s.Key, secret)
		if apierrors.IsNotFound(err) {
			secret, err = s.create(ctx)
			if apierrors.IsAlreadyExists(err) {
				continue
			}
		}
		if err != nil {
			return nil, fmt.Errorf("webhook certificate Secret %s: %w", s.Key, err)
		}
		ca, cert, err := parseSecret(secret)
		if err != nil {
			return nil, fmt.Errorf("webhook certificate Secret %s: %w", s.Key, err)
		}
		if covers(cert.Serving.Leaf, s.Hosts, RenewBefore) {
			return cert, nil
		}
		renewed, err := ca.Issue(s.Hosts, certValidity)
		if err != nil {
			return nil, err
		}
		if err := fill(secret, ca, renewed); err != nil {
			return nil, err
		}
		if err := s.Client.Update(ctx, secret); apierrors.IsConflict(err) {
			continue // another replica renewed it: read that one
		} else if err != nil {
			return nil, fmt.Errorf("webhook certificate Secret %s: renew: %w", s.Key, err)
		}
		return renewed, nil
	}
	return nil, fmt.Errorf("webhook certificate Secret %s: changed by others on every attempt", s.Key)
}

// Read returns the certificate the Secret holds, as it is.
func (s *CertSecret) Read(ctx context.Context) (*Certificate, error) {
	secret := &corev1.Secret{}
	if err := s.Client.Get(ctx, s.Key, secret); err != nil {
		return nil, fmt.Errorf("webhook certificate Secret %s: %w", s.Key, err)
	}
	_, cert, err := parseSecret(secret)
	if err != nil {
		return nil, fmt.Errorf("webhook certificate Secret %s: %w", s.Key, err)
	}
	return cert, nil
}

func (s *CertSecret) create(ctx context.Context) (*corev1.Secret, error) {
	ca, err := NewCA(caValidity)
	if err != nil {
		return nil, err
	}
	cert, err := ca.Issue(s.Hosts, certValidity)
	if err != nil {
		return nil, err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: s.Key.Name, Namespace: s.Key.Namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "cuerator"}},
		Type:       corev1.SecretTypeTLS,
	}
	if err := fill(secret, ca, cert); err != nil {
		return nil, err
	}
	if err := s.Client.Create(ctx, secret); err != nil {
		return nil, err
	}
	return secret, nil
}

func fill(secret *corev1.Secret, ca *CA, cert *Certificate) error {
	caKey, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return err
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.Serving.PrivateKey)
	if err != nil {
		return err
	}
	secret.Data = map[string][]byte{
		SecretCACert:            ca.PEM,
		SecretCAKey:             pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: caKey}),
		corev1.TLSCertKey:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Serving.Certificate[0]}),
		corev1.TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}),
	}
	return nil
}

func parseSecret(secret *corev1.Secret) (*CA, *Certificate, error) {
	d := secret.Data
	pair, err := tls.X509KeyPair(d[corev1.TLSCertKey], d[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, nil, fmt.Errorf("%s and %s: %w", corev1.TLSCertKey, corev1.TLSPrivateKeyKey, err)
	}
	caBlock, _ := pem.Decode(d[SecretCACert])
	keyBlock, _ := pem.Decode(d[SecretCAKey])
	if caBlock == nil || keyBlock == nil {
		return nil, nil, fmt.Errorf("%s and %s must hold the CA's certificate and key in PEM", SecretCACert, SecretCAKey)
	}
	caCert, err := x509.ParseCertificate(caBlock.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", SecretCACert, err)
	}
	caKey, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", SecretCAKey, err)
	}
	signer, ok := caKey.(crypto.Signer)
	if !ok {
		return nil, nil, errors.New(SecretCAKey + ": not a signing key")
	}
	if err := pair.Leaf.CheckSignatureFrom(caCert); err != nil {
		return nil, nil, fmt.Errorf("%s is not signed by %s: %w", corev1.TLSCertKey, SecretCACert, err)
	}
	return &CA{Cert: caCert, Key: signer, PEM: d[SecretCACert]}, &Certificate{Serving: pair, CAPEM: d[SecretCACert]}, nil
}

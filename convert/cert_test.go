package convert_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/cuerator/cuerator/convert"
)

// verifies reports whether a client that trusts caPEM accepts cert for host.
func verifies(t *testing.T, cert *convert.Certificate, caPEM []byte, host string) error {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("caBundle holds no certificate")
	}
	_, err := cert.Serving.Leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

func TestSelfSigned(t *testing.T) {
	cert, err := convert.SelfSigned([]string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"127.0.0.1", "localhost"} {
		if err := verifies(t, cert, cert.CAPEM, h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	if err := verifies(t, cert, cert.CAPEM, "example.com"); err == nil {
		t.Error("valid for a host it was not made for")
	}
}

// Replicas share one Secret: the first creates it, the others read it; a
// new host renews the serving certificate under the same CA.
func TestCertSecret(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().Build()
	key := types.NamespacedName{Namespace: "cuerator-system", Name: "cuerator-webhook-cert"}
	hosts := []string{"cuerator-webhook-service.cuerator-system.svc"}
	first, err := (&convert.CertSecret{Client: c, Key: key, Hosts: hosts}).Ensure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second, err := (&convert.CertSecret{Client: c, Key: key, Hosts: hosts}).Ensure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Serving.Certificate[0], second.Serving.Certificate[0]) || !bytes.Equal(first.CAPEM, second.CAPEM) {
		t.Error("a second replica got another certificate")
	}
	if err := verifies(t, second, first.CAPEM, hosts[0]); err != nil {
		t.Error(err)
	}
	more := append(hosts, "cuerator-webhook-service.cuerator-system.svc.cluster.local")
	renewed, err := (&convert.CertSecret{Client: c, Key: key, Hosts: more}).Ensure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(renewed.Serving.Certificate[0], first.Serving.Certificate[0]) || !bytes.Equal(renewed.CAPEM, first.CAPEM) {
		t.Error("a new host did not renew the serving certificate under the same CA")
	}
	if err := verifies(t, renewed, first.CAPEM, more[1]); err != nil {
		t.Error(err)
	}
	read, err := (&convert.CertSecret{Client: c, Key: key}).Read(ctx)
	if err != nil || !bytes.Equal(read.Serving.Certificate[0], renewed.Serving.Certificate[0]) {
		t.Errorf("read back %v", err)
	}
}

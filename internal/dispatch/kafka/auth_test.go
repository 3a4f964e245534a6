package kafka

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/testrig"
)

// SASL PLAIN and SCRAM: the password comes from sasl-password-file; a wrong one delivers
// nothing (every chunk fails with the delivery timeout), the right one delivers.
func TestSASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			c := testrig.StartKafka(t, 1, testTopic, kfake.EnableSASL(), kfake.Superuser(mech, "statspipe", "s3cret"))
			dir := t.TempDir()
			for _, tc := range []struct {
				password string
				ok       bool
			}{{"wrong\n", false}, {"s3cret\n", true}} {
				pw := filepath.Join(dir, "pw")
				if err := os.WriteFile(pw, []byte(tc.password), 0o600); err != nil {
					t.Fatal(err)
				}
				cfg := testConfig(c, "host")
				cfg.SASLMechanism, cfg.SASLUser, cfg.SASLPasswordFile = mech, "statspipe", pw
				cfg.DeliveryTimeout = time.Second
				d := newDispatcher(t, cfg)
				chunks := snapshot(1700000000, "a", 10, 10)
				r := testrig.NewDoneCalls(len(chunks))
				submitAll(t, d, chunks, r)
				err := r.Wait(t, 1, waitLimit, "chunks")[0]
				if (err == nil) != tc.ok {
					t.Fatalf("password %q: done(%v)", strings.TrimSpace(tc.password), err)
				}
			}
		})
	}
	if _, err := New(testConfigSASL(), Options{}, nil); err == nil || !strings.Contains(err.Error(), "sasl-password-file") {
		t.Fatalf("a missing password file: %v", err)
	}
}

func testConfigSASL() (cfg config.Kafka) {
	cfg = config.Kafka{Brokers: []string{"127.0.0.1:1"}, Topic: testTopic, ClientID: "x", Compression: "none",
		BatchMaxBytes: 1 << 20, MaxBufferedRecords: 10, MaxBufferedBytes: 1 << 20, RecordKey: "path",
		DeliveryTimeout: time.Second, SASLMechanism: "PLAIN", SASLUser: "u", SASLPasswordFile: "/nonexistent/pw"}
	return cfg
}

// TLS with ca-file: a broker whose certificate the CA signed is reached; without the CA
// nothing is delivered.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	caFile, serverCert := testCA(t, dir)
	c := testrig.StartKafka(t, 1, testTopic, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}))
	for _, tc := range []struct {
		ca string
		ok bool
	}{{"", false}, {caFile, true}} {
		cfg := testConfig(c, "path")
		cfg.TLS, cfg.CAFile = true, tc.ca
		cfg.DeliveryTimeout = time.Second
		d := newDispatcher(t, cfg)
		chunks := snapshot(1700000000, "t", 5, 5)
		r := testrig.NewDoneCalls(1)
		submitAll(t, d, chunks, r)
		if err := r.Wait(t, 1, waitLimit, "chunks")[0]; (err == nil) != tc.ok {
			t.Fatalf("ca-file %q: done(%v)", tc.ca, err)
		}
	}
}

// testCA writes a CA certificate to dir/ca.pem and returns it with a server certificate for
// 127.0.0.1 that it signed.
func testCA(t *testing.T, dir string) (string, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

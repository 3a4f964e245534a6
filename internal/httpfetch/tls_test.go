package httpfetch

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	writeFile(t, path, string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})))
}

func tlsServer(t *testing.T) *httptest.Server {
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	}))
	t.Cleanup(ts.Close)
	return ts
}

func TestTLSWithCAFile(t *testing.T) {
	ts := tlsServer(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	writePEM(t, ca, "CERTIFICATE", ts.Certificate().Raw)
	c := mustNew(t, Options{TLSCAFile: ca})
	if res, err := c.Fetch(context.Background(), ts.URL, io.Discard); err != nil || res.Bytes != 3 {
		t.Fatalf("err %v, res %+v", err, res)
	}
	// httptest's certificate is for 127.0.0.1 and example.com: another server name must fail.
	c = mustNew(t, Options{TLSCAFile: ca, TLSServerName: "other.test"})
	if _, err := c.Fetch(context.Background(), ts.URL, io.Discard); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("wrong server name: err %v", err)
	}
	c = mustNew(t, Options{TLSCAFile: ca, TLSServerName: "example.com"})
	if _, err := c.Fetch(context.Background(), ts.URL, io.Discard); err != nil {
		t.Fatalf("server name example.com: %v", err)
	}
}

func TestTLSWithoutCA(t *testing.T) {
	ts := tlsServer(t)
	c := mustNew(t, Options{})
	_, err := c.Fetch(context.Background(), ts.URL, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err %v", err)
	}
	if !strings.HasPrefix(err.Error(), "GET "+ts.URL+": ") {
		t.Fatalf("message %q", err)
	}
}

func TestTLSSkipVerify(t *testing.T) {
	ts := tlsServer(t)
	c := mustNew(t, Options{TLSSkipVerify: true})
	if _, err := c.Fetch(context.Background(), ts.URL, io.Discard); err != nil {
		t.Fatal(err)
	}
}

// selfSigned makes a key and a self-signed certificate usable as a client certificate and as
// the CA that verifies it.
func selfSigned(t *testing.T) (certDER []byte, keyDER []byte, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "statspipe-test-client"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	certDER, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err = x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err = x509.ParseCertificate(certDER)
	if err != nil {
		t.Fatal(err)
	}
	return certDER, keyDER, cert
}

func TestMutualTLS(t *testing.T) {
	certDER, keyDER, cert := selfSigned(t)
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(cert)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.TLS.PeerCertificates[0].Subject.CommonName))
	}))
	ts.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs}
	ts.StartTLS()
	defer ts.Close()

	dir := t.TempDir()
	ca, crt, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	writePEM(t, ca, "CERTIFICATE", ts.Certificate().Raw)
	writePEM(t, crt, "CERTIFICATE", certDER)
	writePEM(t, key, "PRIVATE KEY", keyDER)

	c := mustNew(t, Options{TLSCAFile: ca, TLSCertFile: crt, TLSKeyFile: key})
	var got strings.Builder
	if _, err := c.Fetch(context.Background(), ts.URL, &got); err != nil {
		t.Fatal(err)
	}
	if got.String() != "statspipe-test-client" {
		t.Fatalf("server saw client %q", got.String())
	}
	// Without the client certificate the server refuses the handshake.
	c = mustNew(t, Options{TLSCAFile: ca})
	if _, err := c.Fetch(context.Background(), ts.URL, io.Discard); err == nil {
		t.Fatal("no error without a client certificate")
	}
}

func TestRedirectDowngradeRefused(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer plain.Close()
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+"/metrics", http.StatusFound)
	}))
	defer ts.Close()
	c := mustNew(t, Options{TLSSkipVerify: true})
	_, err := c.Fetch(context.Background(), ts.URL, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "redirect from https to http refused") {
		t.Fatalf("err %v", err)
	}
}

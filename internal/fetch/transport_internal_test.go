package fetch

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// TestVerifiedTransport checks that plain HTTP goes through without the
// roots being read, and that HTTPS is verified against the roots plus
// the extra CA certificates: a server signed by a CA given is reached,
// the same server without it is refused.
func TestVerifiedTransport(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "plain") }))
	defer plain.Close()
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "secure") }))
	defer secure.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: secure.Certificate().Raw})

	get := func(tr http.RoundTripper, url string) (string, error) {
		resp, err := (&http.Client{Transport: tr}).Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return string(body), err
	}
	tr, err := NewTransport(TransportOptions{CACerts: ca})
	if err != nil {
		t.Fatal(err)
	}
	if body, err := get(tr, plain.URL); body != "plain" || err != nil {
		t.Errorf("plain HTTP: %q, %v", body, err)
	}
	if tr.(*verifiedTransport).made.Load() {
		t.Error("a plain HTTP request made the TLS transport (and read the roots)")
	}
	if body, err := get(tr, secure.URL); body != "secure" || err != nil {
		t.Errorf("HTTPS signed by a CA given: %q, %v", body, err)
	}
	without, err := NewTransport(TransportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := get(without, secure.URL); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("HTTPS signed by an unknown CA: %v, want a certificate error", err)
	}
	insecure, err := NewTransport(TransportOptions{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if body, err := get(insecure, secure.URL); body != "secure" || err != nil {
		t.Errorf("HTTPS unchecked: %q, %v", body, err)
	}
}

// TestEmbeddedRoots checks, in a process whose system has no roots (as
// the initramfs), that the roots are the embedded ones, and that they
// hold a root every public registry's chain may end at.
func TestEmbeddedRoots(t *testing.T) {
	if os.Getenv("FETCH_TEST_NO_SYSTEM_ROOTS") == "1" {
		pool := roots(nil)
		if pool.Equal(embeddedRoots()) {
			return
		}
		t.Fatal("without system roots, the roots are not the embedded ones")
	}
	if pool := roots(nil); pool.Equal(embeddedRoots()) {
		t.Error("with the host's system roots, the roots are the embedded ones")
	}
	var isrg *x509.Certificate
	for root := range bundle.Roots() {
		if c, err := x509.ParseCertificate(root.Certificate); err == nil && c.Subject.CommonName == "ISRG Root X1" {
			isrg = c
		}
	}
	if isrg == nil {
		t.Fatal("the bundle lacks ISRG Root X1 (Let's Encrypt)")
	}
	if _, err := isrg.Verify(x509.VerifyOptions{Roots: embeddedRoots()}); err != nil {
		t.Errorf("ISRG Root X1 against the embedded roots: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestEmbeddedRoots$")
	cmd.Env = append(os.Environ(), "FETCH_TEST_NO_SYSTEM_ROOTS=1", "SSL_CERT_FILE=/nonexistent", "SSL_CERT_DIR=/nonexistent")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("without system roots: %v\n%s", err, out)
	}
}

// TestHTTPSProxy checks, in a process whose environment names an HTTPS
// proxy, that a plain HTTP request goes through it with TLS verified
// against the roots plus the CA certificates given.
func TestHTTPSProxy(t *testing.T) {
	if ca := os.Getenv("FETCH_TEST_PROXY_CA"); ca != "" {
		tr, err := NewTransport(TransportOptions{CACerts: []byte(ca)})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := (&http.Client{Transport: tr}).Get("http://registry.invalid/v2/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if body, err := io.ReadAll(resp.Body); string(body) != "proxied http://registry.invalid/v2/" || err != nil {
			t.Fatalf("through the proxy: %q, %v", body, err)
		}
		return
	}
	proxy := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "proxied "+r.URL.String())
	}))
	defer proxy.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw})
	cmd := exec.Command(os.Args[0], "-test.run=^TestHTTPSProxy$")
	cmd.Env = append(os.Environ(), "FETCH_TEST_PROXY_CA="+string(ca), "HTTP_PROXY="+proxy.URL, "NO_PROXY=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("through an HTTPS proxy: %v\n%s", err, out)
	}
}

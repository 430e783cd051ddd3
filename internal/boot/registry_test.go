package boot

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/bootcfg"
)

func TestReadBakedRegistry(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	auth := write("auth.json", `{"auths": {"https://index.docker.io/v1/": {"username": "u", "password": "Zq7-secret"}}}`)
	ca := write("ca.pem", caPEM)

	var b bootcfg.Baked
	if err := readBakedRegistry(&b, auth, ca); err != nil {
		t.Fatalf("readBakedRegistry: %v", err)
	}
	if c := b.RegistryAuth["docker.io"]; c.Username != "u" || c.Password != "Zq7-secret" || string(b.CACerts) != caPEM {
		t.Errorf("baked registry configuration: %v, %q", b.RegistryAuth, b.CACerts)
	}
	// The files are optional.
	b = bootcfg.Baked{}
	if err := readBakedRegistry(&b, filepath.Join(dir, "none"), filepath.Join(dir, "none.pem")); err != nil || b.RegistryAuth != nil || b.CACerts != nil {
		t.Errorf("without the files: %+v, %v", b, err)
	}
	for _, tc := range []struct{ auth, ca, want string }{
		{write("bad.json", `{"auths": {"r.lan": {"auth": "%Zq7-secret"}}}`), ca, "bad.json: auths entry \"r.lan\""},
		{auth, write("bad.pem", "junk"), "bad.pem: no PEM CERTIFICATE block"},
		{dir, ca, "is a directory"},
	} {
		err := readBakedRegistry(&bootcfg.Baked{}, tc.auth, tc.ca)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "Zq7-secret") {
			t.Errorf("readBakedRegistry(%s, %s): error %v, want one containing %q and no secret", tc.auth, tc.ca, err, tc.want)
		}
	}
}

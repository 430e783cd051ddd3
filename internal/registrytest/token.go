package registrytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TokenServer is a small Docker-style token server (the protocol of
// Docker Hub's auth.docker.io): it checks HTTP basic credentials, or an
// OAuth2 refresh token, and issues JWTs that the distribution registry
// verifies against the server's self-signed certificate (its
// rootcertbundle). It grants every action asked for in the scopes.
type TokenServer struct {
	// Service and Issuer are the JWT's audience and issuer, which the
	// registry checks.
	Service, Issuer string
	// CertFile is the self-signed certificate of the signing key, PEM.
	CertFile string

	key  *ecdsa.PrivateKey
	x5c  string
	mu   sync.Mutex
	user map[string]string // name → password
	refr map[string]string // refresh token → name
	log  []TokenRequest
}

// TokenRequest is one request the token server answered.
type TokenRequest struct {
	Method string
	// User is who was authenticated, "" when nobody was.
	User string
	// Scopes are the scopes asked for.
	Scopes []string
	// Status is the HTTP status answered.
	Status int
}

// NewTokenServer makes a token server for users (name → password), with a
// fresh signing key and certificate.
func NewTokenServer(t testing.TB, users map[string]string) *TokenServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("registrytest: token key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: "registrytest token signer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("registrytest: token certificate: %v", err)
	}
	ts := &TokenServer{
		Service:  "registrytest",
		Issuer:   "registrytest-token-server",
		CertFile: filepath.Join(t.TempDir(), "token-signer.pem"),
		key:      key,
		x5c:      base64.StdEncoding.EncodeToString(der),
		user:     map[string]string{},
		refr:     map[string]string{},
	}
	if err := os.WriteFile(ts.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	for u, p := range users {
		ts.user[u] = p
	}
	return ts
}

// AddUser lets name in with password.
func (ts *TokenServer) AddUser(name, password string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.user[name] = password
}

// AddRefreshToken lets the OAuth2 refresh token stand for user (docker's
// "identitytoken").
func (ts *TokenServer) AddRefreshToken(token, user string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.refr[token] = user
}

// Requests returns the requests answered so far.
func (ts *TokenServer) Requests() []TokenRequest {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]TokenRequest(nil), ts.log...)
}

// ServeHTTP answers GET (basic credentials) and POST (OAuth2 password or
// refresh_token grants) token requests.
func (ts *TokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := TokenRequest{Method: r.Method}
	status, body := ts.answer(r, &rec)
	rec.Status = status
	ts.mu.Lock()
	ts.log = append(ts.log, rec)
	ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func (ts *TokenServer) answer(r *http.Request, rec *TokenRequest) (int, any) {
	denied := map[string]string{"details": "invalid credentials"}
	if err := r.ParseForm(); err != nil {
		return http.StatusBadRequest, map[string]string{"details": "bad form"}
	}
	if r.Form.Get("service") != ts.Service {
		return http.StatusBadRequest, map[string]string{"details": "unknown service"}
	}
	rec.Scopes = r.Form["scope"]
	if r.Method == http.MethodPost {
		rec.Scopes = strings.Fields(r.PostForm.Get("scope"))
	}
	ts.mu.Lock()
	switch {
	case r.Method == http.MethodGet:
		if u, p, ok := r.BasicAuth(); ok && ts.user[u] != "" && ts.user[u] == p {
			rec.User = u
		}
	case r.Method == http.MethodPost && r.PostForm.Get("grant_type") == "refresh_token":
		rec.User = ts.refr[r.PostForm.Get("refresh_token")]
	case r.Method == http.MethodPost && r.PostForm.Get("grant_type") == "password":
		if u, p := r.PostForm.Get("username"), r.PostForm.Get("password"); ts.user[u] != "" && ts.user[u] == p {
			rec.User = u
		}
	}
	ts.mu.Unlock()
	if rec.User == "" {
		return http.StatusUnauthorized, denied
	}
	tok, err := ts.sign(rec.User, rec.Scopes)
	if err != nil {
		return http.StatusInternalServerError, map[string]string{"details": err.Error()}
	}
	return http.StatusOK, map[string]any{
		"token": tok, "access_token": tok, "expires_in": 300,
		"issued_at": time.Now().UTC().Format(time.RFC3339),
	}
}

// access is one grant in a token's "access" claim.
type access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// sign makes an ES256 JWT for user granting scopes (TYPE:NAME:ACTIONS),
// carrying the signing certificate in its x5c header.
func (ts *TokenServer) sign(user string, scopes []string) (string, error) {
	grants := []access{}
	for _, s := range scopes {
		typ, rest, ok1 := strings.Cut(s, ":")
		i := strings.LastIndexByte(rest, ':')
		if !ok1 || i < 0 {
			return "", fmt.Errorf("malformed scope %q", s)
		}
		grants = append(grants, access{Type: typ, Name: rest[:i], Actions: strings.Split(rest[i+1:], ",")})
	}
	now := time.Now()
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	header, err := json.Marshal(map[string]any{"typ": "JWT", "alg": "ES256", "x5c": []string{ts.x5c}})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(map[string]any{
		"iss": ts.Issuer, "sub": user, "aud": ts.Service,
		"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Add(-10 * time.Second).Unix(), "iat": now.Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(jti), "access": grants,
	})
	if err != nil {
		return "", err
	}
	input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims)
	digest := sha256.Sum256([]byte(input))
	der, err := ecdsa.SignASN1(rand.Reader, ts.key, digest[:])
	if err != nil {
		return "", err
	}
	var sig struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &sig); err != nil {
		return "", err
	}
	// JWS wants R and S as two 32-byte big-endian numbers.
	raw := make([]byte, 64)
	sig.R.FillBytes(raw[:32])
	sig.S.FillBytes(raw[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(raw), nil
}

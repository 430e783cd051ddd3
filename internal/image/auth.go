package image

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Credential is what ociboot presents to one registry. It never prints
// its secrets: every fmt verb and JSON show the user name only.
type Credential struct {
	// Username and Password are sent as HTTP basic credentials, to the
	// registry itself or to its token server.
	Username, Password string
	// IdentityToken is an OAuth2 refresh token (docker's
	// "identitytoken"), exchanged at the token server.
	IdentityToken string
	// RegistryToken is a bearer token sent to the registry as is
	// (docker's "registrytoken").
	RegistryToken string
}

// String describes the credential without its secrets.
func (c Credential) String() string {
	switch {
	case c.RegistryToken != "":
		return "registry token (redacted)"
	case c.IdentityToken != "":
		return "identity token (redacted)"
	}
	return fmt.Sprintf("user %q, password (redacted)", c.Username)
}

// Format prints String for every verb, so that %v, %+v and %#v of a
// struct holding a Credential do not print secrets either.
func (c Credential) Format(f fmt.State, _ rune) {
	_, _ = f.Write([]byte(c.String()))
}

// MarshalJSON writes String, never the secrets.
func (c Credential) MarshalJSON() ([]byte, error) {
	return json.Marshal(c.String())
}

func (c Credential) empty() bool {
	return c.Password == "" && c.IdentityToken == "" && c.RegistryToken == ""
}

// ParseRegistryAuth reads `HOST,USER,PASSWORD` (the value of
// ociboot.registry_auth=) and returns the normalized registry host and
// its credential. The password is everything after the second comma, so
// it may hold commas. Errors never quote the password.
func ParseRegistryAuth(s string) (string, Credential, error) {
	const want = "expected HOST[:PORT],USER,PASSWORD, such as registry.lan:5000,ci,secret"
	host, rest, ok := strings.Cut(s, ",")
	if !ok {
		return "", Credential{}, errors.New("no ',' after the registry: " + want)
	}
	user, pass, ok := strings.Cut(rest, ",")
	if !ok {
		return "", Credential{}, fmt.Errorf("registry %q: no ',' between user and password: %s", host, want)
	}
	if err := CheckRegistryHost(host); err != nil {
		return "", Credential{}, fmt.Errorf("registry %w: %s", err, want)
	}
	if user == "" || pass == "" {
		return "", Credential{}, fmt.Errorf("registry %q: empty user or password: %s", host, want)
	}
	return NormalizeRegistry(host), Credential{Username: user, Password: pass}, nil
}

// dockerConfig is the part of docker's config.json that ociboot reads.
type dockerConfig struct {
	Auths       map[string]dockerAuth `json:"auths"`
	CredsStore  string                `json:"credsStore"`
	CredHelpers map[string]string     `json:"credHelpers"`
}

type dockerAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// ParseDockerConfig reads credentials from a docker config.json (the file
// `docker login` and `podman login` write): for each entry of "auths", an
// "auth" (base64 of USER:PASSWORD), a username and password, an
// "identitytoken" or a "registrytoken". Keys may be written as URLs
// (https://index.docker.io/v1/); they are normalized to HOST[:PORT].
// Entries kept in a credential helper are errors, since no helper runs at
// boot. Errors name the registry at fault but never quote secrets.
func ParseDockerConfig(data []byte) (map[string]Credential, error) {
	var cfg dockerConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("not a docker config.json: %s", describeJSONError(err))
	}
	if len(cfg.Auths) == 0 {
		return nil, errors.New(`no "auths" entries: expected a docker config.json such as {"auths": {"registry.lan:5000": {"auth": "base64 of USER:PASSWORD"}}}`)
	}
	keys := make([]string, 0, len(cfg.Auths))
	for k := range cfg.Auths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	creds := make(map[string]Credential, len(keys))
	for _, key := range keys {
		host, err := registryFromAuthKey(key)
		if err != nil {
			return nil, fmt.Errorf("auths entry %q: %w", key, err)
		}
		c, err := cfg.Auths[key].credential()
		if err != nil {
			return nil, fmt.Errorf("auths entry %q: %w", key, err)
		}
		if c.empty() {
			helper := cfg.CredHelpers[key]
			if helper == "" {
				helper = cfg.CredsStore
			}
			if helper != "" {
				return nil, fmt.Errorf("auths entry %q has no credentials: they are kept by the credential helper %q, which does not run at boot; write them into the file (\"auth\": base64 of USER:PASSWORD)", key, helper)
			}
			return nil, fmt.Errorf("auths entry %q has no credentials: expected \"auth\", \"username\" and \"password\", \"identitytoken\" or \"registrytoken\"", key)
		}
		if _, dup := creds[host]; dup {
			return nil, fmt.Errorf("auths entry %q: registry %s has credentials twice", key, host)
		}
		creds[host] = c
	}
	return creds, nil
}

func (a dockerAuth) credential() (Credential, error) {
	c := Credential{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
	if a.Auth != "" {
		raw, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil {
			return Credential{}, errors.New(`"auth" is not valid base64: expected base64 of USER:PASSWORD`)
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok || user == "" {
			return Credential{}, errors.New(`"auth" does not decode to USER:PASSWORD`)
		}
		c.Username, c.Password = user, pass
	}
	if c.Password != "" && c.Username == "" {
		return Credential{}, errors.New(`a password without a "username"`)
	}
	return c, nil
}

// registryFromAuthKey turns an auths key (HOST[:PORT], or a URL such as
// https://index.docker.io/v1/) into a normalized registry host.
func registryFromAuthKey(key string) (string, error) {
	host := key
	if _, after, ok := strings.Cut(host, "://"); ok {
		host = after
	}
	host, _, _ = strings.Cut(host, "/")
	if err := CheckRegistryHost(host); err != nil {
		return "", fmt.Errorf("registry %w", err)
	}
	return NormalizeRegistry(host), nil
}

// describeJSONError says where JSON decoding failed without quoting the
// input, which may hold secrets.
func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q holds a JSON %s, expected a %s", typ.Field, typ.Value, typ.Type)
	}
	return "invalid JSON"
}

// keychain gives go-containerregistry the credential of each registry.
type keychain map[string]Credential

// Keychain gives go-containerregistry the credentials of creds, by
// registry (as ParseDockerConfig returns them); anonymous access for the
// others.
func Keychain(creds map[string]Credential) authn.Keychain { return keychain(creds) }

// Resolve returns the credential for the resource's registry, or
// anonymous access.
func (k keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	c, ok := k[NormalizeRegistry(r.RegistryStr())]
	if !ok {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{
		Username:      c.Username,
		Password:      c.Password,
		IdentityToken: c.IdentityToken,
		RegistryToken: c.RegistryToken,
	}), nil
}

// ReadCertDir reads a directory as podman's --cert-dir: its *.crt files
// are CA certificates (PEM, returned together), each NAME.cert with its
// NAME.key a client certificate.
func ReadCertDir(dir string) (ca []byte, certs []tls.Certificate, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate directory: %w", err)
	}
	for _, e := range entries {
		name := filepath.Join(dir, e.Name())
		switch filepath.Ext(e.Name()) {
		case ".crt":
			data, err := os.ReadFile(name)
			if err != nil {
				return nil, nil, fmt.Errorf("certificate directory: %w", err)
			}
			ca = append(append(ca, data...), '\n')
		case ".cert":
			key := strings.TrimSuffix(name, ".cert") + ".key"
			pair, err := tls.LoadX509KeyPair(name, key)
			if err != nil {
				return nil, nil, fmt.Errorf("certificate directory: client certificate %s with key %s: %w", name, key, err)
			}
			certs = append(certs, pair)
		}
	}
	return ca, certs, nil
}

// ReadDockerConfig reads the docker config.json file name (see
// ParseDockerConfig); errors name the file.
func ReadDockerConfig(name string) (map[string]Credential, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	creds, err := ParseDockerConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return creds, nil
}

package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/store"
)

// requestTimeout bounds a request to the upstream that is not a blob's
// download (those are watched for stalls by the fetch client instead).
const requestTimeout = time.Minute

// manifestTypes are the manifest media types the mirror asks for.
var manifestTypes = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

// MirrorOptions make a Mirror with NewMirror.
type MirrorOptions struct {
	// Upstream is the registry's URL: https://HOST[:PORT], or http:// for
	// a registry without TLS.
	Upstream string
	// Dir is the ociboot store the blobs are kept in (made when missing).
	Dir string
	// Client sends the requests to the upstream; nil means fetch.New's
	// defaults (retries, resumed downloads, the system's roots).
	Client *http.Client
	// Keychain gives the upstream's credentials; nil means anonymous.
	Keychain authn.Keychain
	// Log receives a line for each download from the upstream, and for
	// each stale tag served; nil means none.
	Log io.Writer
}

// Mirror is a pull-through cache of one upstream registry, served through
// the distribution API's pull endpoints (an http.Handler for paths under
// /v2/): what clients ask for is fetched from the upstream once, however
// many ask at the same time, and kept. A lab's machines all booting at
// once then cost the upstream one download of each blob.
//
// Blobs are kept in an ociboot store (verified, synced and renamed into
// place whole), and streamed to every client asking for them while they
// arrive. Manifests asked for by tag are asked of the upstream each time
// (concurrent requests share one answer), so tags move as upstream's do;
// when the upstream cannot be reached, the last answer for the tag (since
// the mirror was made) is served. Manifests are kept in memory, by digest.
// Tag lists, referrers, and HEAD requests for blobs not kept are relayed.
type Mirror struct {
	ctx      context.Context // ends with Close: downloads stop
	cancel   context.CancelFunc
	base     *url.URL
	registry name.Registry
	store    *store.Store
	client   *http.Client
	keys     authn.Keychain
	log      io.Writer

	mu         sync.Mutex
	transports map[string]http.RoundTripper // by repository
	manifests  map[v1.Hash]mirrored
	tags       map[string]v1.Hash // "repo:tag" → the upstream's last answer
	tagCalls   map[string]*tagCall
	downloads  map[v1.Hash]*download
}

// mirrored is a manifest the mirror keeps.
type mirrored struct {
	manifest
	digest v1.Hash
}

// NewMirror returns a mirror of o.Upstream, whose downloads stop once ctx
// ends or Close is called.
func NewMirror(ctx context.Context, o MirrorOptions) (*Mirror, error) {
	u, err := url.Parse(o.Upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
		return nil, fmt.Errorf("upstream %q: expected http(s)://HOST[:PORT]", o.Upstream)
	}
	var opts []name.Option
	if u.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(u.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", o.Upstream, err)
	}
	st, err := store.Open(o.Dir)
	if err != nil {
		return nil, err
	}
	client := o.Client
	if client == nil {
		if client, err = fetch.New(fetch.Options{}); err != nil {
			return nil, err
		}
	}
	keys := o.Keychain
	if keys == nil {
		keys = authn.NewMultiKeychain() // anonymous
	}
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	ctx, cancel := context.WithCancel(ctx)
	return &Mirror{
		ctx: ctx, cancel: cancel, base: &url.URL{Scheme: u.Scheme, Host: u.Host}, registry: reg,
		store: st, client: client, keys: keys, log: log,
		transports: map[string]http.RoundTripper{}, manifests: map[v1.Hash]mirrored{},
		tags: map[string]v1.Hash{}, tagCalls: map[string]*tagCall{}, downloads: map[v1.Hash]*download{},
	}, nil
}

// Close stops the downloads under way; their clients see their answers
// cut short.
func (m *Mirror) Close() { m.cancel() }

// ServeHTTP answers GET and HEAD under /v2/.
func (m *Mirror) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	path, ok := apiPath(w, req)
	if !ok {
		return
	}
	for _, kind := range []string{"/manifests/", "/blobs/"} {
		i := strings.LastIndex(path, kind)
		if i < 0 {
			continue
		}
		repo, ref := path[:i], path[i+len(kind):]
		if !validName(repo) {
			apiError(w, http.StatusBadRequest, "NAME_INVALID", fmt.Sprintf("repository name %q is not valid", repo))
			return
		}
		if kind == "/manifests/" {
			m.serveManifest(w, req, repo, ref)
		} else {
			m.serveBlob(w, req, repo, ref)
		}
		return
	}
	repo, ok := strings.CutSuffix(path, "/tags/list")
	if !ok {
		repo, _, ok = strings.Cut(path, "/referrers/")
	}
	if !ok || !validName(repo) {
		apiError(w, http.StatusNotFound, "NOT_FOUND", "no such endpoint")
		return
	}
	m.relay(w, req, repo)
}

// transport returns the round tripper that pulls from repository repo of
// the upstream, authenticated as the keychain says (a token handshake
// the first time).
func (m *Mirror) transport(ctx context.Context, repo string) (http.RoundTripper, error) {
	m.mu.Lock()
	tr := m.transports[repo]
	m.mu.Unlock()
	if tr != nil {
		return tr, nil
	}
	r := m.registry.Repo(repo)
	auth, err := m.keys.Resolve(r)
	if err != nil {
		return nil, fmt.Errorf("upstream credentials: %w", err)
	}
	tr, err = transport.NewWithContext(ctx, m.registry, auth, m.client.Transport, []string{r.Scope(transport.PullScope)})
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", m.base.Host, err)
	}
	m.mu.Lock()
	m.transports[repo] = tr
	m.mu.Unlock()
	return tr, nil
}

// get sends a request for path (under /v2/repo/) to the upstream.
func (m *Mirror) get(ctx context.Context, method, repo, path, rawQuery string, header http.Header) (*http.Response, error) {
	tr, err := m.transport(ctx, repo)
	if err != nil {
		return nil, err
	}
	u := *m.base
	u.Path = "/v2/" + repo + "/" + path
	u.RawQuery = rawQuery
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	return resp, nil
}

// upstreamError is an answer of the upstream that is not a success:
// relayed to the client as it came.
type upstreamError struct {
	status      int
	contentType string
	body        []byte
}

func (e *upstreamError) Error() string {
	return fmt.Sprintf("upstream answered %d: %s", e.status, strings.TrimSpace(string(e.body)))
}

// newUpstreamError reads the error answer resp (its start) and closes it.
func newUpstreamError(resp *http.Response) *upstreamError {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return &upstreamError{resp.StatusCode, resp.Header.Get("Content-Type"), body}
}

// unreachable reports whether err says the upstream could not answer (as
// opposed to answering no), so that a stale answer may stand in.
func unreachable(err error) bool {
	var ue *upstreamError
	if errors.As(err, &ue) {
		return ue.status >= 500 || ue.status == http.StatusTooManyRequests
	}
	return err != nil
}

// fail answers a failure of the upstream: its own answer when it gave
// one, a 502 saying what went wrong otherwise.
func fail(w http.ResponseWriter, err error) {
	var ue *upstreamError
	if errors.As(err, &ue) {
		if ue.contentType != "" {
			w.Header().Set("Content-Type", ue.contentType)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(ue.body)))
		w.WriteHeader(ue.status)
		_, _ = w.Write(ue.body)
		return
	}
	apiError(w, http.StatusBadGateway, "UNKNOWN", err.Error())
}

// relay answers a tags list or referrers request with the upstream's
// answer, as it is.
func (m *Mirror) relay(w http.ResponseWriter, req *http.Request, repo string) {
	ctx, cancel := context.WithTimeout(req.Context(), requestTimeout)
	defer cancel()
	rest := strings.TrimPrefix(strings.TrimPrefix(req.URL.Path, "/v2/"), repo+"/")
	resp, err := m.get(ctx, req.Method, repo, rest, req.URL.RawQuery, http.Header{"Accept": req.Header.Values("Accept")})
	if err != nil {
		fail(w, err)
		return
	}
	defer resp.Body.Close()
	for _, k := range []string{"Content-Type", "Content-Length", "Docker-Content-Digest", "Link", "Oci-Filters-Applied"} {
		if v := resp.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// Package registry serves container images read-only through the OCI
// distribution API: the pull endpoints (manifests and blobs, by tag or
// digest, GET and HEAD, blobs with Range) and content discovery (tags list
// with pagination, referrers with an artifactType filter).
//
// Images come from OCI image layouts, docker-archive tarballs and ociboot
// stores on disk, served from where they lie (a blob is opened per request,
// never loaded into memory), and from images built in memory. A Registry
// is filled by its Add methods, then served; it is not changed once
// serving starts (build a new one to reload, and swap handlers).
//
// Clients verify what they fetch against its digest; the registry checks
// manifests when it reads them and the blobs of docker-archives, whose
// digests it computes, but trusts the blob files of layouts and stores to
// be what their names say, as a registry trusts its storage.
package registry

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Registry is a set of repositories, served by ServeHTTP.
type Registry struct {
	repos    map[string]*repo
	fallback http.Handler
}

// SetFallback hands the requests for repositories the registry does not
// have to h (a Mirror); set it before serving.
func (r *Registry) SetFallback(h http.Handler) { r.fallback = h }

// New returns an empty registry.
func New() *Registry { return &Registry{repos: map[string]*repo{}} }

// repo is one repository: its manifests (kept in memory, they are small),
// the blobs they need (opened from where they lie) and its tags.
type repo struct {
	tags      map[string]v1.Hash
	manifests map[v1.Hash]manifest
	blobs     map[v1.Hash]blob
	referrers map[v1.Hash][]v1.Descriptor // by subject
}

type manifest struct {
	mediaType types.MediaType
	raw       []byte
}

// Repositories lists the repositories, sorted.
func (r *Registry) Repositories() []string {
	names := make([]string, 0, len(r.repos))
	for n := range r.repos {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Tags lists the tags of repository name, sorted.
func (r *Registry) Tags(name string) []string {
	rp := r.repos[name]
	if rp == nil {
		return nil
	}
	tags := make([]string, 0, len(rp.tags))
	for t := range rp.tags {
		tags = append(tags, t)
	}
	slices.Sort(tags)
	return tags
}

// repo returns repository name, made when missing; the name must be a
// valid repository name.
func (r *Registry) repo(name string) (*repo, error) {
	if !validName(name) {
		return nil, fmt.Errorf("repository name %q: expected lower-case path components of letters and digits separated by '.', '_', '__' or '-', joined by '/'", name)
	}
	rp := r.repos[name]
	if rp == nil {
		rp = &repo{tags: map[string]v1.Hash{}, manifests: map[v1.Hash]manifest{}, blobs: map[v1.Hash]blob{}, referrers: map[v1.Hash][]v1.Descriptor{}}
		r.repos[name] = rp
	}
	return rp, nil
}

// tag points tag at the manifest d, which must be in the repository.
func (rp *repo) tag(name, tag string, d v1.Hash) error {
	if !validTag(tag) {
		return fmt.Errorf("%s: tag %q: expected up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'", name, tag)
	}
	rp.tags[tag] = d
	return nil
}

// manifestFields are what the registry reads in a manifest or an index.
type manifestFields struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     types.MediaType   `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *v1.Descriptor    `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Manifests     []v1.Descriptor   `json:"manifests"`
	Subject       *v1.Descriptor    `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// addManifest adds the manifest raw, whose digest is d, with the media
// type its descriptor gave (empty: its own mediaType field), and returns
// what it references. It records it as a referrer of its subject.
func (rp *repo) addManifest(d v1.Hash, mt types.MediaType, raw []byte) (manifestFields, error) {
	m, mt, err := parseManifest(d, mt, raw)
	if err != nil {
		return m, err
	}
	if _, ok := rp.manifests[d]; ok {
		return m, nil
	}
	rp.manifests[d] = manifest{mediaType: mt, raw: raw}
	if m.Subject != nil {
		desc := v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw)), ArtifactType: m.ArtifactType, Annotations: m.Annotations}
		if desc.ArtifactType == "" && m.Config != nil {
			desc.ArtifactType = string(m.Config.MediaType)
		}
		rp.referrers[m.Subject.Digest] = append(rp.referrers[m.Subject.Digest], desc)
	}
	return m, nil
}

// parseManifest reads the manifest raw, whose digest is d, and returns
// its fields and media type: mt when given (by a descriptor or a
// Content-Type), else its own mediaType field, else what it holds says.
func parseManifest(d v1.Hash, mt types.MediaType, raw []byte) (manifestFields, types.MediaType, error) {
	var m manifestFields
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, mt, fmt.Errorf("manifest %s: %w", d, err)
	}
	if m.SchemaVersion != 2 {
		return m, mt, fmt.Errorf("manifest %s: schemaVersion %d, expected 2", d, m.SchemaVersion)
	}
	if mt == "" {
		mt = m.MediaType
	}
	if mt == "" {
		// An OCI manifest may leave its media type out: what it holds says.
		mt = types.OCIManifestSchema1
		if m.Manifests != nil {
			mt = types.OCIImageIndex
		}
	}
	return m, mt, nil
}

// apiPath answers what every read-only registry answers alike (the API
// version, methods other than GET and HEAD, paths outside /v2/, the /v2/
// ping) and returns the path under /v2/ of any other request, ok.
func apiPath(w http.ResponseWriter, req *http.Request) (path string, ok bool) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		apiError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "this registry is read-only: only GET and HEAD")
		return "", false
	}
	path, ok = strings.CutPrefix(req.URL.Path, "/v2/")
	if !ok {
		apiError(w, http.StatusNotFound, "NOT_FOUND", "not a distribution API path (they start with /v2/)")
		return "", false
	}
	if path == "" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{}")
		return "", false
	}
	return path, true
}

// ServeHTTP answers the distribution API under /v2/.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	path, ok := apiPath(w, req)
	if !ok {
		return
	}
	if name, ok := strings.CutSuffix(path, "/tags/list"); ok {
		if r.repos[name] == nil && r.fallback != nil {
			r.fallback.ServeHTTP(w, req)
			return
		}
		r.serveTags(w, req, name)
		return
	}
	for _, kind := range []string{"/manifests/", "/blobs/", "/referrers/"} {
		i := strings.LastIndex(path, kind)
		if i < 0 {
			continue
		}
		name, ref := path[:i], path[i+len(kind):]
		rp := r.repos[name]
		if rp == nil && r.fallback != nil {
			r.fallback.ServeHTTP(w, req)
			return
		}
		if rp == nil {
			apiError(w, http.StatusNotFound, "NAME_UNKNOWN", fmt.Sprintf("repository %q is not served here", name))
			return
		}
		switch kind {
		case "/manifests/":
			rp.serveManifest(w, req, ref)
		case "/blobs/":
			rp.serveBlob(w, req, ref)
		default:
			rp.serveReferrers(w, req, ref)
		}
		return
	}
	apiError(w, http.StatusNotFound, "NOT_FOUND", "no such endpoint")
}

func (rp *repo) serveManifest(w http.ResponseWriter, req *http.Request, ref string) {
	d, err := v1.NewHash(ref)
	if err != nil {
		var ok bool
		if d, ok = rp.tags[ref]; !ok {
			apiError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", fmt.Sprintf("no tag %q", ref))
			return
		}
	}
	m, ok := rp.manifests[d]
	if !ok {
		apiError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", fmt.Sprintf("no manifest %s", ref))
		return
	}
	h := w.Header()
	h.Set("Content-Type", string(m.mediaType))
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", strconv.Itoa(len(m.raw)))
	h.Set("Etag", `"`+d.String()+`"`)
	if req.Method == http.MethodGet {
		_, _ = w.Write(m.raw)
	}
}

func (rp *repo) serveBlob(w http.ResponseWriter, req *http.Request, ref string) {
	d, err := v1.NewHash(ref)
	if err != nil {
		apiError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("%q is not a digest: %v", ref, err))
		return
	}
	b, ok := rp.blobs[d]
	if !ok {
		apiError(w, http.StatusNotFound, "BLOB_UNKNOWN", fmt.Sprintf("no blob %s", d))
		return
	}
	f, err := b()
	if err != nil {
		apiError(w, http.StatusInternalServerError, "UNKNOWN", fmt.Sprintf("blob %s: %v", d, err))
		return
	}
	defer f.Close()
	serveBlobFile(w, req, d, f)
}

// blobHeaders sets the headers of blob d's answer.
func blobHeaders(w http.ResponseWriter, d v1.Hash) {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", `"`+d.String()+`"`)
}

// serveBlobFile answers req with blob d from f.
func serveBlobFile(w http.ResponseWriter, req *http.Request, d v1.Hash, f io.ReadSeeker) {
	blobHeaders(w, d)
	// ServeContent answers Range and If-Range, and HEAD without a body.
	http.ServeContent(w, req, "", time.Time{}, f)
}

func (r *Registry) serveTags(w http.ResponseWriter, req *http.Request, name string) {
	if r.repos[name] == nil {
		apiError(w, http.StatusNotFound, "NAME_UNKNOWN", fmt.Sprintf("repository %q is not served here", name))
		return
	}
	tags := r.Tags(name)
	q := req.URL.Query()
	if last := q.Get("last"); last != "" {
		i, _ := slices.BinarySearch(tags, last)
		if i < len(tags) && tags[i] == last {
			i++
		}
		tags = tags[i:]
	}
	if s := q.Get("n"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			apiError(w, http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", fmt.Sprintf("n=%q: expected a count", s))
			return
		}
		if n < len(tags) {
			tags = tags[:n]
			if n > 0 {
				next := url.Values{"n": {s}, "last": {tags[n-1]}}
				w.Header().Set("Link", fmt.Sprintf(`</v2/%s/tags/list?%s>; rel="next"`, name, next.Encode()))
			}
		}
	}
	writeJSON(w, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{name, tags})
}

func (rp *repo) serveReferrers(w http.ResponseWriter, req *http.Request, ref string) {
	d, err := v1.NewHash(ref)
	if err != nil {
		apiError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("%q is not a digest: %v", ref, err))
		return
	}
	refs := rp.referrers[d]
	if at := req.URL.Query().Get("artifactType"); at != "" {
		refs = slices.DeleteFunc(slices.Clone(refs), func(desc v1.Descriptor) bool { return desc.ArtifactType != at })
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	if refs == nil {
		refs = []v1.Descriptor{}
	}
	writeJSON(w, string(types.OCIImageIndex), struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     types.MediaType `json:"mediaType"`
		Manifests     []v1.Descriptor `json:"manifests"`
	}{2, types.OCIImageIndex, refs})
}

func writeJSON(w http.ResponseWriter, contentType string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		apiError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
}

// apiError answers with the distribution API's error body.
func apiError(w http.ResponseWriter, status int, code, msg string) {
	data, _ := json.Marshal(struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}{Errors: []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{{code, msg}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// validName checks a repository name against the distribution spec's
// grammar: path components of [a-z0-9]+ joined by '.', '_', '__' or runs
// of '-', separated by '/'.
func validName(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	for comp := range strings.SplitSeq(name, "/") {
		if !validComponent(comp) {
			return false
		}
	}
	return true
}

func validComponent(c string) bool {
	alnum := func(b byte) bool { return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }
	if c == "" || !alnum(c[0]) || !alnum(c[len(c)-1]) {
		return false
	}
	for i := 0; i < len(c); {
		if alnum(c[i]) {
			i++
			continue
		}
		// A separator: '.', '_', '__' or a run of '-', between alphanumerics.
		j := i
		switch c[i] {
		case '.':
			j++
		case '_':
			j++
			if c[j] == '_' {
				j++
			}
		case '-':
			for c[j] == '-' {
				j++
			}
		default:
			return false
		}
		if !alnum(c[j]) {
			return false
		}
		i = j
	}
	return true
}

// validTag checks a tag: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
func validTag(t string) bool {
	if t == "" || len(t) > 128 || t[0] == '.' || t[0] == '-' {
		return false
	}
	return !strings.ContainsFunc(t, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-')
	})
}

package registry

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ociboot/ociboot/internal/store"
)

// tagCall is one request to the upstream for a tag, which concurrent
// asks share.
type tagCall struct {
	done chan struct{}
	val  mirrored
	err  error
}

func (m *Mirror) serveManifest(w http.ResponseWriter, req *http.Request, repo, ref string) {
	var (
		mf  mirrored
		err error
	)
	if d, derr := v1.NewHash(ref); derr == nil {
		mf, err = m.manifestByDigest(req.Context(), repo, d)
	} else if validTag(ref) {
		mf, err = m.manifestByTag(req.Context(), repo, ref)
	} else {
		apiError(w, http.StatusBadRequest, "MANIFEST_INVALID", fmt.Sprintf("%q is neither a tag nor a digest", ref))
		return
	}
	if err != nil {
		fail(w, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", string(mf.mediaType))
	h.Set("Docker-Content-Digest", mf.digest.String())
	h.Set("Content-Length", strconv.Itoa(len(mf.raw)))
	h.Set("Etag", `"`+mf.digest.String()+`"`)
	if req.Method == http.MethodGet {
		_, _ = w.Write(mf.raw)
	}
}

// manifestByDigest returns manifest d, kept or fetched.
func (m *Mirror) manifestByDigest(ctx context.Context, repo string, d v1.Hash) (mirrored, error) {
	m.mu.Lock()
	mf, ok := m.manifests[d]
	m.mu.Unlock()
	if ok {
		return mf, nil
	}
	mf, err := m.fetchManifest(ctx, repo, d.String())
	if err != nil {
		return mf, err
	}
	if mf.digest != d {
		return mf, fmt.Errorf("upstream: manifest %s@%s hashes to %s", repo, d, mf.digest)
	}
	return mf, nil
}

// manifestByTag asks the upstream what tag stands for, one request for
// all those asking at once. When the upstream cannot be reached, its last
// answer stands in, said in the log.
func (m *Mirror) manifestByTag(ctx context.Context, repo, tag string) (mirrored, error) {
	key := repo + ":" + tag
	m.mu.Lock()
	c := m.tagCalls[key]
	if c == nil {
		c = &tagCall{done: make(chan struct{})}
		m.tagCalls[key] = c
		go func() {
			// The mirror's context, not the first client's: the others
			// wait for the answer too.
			c.val, c.err = m.fetchManifest(m.ctx, repo, tag)
			m.mu.Lock()
			delete(m.tagCalls, key)
			if c.err == nil {
				m.tags[key] = c.val.digest
			} else if d, ok := m.tags[key]; ok && unreachable(c.err) {
				fmt.Fprintf(m.log, "mirror: %s: serving the last answer for %s, %s: %v\n", m.base.Host, key, d, c.err)
				c.val, c.err = m.manifests[d], nil
			}
			m.mu.Unlock()
			close(c.done)
		}()
	}
	m.mu.Unlock()
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		return mirrored{}, ctx.Err()
	}
}

// fetchManifest gets manifest ref of repo from the upstream, checks it
// against the digest the upstream gives, and keeps it by digest.
func (m *Mirror) fetchManifest(ctx context.Context, repo, ref string) (mirrored, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := m.get(ctx, http.MethodGet, repo, "manifests/"+ref, "", http.Header{"Accept": {manifestTypes}})
	if err != nil {
		return mirrored{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return mirrored{}, newUpstreamError(resp)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxManifest+1))
	if err != nil {
		return mirrored{}, fmt.Errorf("upstream: manifest %s:%s: %w", repo, ref, err)
	}
	if len(raw) > maxManifest {
		return mirrored{}, fmt.Errorf("upstream: manifest %s:%s is over %d bytes", repo, ref, maxManifest)
	}
	d := sha256Hash(raw)
	if s := resp.Header.Get("Docker-Content-Digest"); s != "" && s != d.String() {
		return mirrored{}, fmt.Errorf("upstream: manifest %s:%s hashes to %s, not to the %s it was given as", repo, ref, d, s)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "" || mt == "application/json" || mt == "text/plain" {
		mt = ""
	}
	_, mediaType, err := parseManifest(d, types.MediaType(mt), raw)
	if err != nil {
		return mirrored{}, fmt.Errorf("upstream: %s:%s: %w", repo, ref, err)
	}
	mf := mirrored{manifest{mediaType, raw}, d}
	m.mu.Lock()
	m.manifests[d] = mf
	m.mu.Unlock()
	return mf, nil
}

func (m *Mirror) serveBlob(w http.ResponseWriter, req *http.Request, repo, ref string) {
	d, err := v1.NewHash(ref)
	if err != nil {
		apiError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("%q is not a digest: %v", ref, err))
		return
	}
	if f, _, err := m.store.BlobFile(d); err == nil {
		defer f.Close()
		serveBlobFile(w, req, d, f)
		return
	}
	if req.Method == http.MethodHead {
		m.mu.Lock()
		dl := m.downloads[d]
		m.mu.Unlock()
		if dl == nil {
			// Asking is not fetching.
			m.relay(w, req, repo)
			return
		}
	}
	m.download(repo, d).serve(w, req, m.store)
}

// download returns the download of blob d from repo, started when none
// is under way.
func (m *Mirror) download(repo string, d v1.Hash) *download {
	m.mu.Lock()
	defer m.mu.Unlock()
	if dl := m.downloads[d]; dl != nil {
		return dl
	}
	dl := &download{digest: d, ready: make(chan struct{}), more: make(chan struct{}), refs: 1}
	m.downloads[d] = dl
	go func() {
		err := m.fetchBlob(repo, dl)
		if err != nil {
			fmt.Fprintf(m.log, "mirror: %s/%s@%s: %v\n", m.base.Host, repo, d, err)
		}
		dl.finish(err)
		m.mu.Lock()
		delete(m.downloads, d)
		m.mu.Unlock()
	}()
	return dl
}

// fetchBlob downloads dl's blob into the store, telling its readers of
// every piece.
func (m *Mirror) fetchBlob(repo string, dl *download) error {
	resp, err := m.get(m.ctx, http.MethodGet, repo, "blobs/"+dl.digest.String(), "", nil)
	if err != nil {
		dl.start(nil, 0, err)
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := newUpstreamError(resp)
		dl.start(nil, 0, err)
		return err
	}
	sw, err := m.store.Writer(dl.digest, resp.ContentLength)
	if err != nil {
		dl.start(nil, 0, err)
		return err
	}
	rf, err := os.Open(sw.Name())
	if err != nil {
		sw.Abort()
		dl.start(nil, 0, err)
		return err
	}
	dl.start(rf, resp.ContentLength, nil)
	fmt.Fprintf(m.log, "mirror: fetching %s/%s@%s (%d bytes)\n", m.base.Host, repo, dl.digest, resp.ContentLength)
	buf := make([]byte, 256<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := sw.Write(buf[:n]); err != nil {
				sw.Abort()
				return err
			}
			dl.progress(int64(n))
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			sw.Abort()
			return fmt.Errorf("upstream: blob after %d bytes: %w", dl.written, rerr)
		}
	}
	return sw.Commit()
}

// download is a blob on its way from the upstream into the store, read
// by every client that asked for it while it comes: from the store's
// temporary file, which each reads at its own offset.
type download struct {
	digest v1.Hash
	ready  chan struct{} // closed once the upstream answered (or failed to)

	mu      sync.Mutex
	file    *os.File // the temporary file, open for reading
	size    int64    // -1: the upstream did not say
	written int64
	more    chan struct{} // closed, and replaced, when written grows or the download ends
	done    bool
	err     error
	refs    int // the download and its readers; the file is closed at 0
}

// start records the upstream's answer: the file being written, its size.
func (dl *download) start(f *os.File, size int64, err error) {
	dl.mu.Lock()
	dl.file, dl.size, dl.err = f, size, err
	dl.mu.Unlock()
	close(dl.ready)
}

func (dl *download) progress(n int64) {
	dl.mu.Lock()
	dl.written += n
	close(dl.more)
	dl.more = make(chan struct{})
	dl.mu.Unlock()
}

// finish records the end of the download and drops its hold on the file.
func (dl *download) finish(err error) {
	dl.mu.Lock()
	dl.done = true
	if dl.err == nil {
		dl.err = err
	}
	close(dl.more)
	dl.mu.Unlock()
	dl.release()
}

// acquire holds the file open for a reader; false when it is closed.
func (dl *download) acquire() bool {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if dl.refs == 0 || dl.file == nil {
		return false
	}
	dl.refs++
	return true
}

func (dl *download) release() {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	dl.refs--
	if dl.refs == 0 && dl.file != nil {
		dl.file.Close()
	}
}

// wait waits for the end of the download; false when ctx ended first.
func (dl *download) wait(ctx context.Context) bool {
	for {
		_, done, more, _ := dl.state()
		if done {
			return true
		}
		select {
		case <-more:
		case <-ctx.Done():
			return false
		}
	}
}

// state returns what is written, whether the download ended, a channel
// closed at the next change, and how the download ended.
func (dl *download) state() (written int64, done bool, more <-chan struct{}, err error) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	return dl.written, dl.done, dl.more, dl.err
}

// serve answers req with the blob as it arrives; a client that comes
// once the download is over is served from the store. A download that
// fails after its start cuts the answer short (the client sees fewer
// bytes than Content-Length said).
func (dl *download) serve(w http.ResponseWriter, req *http.Request, st *store.Store) {
	select {
	case <-dl.ready:
	case <-req.Context().Done():
		return
	}
	// Without a size, the answer cannot be cut short to say the download
	// failed: wait for the whole blob.
	if dl.size < 0 && !dl.wait(req.Context()) {
		return
	}
	if !dl.acquire() {
		// Over already: in the store, or failed.
		f, _, err := st.BlobFile(dl.digest)
		if err != nil {
			_, _, _, derr := dl.state()
			if derr == nil {
				derr = err
			}
			fail(w, derr)
			return
		}
		defer f.Close()
		serveBlobFile(w, req, dl.digest, f)
		return
	}
	defer dl.release()
	blobHeaders(w, dl.digest)
	start, end := int64(0), dl.size
	status := http.StatusOK
	if r := req.Header.Get("Range"); r != "" && dl.size >= 0 {
		if s, ok := openRange(r, dl.size); ok {
			start, status = s, http.StatusPartialContent
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", s, dl.size-1, dl.size))
		}
	}
	if end >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(end-start, 10))
	}
	w.WriteHeader(status)
	if req.Method == http.MethodHead {
		return
	}
	// The headers go now: the bytes may be slow to come, and clients
	// give up on answers whose headers do not come.
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	buf := make([]byte, 256<<10)
	for off := start; ; {
		written, done, more, err := dl.state()
		if !done || err != nil {
			// The last byte waits for the blob to be verified and
			// kept: a client never has all of a wrong blob, and one
			// that has all of it finds it kept.
			written = min(written, dl.size-1)
		}
		if off < written {
			n, rerr := dl.file.ReadAt(buf[:min(int64(len(buf)), written-off)], off)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				off += int64(n)
			}
			if rerr != nil && rerr != io.EOF {
				return
			}
			continue
		}
		if done {
			// A failure leaves the answer short of its Content-Length,
			// which the client sees.
			return
		}
		// What is written goes out before the wait for more.
		_ = rc.Flush()
		select {
		case <-more:
		case <-req.Context().Done():
			return
		}
	}
}

// openRange reads a Range header of the form bytes=N- (as clients send to
// resume) against a blob of size bytes.
func openRange(h string, size int64) (int64, bool) {
	s, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return 0, false
	}
	from, to, ok := strings.Cut(s, "-")
	if !ok || to != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(from, 10, 64)
	if err != nil || n < 0 || n >= size {
		return 0, false
	}
	return n, true
}

package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	// DefaultStall is how long a body being read may wait for data
	// before the connection is taken as broken and the download resumed.
	DefaultStall = 60 * time.Second
	// maxResumes bounds how many times one download is resumed.
	maxResumes = 5
)

// errStalled is the cause given when a body received nothing for the
// stall timeout.
var errStalled = errors.New("no data received")

// ResumeTransport makes downloads survive broken connections: when the
// body of a GET answered with 200 fails mid-way, or receives nothing for
// Stall while it is read, the rest is asked for with `Range: bytes=N-`
// (and If-Range when the server gave a validator: a strong ETag or
// Last-Modified). Only a 206 whose Content-Range starts at N and has the
// original length is accepted; otherwise the read fails with the
// original error. Whoever reads the body still checks its digest.
//
// A bearer token may expire while a big blob downloads: when the range
// request is refused with 401, Reauth, if set, gives a transport that has
// authenticated afresh (nil when it does not apply to the request), and
// the range request is sent once more through it.
type ResumeTransport struct {
	Inner http.RoundTripper
	// Stall is the longest wait for data while the body is read; 0 means
	// DefaultStall.
	Stall time.Duration
	// Match chooses the requests whose bodies resume; nil means every GET
	// without a Range header of its own.
	Match  func(*http.Request) bool
	Reauth func(ctx context.Context, req *http.Request) (http.RoundTripper, error)
}

func (t *ResumeTransport) stall() time.Duration {
	if t.Stall > 0 {
		return t.Stall
	}
	return DefaultStall
}

// RoundTrip sends req; the body of a matching 200 resumes.
func (t *ResumeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || req.Header.Get("Range") != "" || (t.Match != nil && !t.Match(req)) {
		return t.Inner.RoundTrip(req)
	}
	b := &resumingBody{t: t, req: req}
	resp, err := b.open(t.Inner, req.Header)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || resp.Uncompressed {
		// Not resumable: the body (an error document, say) is read as is.
		resp.Body = &releasingBody{resp.Body, b.release}
		return resp, nil
	}
	b.size = resp.ContentLength
	if etag := resp.Header.Get("ETag"); etag != "" && !strings.HasPrefix(etag, "W/") {
		b.validator = etag
	} else {
		b.validator = resp.Header.Get("Last-Modified")
	}
	b.body = resp.Body
	resp.Body = b
	return resp, nil
}

// resumingBody is a body that resumes after errors and stalls. Like
// any body, it is read from one goroutine at a time.
type resumingBody struct {
	t         *ResumeTransport
	req       *http.Request
	size      int64  // Content-Length of the 200, or -1
	validator string // strong ETag or Last-Modified, for If-Range
	off       int64  // bytes delivered so far
	resumes   int
	err       error             // sticky, once a read failed for good
	authed    http.RoundTripper // set once the credentials were renewed

	body    io.ReadCloser
	ctx     context.Context // of the current request; cancelled on a stall
	watch   *time.Timer     // cancels ctx when the body stalls
	release func()          // stops watch and ends ctx
}

// open sends req with header through rt under a context of its own,
// which the stall watch cancels.
func (b *resumingBody) open(rt http.RoundTripper, header http.Header) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(b.req.Context())
	r := b.req.Clone(ctx)
	r.Header = header
	resp, err := rt.RoundTrip(r)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	b.ctx = ctx
	// The watch runs only while a Read waits, so that a reader that is
	// slow to come back (applying a layer) is not taken for a stall.
	b.watch = time.AfterFunc(time.Hour, func() { cancel(errStalled) })
	b.watch.Stop()
	b.release = func() {
		b.watch.Stop()
		cancel(nil)
	}
	return resp, nil
}

func (b *resumingBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	b.watch.Reset(b.t.stall())
	n, err := b.body.Read(p)
	b.watch.Stop()
	b.off += int64(n)
	if err == nil || err == io.EOF {
		return n, err
	}
	if errors.Is(context.Cause(b.ctx), errStalled) {
		err = fmt.Errorf("%w for %s: %v", errStalled, b.t.stall(), err)
	}
	if b.resumes >= maxResumes || b.req.Context().Err() != nil || (b.size >= 0 && b.off >= b.size) {
		b.err = err
		return n, err
	}
	if rerr := b.resume(); rerr != nil {
		b.err = fmt.Errorf("%w (resuming the download at byte %d failed: %v)", err, b.off, rerr)
		return n, b.err
	}
	return n, nil
}

// resume replaces the broken body with the rest of the file.
func (b *resumingBody) resume() error {
	b.resumes++
	b.body.Close()
	b.release()
	h := b.req.Header.Clone()
	h.Set("Range", fmt.Sprintf("bytes=%d-", b.off))
	if b.validator != "" {
		h.Set("If-Range", b.validator)
	}
	rt := b.t.Inner
	if b.authed != nil {
		rt = b.authed
		h.Del("Authorization")
	}
	resp, err := b.open(rt, h)
	if err == nil && resp.StatusCode == http.StatusUnauthorized && b.authed == nil && b.t.Reauth != nil {
		// The credentials expired: authenticate again, and ask once more.
		authed, aerr := b.t.Reauth(b.req.Context(), b.req)
		switch {
		case aerr != nil:
			resp.Body.Close()
			b.release()
			b.body, b.release = http.NoBody, func() {}
			return fmt.Errorf("the server refused the credentials (401); authenticating again: %w", aerr)
		case authed != nil:
			resp.Body.Close()
			b.release()
			b.authed = authed
			h.Del("Authorization")
			resp, err = b.open(authed, h)
		}
	}
	if err != nil {
		b.body, b.release = http.NoBody, func() {}
		return err
	}
	if err := b.checkPartial(resp); err != nil {
		resp.Body.Close()
		b.release()
		b.body = http.NoBody
		return err
	}
	b.body = resp.Body
	return nil
}

// checkPartial accepts only a 206 holding bytes off… of the same file.
func (b *resumingBody) checkPartial(resp *http.Response) error {
	if resp.StatusCode != http.StatusPartialContent {
		return fmt.Errorf("server answered %s to a range request, expected 206 Partial Content", resp.Status)
	}
	cr := resp.Header.Get("Content-Range")
	start, end, total, ok := parseContentRange(cr)
	switch {
	case !ok:
		return fmt.Errorf("206 with Content-Range %q, expected bytes %d-END/TOTAL", cr, b.off)
	case start != b.off:
		return fmt.Errorf("206 with Content-Range %q starts at byte %d, expected %d", cr, start, b.off)
	case b.size >= 0 && (total != b.size || end != b.size-1):
		return fmt.Errorf("206 with Content-Range %q, expected bytes %d-%d/%d", cr, b.off, b.size-1, b.size)
	}
	return nil
}

// parseContentRange reads "bytes START-END/TOTAL" (TOTAL may be "*",
// given as -1).
func parseContentRange(s string) (start, end, total int64, ok bool) {
	rng, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rng, "/")
	if !found {
		return 0, 0, 0, false
	}
	first, last, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	start, err1 = strconv.ParseInt(first, 10, 64)
	end, err2 = strconv.ParseInt(last, 10, 64)
	total = -1
	if tot != "*" {
		total, err3 = strconv.ParseInt(tot, 10, 64)
	}
	if err1 != nil || err2 != nil || err3 != nil || start < 0 || end < start || (total >= 0 && end >= total) {
		return 0, 0, 0, false
	}
	return start, end, total, true
}

func (b *resumingBody) Close() error {
	b.release()
	return b.body.Close()
}

// releasingBody ends the request's context when the body is closed.
type releasingBody struct {
	io.ReadCloser
	release func()
}

func (r *releasingBody) Close() error {
	err := r.ReadCloser.Close()
	r.release()
	return err
}

package registry_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/registry"
	"github.com/ociboot/ociboot/internal/registrytest"
)

// pullAll fetches everything ref's image holds through the registry at
// addr, each blob checked against its digest, and returns its digest.
func pullAll(addr, ref string) (v1.Hash, error) {
	n, err := name.ParseReference(addr+"/"+ref, name.Insecure)
	if err != nil {
		return v1.Hash{}, err
	}
	img, err := remote.Image(n)
	if err != nil {
		return v1.Hash{}, err
	}
	if _, err := img.RawConfigFile(); err != nil {
		return v1.Hash{}, err
	}
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, err
	}
	for _, l := range layers {
		rc, err := l.Compressed() // verified against the digest as it is read
		if err != nil {
			return v1.Hash{}, err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return v1.Hash{}, err
		}
	}
	return img.Digest()
}

// TestMirror puts the mirror in front of a CNCF distribution registry (the
// origin, behind a proxy that counts its requests) and checks that
// twenty clients pulling one image at once cost the origin one download
// of each blob, that a second round costs it no blob at all, and that the
// mirror serves its last answer for a tag when the origin is down, but
// relays the origin's "no such tag".
func TestMirror(t *testing.T) {
	origin := registrytest.Start(t)
	data := make([]byte, 4<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	img := registrytest.BusyboxImage(t, registrytest.LayerFromFiles(t, map[string]string{"data/random": string(data)}))
	registrytest.Push(t, origin, "lab/job:v1", img)
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	var down atomic.Bool
	counter := registrytest.NewProxy(t, origin, registrytest.ProxyOptions{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down.Load() && r.URL.Path != "/v2/" {
				http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	client, err := fetch.New(fetch.Options{Retry: fetch.Retry{Attempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	var log registrytest.LockedBuffer
	m, err := registry.NewMirror(t.Context(), registry.MirrorOptions{Upstream: counter.URL, Dir: t.TempDir(), Client: client, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	addr := serve(t, m)

	blobGets := func() map[string]int {
		n := map[string]int{}
		for _, r := range counter.Requests() {
			if r.Method == http.MethodGet && r.IsBlob() {
				n[r.Path[strings.LastIndex(r.Path, "/")+1:]]++
			}
		}
		return n
	}
	round := func(clients int) {
		t.Helper()
		errs := make(chan error, clients)
		start := make(chan struct{})
		for range clients {
			go func() {
				<-start
				got, err := pullAll(addr, "lab/job:v1")
				if err == nil && got != want {
					err = fmt.Errorf("pulled %s, want %s", got, want)
				}
				errs <- err
			}()
		}
		close(start)
		for range clients {
			if err := <-errs; err != nil {
				t.Errorf("a client: %v", err)
			}
		}
	}

	round(20)
	gets := blobGets()
	if len(gets) != 3 { // config and two layers
		t.Errorf("the origin served the blobs %v, want 3 blobs", gets)
	}
	for blob, n := range gets {
		if n != 1 {
			t.Errorf("the origin served %s %d times to 20 clients through the mirror, want once", blob, n)
		}
	}

	round(5)
	if again := blobGets(); fmt.Sprint(again) != fmt.Sprint(gets) {
		t.Errorf("a second round fetched blobs from the origin again: %v, then %v", gets, again)
	}

	down.Store(true)
	round(3)
	if !strings.Contains(log.String(), "serving the last answer for lab/job:v1, "+want.String()) {
		t.Errorf("no word of the stale tag in the mirror's log:\n%s", log.String())
	}
	_, err = pullAll(addr, "lab/job:v2")
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("a tag never seen, with the origin down: %v, want the origin's 503", err)
	}

	down.Store(false)
	_, err = pullAll(addr, "lab/job:v2")
	if err == nil || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
		t.Errorf("a tag the origin does not have: %v, want its MANIFEST_UNKNOWN", err)
	}
	resp, err := http.Get("http://" + addr + "/v2/lab/job/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `{"name":"lab/job","tags":["v1"]}` {
		t.Errorf("tags list through the mirror: %s %s, want the origin's", resp.Status, body)
	}
}

// TestMirrorStreams holds the origin's answer for a blob at half its
// bytes: the mirror's clients get that half before the origin sends the
// rest (from the start, and from a Range), and a download the origin cuts
// short reaches the clients as a short answer, is not kept, and is
// fetched whole by the next client.
func TestMirrorStreams(t *testing.T) {
	origin := registrytest.Start(t)
	data := make([]byte, 2<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	layer := registrytest.LayerFromFiles(t, map[string]string{"random": string(data)})
	registrytest.Push(t, origin, "lab/stream:v1", registrytest.Image(t, v1.Config{}, layer))
	d, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	blob, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	half := len(blob) / 2

	release := make(chan bool) // true: send the rest; false: cut the answer
	counter := registrytest.NewProxy(t, origin, registrytest.ProxyOptions{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, d.String()) || r.Method != http.MethodGet {
				next.ServeHTTP(w, r)
				return
			}
			if r.Header.Get("Range") != "" {
				// No resuming a cut download here: it fails.
				http.Error(w, "no ranges", http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
			_, _ = w.Write(blob[:half])
			http.NewResponseController(w).Flush()
			if !<-release {
				panic(http.ErrAbortHandler) // the connection is cut
			}
			_, _ = w.Write(blob[half:])
		})
	}})
	client, err := fetch.New(fetch.Options{Retry: fetch.Retry{Attempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	newMirror := func() string {
		m, err := registry.NewMirror(t.Context(), registry.MirrorOptions{Upstream: counter.URL, Dir: t.TempDir(), Client: client, Log: tlog{t}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		return "http://" + serve(t, m) + "/v2/lab/stream/blobs/" + d.String()
	}
	get := func(url string, rangeFrom int) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rangeFrom > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", rangeFrom))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	// A client from the start reads the first half while the origin holds
	// the rest, and one from the middle comes meanwhile; then the origin
	// sends the rest, or cuts its answer.
	streams := func(url string, send bool) (whole, fromMiddle []byte, wholeErr, middleErr error) {
		t.Helper()
		first := get(url, 0)
		got := make([]byte, half)
		if _, err := io.ReadFull(first.Body, got); err != nil {
			t.Fatalf("the first half, while the origin holds the rest: %v", err)
		}
		if !bytes.Equal(got, blob[:half]) {
			t.Fatal("the first half differs from the blob's")
		}
		middle := get(url, half)
		if middle.StatusCode != http.StatusPartialContent || middle.Header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", half, len(blob)-1, len(blob)) {
			t.Errorf("Range bytes=%d- while downloading: %s, Content-Range %q", half, middle.Status, middle.Header.Get("Content-Range"))
		}
		release <- send
		rest, wholeErr := io.ReadAll(first.Body)
		fromMiddle, middleErr = io.ReadAll(middle.Body)
		return append(got, rest...), fromMiddle, wholeErr, middleErr
	}
	blobGets := func() int {
		return counter.Count(func(r registrytest.ProxyRequest) bool {
			return r.IsBlob() && r.Method == http.MethodGet && r.Range == ""
		})
	}

	url := newMirror()
	whole, fromMiddle, wholeErr, middleErr := streams(url, true)
	if wholeErr != nil || middleErr != nil || !bytes.Equal(whole, blob) || !bytes.Equal(fromMiddle, blob[half:]) {
		t.Errorf("streamed: %d bytes (%v) from the start, %d (%v) from the middle; want the blob's %d and %d", len(whole), wholeErr, len(fromMiddle), middleErr, len(blob), len(blob)-half)
	}
	if n := blobGets(); n != 1 {
		t.Errorf("the origin was asked for the blob %d times for two clients, want once", n)
	}

	url = newMirror()
	_, _, wholeErr, middleErr = streams(url, false)
	if wholeErr == nil || middleErr == nil {
		t.Errorf("the origin cut the blob short: the clients read to the end without error (%v, %v)", wholeErr, middleErr)
	}
	go func() { release <- true }()
	got, err := io.ReadAll(get(url, 0).Body)
	if err != nil || !bytes.Equal(got, blob) {
		t.Errorf("after a cut download, the next client got %d bytes (%v), want the %d of the blob", len(got), err, len(blob))
	}
	if n := blobGets(); n != 3 {
		t.Errorf("the origin was asked for the whole blob %d times, want 3 (streamed, cut, fetched again)", n)
	}
}

type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) { l.t.Logf("%s", p); return len(p), nil }

package volume

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/registrytest"
	"github.com/ociboot/ociboot/internal/volume/s3test"
)

// recorder keeps the method, path and SSE-C headers of every request it
// sends on.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []http.Request
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.seen = append(r.seen, http.Request{Method: req.Method, URL: req.URL, Header: req.Header.Clone()})
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

// TestEncryptKey checks encrypt_key= (SSE-C) against versitygw over TLS.
// versitygw takes the SSE-C headers and stores the content as it is, so
// what is checked is what ociboot sends, as the requests leave it: every
// request for an object's content (PUT, GET, HEAD) carries the
// algorithm, the key and its MD5; listings and removals do not; the key
// is in no error or log. And an http:// endpoint is refused.
func TestEncryptKey(t *testing.T) {
	ca := registrytest.NewCA(t)
	_, certFile, keyFile := ca.ServerCert(t)
	srv := s3test.StartTLS(t, certFile, keyFile, "bkt")
	ep := bootcfg.S3{Alias: "gw", URL: srv.URL, AccessKey: srv.Access, SecretKey: srv.Secret}
	key := "0123456789abcdef0123456789abcdef"
	def := bootcfg.Volume{Name: "sec", PullFrom: bootcfg.Bucket{Alias: "gw", Bucket: "bkt"}, PushTo: bootcfg.Bucket{Alias: "gw", Bucket: "bkt"},
		PullOn: []bootcfg.VolumeEvent{bootcfg.ContainerStart}, PushOn: []bootcfg.VolumeEvent{bootcfg.ContainerEnd}, EncryptKey: key, Overwrite: true, Preserve: true}
	rec := &recorder{next: ca.Transport()}
	var log bytes.Buffer
	s, err := Open(t.TempDir(), []bootcfg.Volume{def}, nil, Options{Endpoints: []bootcfg.S3{ep}, Transport: rec, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := s.Dir("sec")
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"a": "secret a", "b/c": "secret c"})
	ctx := context.Background()
	if err := s.At(ctx, "container_end"); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"a": "secret A"}) // the same size: asked about
	if err := s.At(ctx, "container_start"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "a")); string(got) != "secret a" {
		t.Errorf("pulled a: %q", got)
	}
	sum := md5.Sum([]byte(key))
	want := map[string]string{
		"X-Amz-Server-Side-Encryption-Customer-Algorithm": "AES256",
		"X-Amz-Server-Side-Encryption-Customer-Key":       base64.StdEncoding.EncodeToString([]byte(key)),
		"X-Amz-Server-Side-Encryption-Customer-Key-Md5":   base64.StdEncoding.EncodeToString(sum[:]),
	}
	content := map[string]int{}
	for _, r := range rec.seen {
		object := strings.TrimPrefix(r.URL.Path, "/bkt/") != "" && r.URL.RawQuery == ""
		if r.Method == http.MethodPut || object && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			content[r.Method]++
			for h, v := range want {
				if r.Header.Get(h) != v {
					t.Errorf("%s %s: %s is %q, want %q", r.Method, r.URL.Path, h, r.Header.Get(h), v)
				}
			}
		} else if r.Header.Get("X-Amz-Server-Side-Encryption-Customer-Key") != "" {
			t.Errorf("%s %s?%s carries the key", r.Method, r.URL.Path, r.URL.RawQuery)
		}
	}
	if content["PUT"] != 2 || content["GET"] != 1 || content["HEAD"] != 1 {
		t.Errorf("requests for objects' content: %v; want 2 PUTs, then a HEAD and a GET for a (c is in sync)", content)
	}
	if strings.Contains(log.String(), key) {
		t.Errorf("the log shows the key:\n%s", log.String())
	}

	// A push that fails leaves the volume dirty; the boot that pushes
	// it must give the key again, which the journal does not keep.
	down := ep
	down.URL = "https://127.0.0.1:1"
	vols := t.TempDir()
	s, err = Open(vols, []bootcfg.Volume{def}, nil, Options{Endpoints: []bootcfg.S3{down}, Transport: rec})
	if err != nil {
		t.Fatal(err)
	}
	if dir, err = s.Dir("sec"); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"late": "late secret"})
	if err := s.At(ctx, "pipeline_end"); err == nil {
		t.Fatal("a push to nowhere succeeded")
	}
	if journal, _ := os.ReadFile(filepath.Join(vols, "sec", journalFile)); !strings.Contains(string(journal), `"encrypted":true`) || strings.Contains(string(journal), key) {
		t.Errorf("the journal entry: %s", journal)
	}
	keyless := def
	keyless.EncryptKey = ""
	s, err = Open(vols, []bootcfg.Volume{keyless}, nil, Options{Endpoints: []bootcfg.S3{ep}, Transport: rec})
	if err != nil {
		t.Fatal(err)
	}
	if failed := s.PushEarlier(ctx); len(failed) != 1 || !strings.Contains(failed[0], "encrypted with its encrypt_key=, which this boot does not give") {
		t.Errorf("PushEarlier without the key: %q", failed)
	}
	rec.seen = nil
	s, err = Open(vols, []bootcfg.Volume{def}, nil, Options{Endpoints: []bootcfg.S3{ep}, Transport: rec})
	if err != nil {
		t.Fatal(err)
	}
	if failed := s.PushEarlier(ctx); len(failed) != 0 {
		t.Errorf("PushEarlier with the key: %q", failed)
	}
	if puts := slices.DeleteFunc(rec.seen, func(r http.Request) bool { return r.Method != http.MethodPut }); len(puts) != 1 ||
		puts[0].URL.Path != "/bkt/late" || puts[0].Header.Get("X-Amz-Server-Side-Encryption-Customer-Algorithm") != "AES256" {
		t.Errorf("the earlier boot's push: %d PUTs", len(puts))
	}

	plain := ep
	plain.URL = "http://" + srv.Addr
	if _, err := Open(t.TempDir(), []bootcfg.Volume{def}, nil, Options{Endpoints: []bootcfg.S3{plain}}); err == nil ||
		!strings.Contains(err.Error(), "volume sec: encrypt_key= needs an https:// endpoint") || strings.Contains(err.Error(), key) {
		t.Errorf("Open with an http:// endpoint: %v", err)
	}
}

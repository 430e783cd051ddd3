package volume

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/fetch/fetchtest"
	"github.com/ociboot/ociboot/internal/volume/s3test"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMirror pushes a directory to a real S3 server (versitygw) and
// pulls it back, with mc mirror's options: what is the same is not
// copied again, what differs is left alone unless overwrite, remove
// deletes what the source lacks, exclude leaves out, preserve keeps
// modes and times; objects others pushed (no ociboot metadata) compare
// by their MD5 ETag.
func TestMirror(t *testing.T) {
	srv := s3test.Start(t, "jobs")
	ep := bootcfg.S3{Alias: "gw", URL: srv.URL, AccessKey: srv.Access, SecretKey: srv.Secret}
	m, err := NewMirror(ep, bootcfg.Bucket{Alias: "gw", Bucket: "jobs", Prefix: "run-1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"results/a.txt": "a", "results/b.bin": "bbbb", "scratch.tmp": "x", "top": "t"})
	if err := os.Chmod(filepath.Join(src, "top"), 0o750); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	if err := os.Chtimes(filepath.Join(src, "top"), when, when); err != nil {
		t.Fatal(err)
	}
	o := SyncOptions{Preserve: true, Exclude: []string{"*.tmp"}}
	r, err := m.Push(ctx, src, o)
	if err != nil || r.Copied != 3 || r.Bytes != 6 {
		t.Fatalf("first push: %+v, %v; want 3 files, 6 bytes", r, err)
	}
	if r, err := m.Push(ctx, src, o); err != nil || r.Copied != 0 || r.Same != 3 {
		t.Errorf("second push: %+v, %v; want nothing copied", r, err)
	}
	if _, err := os.Stat(filepath.Join(srv.Dir, "jobs", "run-1", "results", "a.txt")); err != nil {
		t.Errorf("the server does not hold the pushed file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(srv.Dir, "jobs", "run-1", "scratch.tmp")); err == nil {
		t.Error("an excluded file was pushed")
	}

	dst := t.TempDir()
	if r, err := m.Pull(ctx, dst, o); err != nil || r.Copied != 3 {
		t.Fatalf("pull: %+v, %v", r, err)
	}
	st, err := os.Stat(filepath.Join(dst, "top"))
	if err != nil || st.Mode().Perm() != 0o750 || !st.ModTime().Equal(when) {
		t.Errorf("pulled top: %v, %v; want mode 0750 and its time", st, err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "results/b.bin")); string(got) != "bbbb" {
		t.Errorf("pulled results/b.bin: %q", got)
	}

	// A changed file is left alone without overwrite, replaced with it.
	writeFiles(t, src, map[string]string{"results/a.txt": "changed"})
	if r, _ := m.Push(ctx, src, o); r.LeftAlone != 1 || r.Copied != 0 {
		t.Errorf("push of a changed file without overwrite: %+v", r)
	}
	o.Overwrite = true
	if r, _ := m.Push(ctx, src, o); r.Copied != 1 {
		t.Errorf("push of a changed file with overwrite: %+v", r)
	}
	// With preserve, a new mode is a change, though the content is the same.
	if err := os.Chmod(filepath.Join(src, "results/b.bin"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r, _ := m.Push(ctx, src, o); r.Copied != 1 || r.Same != 2 {
		t.Errorf("push of a file whose mode changed: %+v, want it copied", r)
	}
	if r, _ := m.Push(ctx, src, o); r.Copied != 0 || r.Same != 3 {
		t.Errorf("push again: %+v, want nothing copied", r)
	}
	// remove deletes what the source lacks, both ways.
	if err := os.Remove(filepath.Join(src, "top")); err != nil {
		t.Fatal(err)
	}
	o.Remove = true
	if r, _ := m.Push(ctx, src, o); r.Removed != 1 {
		t.Errorf("push with remove: %+v", r)
	}
	writeFiles(t, dst, map[string]string{"extra": "e"})
	if r, err := m.Pull(ctx, dst, o); err != nil || r.Removed != 2 || r.Copied != 2 {
		t.Errorf("pull with remove and overwrite: %+v, %v; want top and extra removed, a.txt and b.bin (its mode) copied", r, err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "results/a.txt")); string(got) != "changed" {
		t.Errorf("pulled results/a.txt: %q", got)
	}

	// An object pushed by another tool: no ociboot metadata.
	if _, err := m.client.PutObject(ctx, "jobs", "run-1/by-mc", bytes.NewReader([]byte("mc")), 2, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if r, err := m.Pull(ctx, dst, o); err != nil || r.Copied != 1 {
		t.Errorf("pull of a foreign object: %+v, %v", r, err)
	}
	if r, err := m.Pull(ctx, dst, o); err != nil || r.Copied != 0 {
		t.Errorf("pull again: %+v, %v; want the foreign object the same by its ETag", r, err)
	}
}

// TestSetAt runs a volume's pulls and pushes at the pipeline's points,
// against versitygw: inputs seeded in the bucket come down at
// pipeline_start, results go up at pipeline_end.
func TestSetAt(t *testing.T) {
	srv := s3test.Start(t, "job-bucket")
	ep := bootcfg.S3{Alias: "gw", URL: srv.URL, AccessKey: srv.Access, SecretKey: srv.Secret}
	b := bootcfg.Bucket{Alias: "gw", Bucket: "job-bucket"}
	seeder, err := NewMirror(ep, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Seeded as another tool would: no ociboot metadata.
	if _, err := seeder.client.PutObject(context.Background(), "job-bucket", "input/data", strings.NewReader("seeded"), 6, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	def := bootcfg.Volume{Name: "job", PullFrom: b, PushTo: b, PullOn: []bootcfg.VolumeEvent{bootcfg.PipelineStart},
		PushOn: []bootcfg.VolumeEvent{bootcfg.PipelineEnd}, Overwrite: true}
	var log bytes.Buffer
	s, err := Open(t.TempDir(), []bootcfg.Volume{def}, nil, Options{Endpoints: []bootcfg.S3{ep}, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.At(ctx, "container_start"); err != nil || log.Len() != 0 {
		t.Fatalf("At(container_start): %v, log %q; want nothing done", err, log.String())
	}
	if err := s.At(ctx, "pipeline_start"); err != nil {
		t.Fatal(err)
	}
	dir, err := s.Dir("job")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "input/data")); err != nil || string(got) != "seeded" {
		t.Fatalf("the pulled input: %q, %v", got, err)
	}
	writeFiles(t, dir, map[string]string{"output/result": "done"})
	if err := s.At(ctx, "pipeline_end"); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(srv.Dir, "job-bucket", "output", "result")); err != nil || string(got) != "done" {
		t.Errorf("the pushed result on the server: %q, %v", got, err)
	}
	if !strings.Contains(log.String(), "pulled job from gw/job-bucket at pipeline_start: 1 files copied") ||
		!strings.Contains(log.String(), "pushed job to gw/job-bucket at pipeline_end: 1 files copied (4 bytes), 1 the same") {
		t.Errorf("log:\n%s", log.String())
	}
	// The server gone: the push fails, naming the volume and the bucket.
	ep.URL = "http://127.0.0.1:1"
	s, err = Open(t.TempDir(), []bootcfg.Volume{def}, nil, Options{Endpoints: []bootcfg.S3{ep}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := s.At(ctx, "pipeline_end"); err == nil || !strings.Contains(err.Error(), "volume job: push to gw/job-bucket") {
		t.Errorf("a push to nowhere: %v", err)
	}
}

// counting counts the requests it sends on, by method, and the object
// GETs apart from the listings.
type counting struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	key := r.Method
	if r.Method == http.MethodGet && r.URL.RawQuery != "" {
		key = "LIST"
	}
	c.counts[key]++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *counting) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.counts
	c.counts = map[string]int{}
	delete(out, "LIST")
	return out
}

// TestMirrorState checks that a sync that changes nothing asks about no
// object and sends none, thanks to the state of the last sync; that what
// changed on either side since is found, and only that; and that a
// damaged state costs requests, not correctness.
func TestMirrorState(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	ep := bootcfg.S3{Alias: "gw", URL: srv.URL, AccessKey: srv.Access, SecretKey: srv.Secret}
	c := &counting{counts: map[string]int{}}
	m, err := NewMirror(ep, bootcfg.Bucket{Alias: "gw", Bucket: "bkt", Prefix: "p"}, c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	src, state := t.TempDir(), filepath.Join(t.TempDir(), "state.json")
	files := map[string]string{}
	for i := range 40 {
		files[fmt.Sprintf("d%d/f%d", i%4, i)] = strings.Repeat("x", i)
	}
	writeFiles(t, src, files)
	o := SyncOptions{Overwrite: true, Preserve: true, Remove: true, State: state}
	check := func(what string, r Report, err error, want Report, requests map[string]int) {
		t.Helper()
		got := c.take()
		if err != nil || r.Copied != want.Copied || r.Same != want.Same || r.Removed != want.Removed || !maps.Equal(got, requests) {
			t.Errorf("%s: %+v, %v, requests %v; want %+v, requests %v", what, r, err, got, want, requests)
		}
	}
	c.take()
	r, err := m.Push(ctx, src, o)
	check("first push", r, err, Report{Copied: 40}, map[string]int{"PUT": 40})
	r, err = m.Push(ctx, src, o)
	check("push again", r, err, Report{Same: 40}, map[string]int{})

	// A mode changed here, an object replaced by someone else there.
	if err := os.Chmod(filepath.Join(src, "d1/f5"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := m.client.PutObject(ctx, "bkt", "p/d2/f6", strings.NewReader("other"), 5, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	c.take()
	r, err = m.Push(ctx, src, o)
	check("push of two changes", r, err, Report{Copied: 2, Same: 38}, map[string]int{"HEAD": 1, "PUT": 2}) // the sizes differ on the other

	dst, pulled := t.TempDir(), filepath.Join(t.TempDir(), "pulled.json")
	po := o
	po.State = pulled
	r, err = m.Pull(ctx, dst, po)
	check("first pull", r, err, Report{Copied: 40}, map[string]int{"GET": 40})
	r, err = m.Pull(ctx, dst, po)
	check("pull again", r, err, Report{Same: 40}, map[string]int{})
	if err := os.Remove(filepath.Join(dst, "d3/f7")); err != nil {
		t.Fatal(err)
	}
	r, err = m.Pull(ctx, dst, po)
	check("pull of a removed file", r, err, Report{Copied: 1, Same: 39}, map[string]int{"GET": 1})

	if err := os.WriteFile(state, []byte("{damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err = m.Push(ctx, src, o)
	check("push with a damaged state", r, err, Report{Same: 40}, map[string]int{"HEAD": 40})
	r, err = m.Push(ctx, src, o)
	check("push after it", r, err, Report{Same: 40}, map[string]int{})
}

// FuzzObjectPath checks that an object's key, whatever the listing
// says, names one file inside the volume, or none.
func FuzzObjectPath(f *testing.F) {
	for _, k := range []string{"a", "a/b", "../x", "a/../../b", "/etc/passwd", "a//b", "./a", ".", "", "a/", "..", "a/..b", "a\x00b"} {
		f.Add(k)
	}
	const dir = "/vol/data"
	f.Fuzz(func(t *testing.T, key string) {
		p, err := objectPath(dir, key)
		if err != nil {
			return
		}
		if !strings.HasPrefix(p, dir+"/") || filepath.Clean(p) != p {
			t.Fatalf("key %q: path %q, outside %s or not clean", key, p, dir)
		}
		if rel, _ := filepath.Rel(dir, p); filepath.ToSlash(rel) != key {
			t.Fatalf("key %q: path %q, whose key would be %q", key, p, rel)
		}
	})
}

// FuzzListing feeds a bucket listing as a server could send it (an
// in-process fake: what is fuzzed is the XML) to the mirror's listing
// reader: it must not panic, and every key it keeps must name a path
// inside the volume or be refused by objectPath.
func FuzzListing(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>bkt</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><IsTruncated>false</IsTruncated>` +
		`<Contents><Key>p/a</Key><Size>1</Size><ETag>"x"</ETag></Contents><Contents><Key>p/../../etc/passwd</Key><Size>-5</Size></Contents></ListBucketResult>`))
	f.Add([]byte(`<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>t</NextContinuationToken><Contents><Key>p/d/</Key></Contents></ListBucketResult>`))
	final := `<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>`
	var body atomic.Pointer[[]byte]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch q := r.URL.Query(); {
		case q.Has("location"):
			io.WriteString(w, `<LocationConstraint>us-east-1</LocationConstraint>`)
		case q.Get("continuation-token") != "":
			io.WriteString(w, final)
		default:
			w.Write(*body.Load())
		}
	}))
	defer srv.Close()
	m, err := NewMirror(bootcfg.S3{Alias: "gw", URL: srv.URL, AccessKey: "a", SecretKey: "s"}, bootcfg.Bucket{Alias: "gw", Bucket: "bkt", Prefix: "p"}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, listing []byte) {
		body.Store(&listing)
		objs, err := m.objects(context.Background(), SyncOptions{})
		if err != nil {
			return
		}
		for rel := range objs {
			if p, err := objectPath("/vol/data", rel); err == nil && !strings.HasPrefix(p, "/vol/data/") {
				t.Fatalf("key %q: path %q", rel, p)
			}
		}
	})
}

// busyPuts answers its first n PUTs 503 Slow Down, as a busy server
// would, and sends the rest on.
type busyPuts struct {
	n     int32
	count atomic.Int32
}

func (b *busyPuts) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && b.count.Add(1) <= b.n {
		body := `<Error><Code>SlowDown</Code><Message>busy</Message></Error>`
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Slow Down", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r}, nil
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestUploadRetried checks that an upload the server turns away for a
// while (503) is tried again by the mirror, on its policy's clock: a
// transport cannot send an upload's body again.
func TestUploadRetried(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	ep := bootcfg.S3{Alias: "gw", URL: srv.URL, AccessKey: srv.Access, SecretKey: srv.Secret}
	m, err := NewMirror(ep, bootcfg.Bucket{Alias: "gw", Bucket: "bkt"}, &busyPuts{n: 2})
	if err != nil {
		t.Fatal(err)
	}
	clock := fetchtest.NewClock()
	m.Retry.Clock = clock
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"f": "content"})
	if r, err := m.Push(context.Background(), src, SyncOptions{}); err != nil || r.Copied != 1 || len(clock.Sleeps()) != 2 {
		t.Errorf("push through two 503s: %+v, %v, waits %v; want it copied after two waits", r, err, clock.Sleeps())
	}
	if got, err := os.ReadFile(filepath.Join(srv.Dir, "bkt", "f")); err != nil || string(got) != "content" {
		t.Errorf("the object: %q, %v", got, err)
	}
}

package volume

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/ociboot/ociboot/internal/bootcfg"
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
	// remove deletes what the source lacks, both ways.
	if err := os.Remove(filepath.Join(src, "top")); err != nil {
		t.Fatal(err)
	}
	o.Remove = true
	if r, _ := m.Push(ctx, src, o); r.Removed != 1 {
		t.Errorf("push with remove: %+v", r)
	}
	writeFiles(t, dst, map[string]string{"extra": "e"})
	if r, err := m.Pull(ctx, dst, o); err != nil || r.Removed != 2 || r.Copied != 1 {
		t.Errorf("pull with remove and overwrite: %+v, %v; want top and extra removed, a.txt copied", r, err)
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

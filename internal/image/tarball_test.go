package image_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/fetch/fetchtest"
	"github.com/ociboot/ociboot/internal/image"
)

// tarballTree makes a small root file system: files with several modes
// (setuid too), a private directory, relative and absolute symlinks, a
// hard link, an empty directory and a file owned by someone else.
func tarballTree(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	mtime := time.Unix(1_600_000_000, 0)
	for _, f := range []struct {
		name, body string
		mode       fs.FileMode
	}{
		{"etc/os-release", "ID=ocibootest\n", 0o644},
		{"etc/shadow", "root:*:1::::::\n", 0o600},
		{"bin/tool", "#!/bin/sh\necho tool\n", 0o755},
		{"usr/bin/su", strings.Repeat("setuid ", 5000), fs.ModeSetuid | 0o755},
		{"usr/lib/libc.so.6", tarballNoise(1_500_000), 0o644},
	} {
		p := filepath.Join(src, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"root", "var/empty"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tarballMust(t, os.Chmod(filepath.Join(src, "root"), 0o700))
	tarballMust(t, os.Symlink("../../bin/tool", filepath.Join(src, "usr/bin/tool")))
	tarballMust(t, os.Symlink("/usr/lib", filepath.Join(src, "lib")))
	tarballMust(t, os.Link(filepath.Join(src, "bin/tool"), filepath.Join(src, "bin/tool-again")))
	if os.Geteuid() == 0 {
		tarballMust(t, os.Lchown(filepath.Join(src, "etc/shadow"), 1234, 5678))
	}
	// Same times everywhere (directories last) so that they can be compared.
	tarballMust(t, filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return tarballLchtimes(p, mtime)
	}))
	tarballMust(t, filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return os.Chtimes(p, mtime, mtime)
	}))
	return src
}

// tarballNoise returns n bytes that do not compress (a SHA-256 chain).
func tarballNoise(n int) string {
	var b []byte
	for sum := sha256.Sum256(nil); len(b) < n; sum = sha256.Sum256(sum[:]) {
		b = append(b, sum[:]...)
	}
	return string(b[:n])
}

func tarballLchtimes(p string, t time.Time) error {
	ts := []syscall.Timespec{syscall.NsecToTimespec(t.UnixNano()), syscall.NsecToTimespec(t.UnixNano())}
	return syscall.UtimesNano(p, ts) // follows symlinks: only for non-links
}

func tarballMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// tarballListing describes every entry below root (not root itself): name,
// mode, owner, link count, mtime, and the contents or link target.
func tarballListing(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(root, p)
		line := fmt.Sprintf("%s %s %d:%d", rel, fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" nlink=%d mtime=%d sha256=%x", st.Nlink, fi.ModTime().Unix(), sha256.Sum256(b))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case fi.IsDir():
			line += fmt.Sprintf(" mtime=%d", fi.ModTime().Unix())
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", root, err)
	}
	return out
}

// tarballFiles packs src with GNU tar and compresses it with the gzip, xz
// and zstd tools; it returns the file of each kind.
func tarballFiles(t *testing.T, src string) map[string][]byte {
	t.Helper()
	out := t.TempDir()
	tarPath := filepath.Join(out, "rootfs.tar")
	run := func(name string, args ...string) {
		if b, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %q: %v\n%s", name, args, err, b)
		}
	}
	run("tar", "-C", src, "--numeric-owner", "-cf", tarPath, ".")
	run("gzip", "-k", tarPath)
	run("xz", "-k", tarPath)
	// In blocks that give their sizes, as xz -T0 writes, which are
	// decoded in parallel.
	run("xz", "-k", "-T2", "--block-size=4KiB", "--suffix=.blocks.xz", tarPath)
	run("zstd", "-q", "-k", tarPath)
	files := map[string][]byte{}
	for kind, ext := range map[string]string{"tar": "", "gzip": ".gz", "xz": ".xz", "xz-blocks": ".blocks.xz", "zstd": ".zst"} {
		b, err := os.ReadFile(tarPath + ext)
		tarballMust(t, err)
		files[kind] = b
	}
	return files
}

// tarballServer serves files by path on 127.0.0.1 and counts requests.
func tarballServer(t *testing.T, handler http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server listens on %s, want 127.0.0.1 only", srv.URL)
	}
	return srv, &n
}

func tarballServe(files map[string][]byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}
}

func tarballContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func tarballSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// tarballRetries gives three attempts, with waits on a fake clock (which
// it returns) that never waits.
func tarballRetries() (image.TarballOptions, *fetchtest.Clock) {
	clock := fetchtest.NewClock()
	return image.TarballOptions{Fetch: fetch.Options{Retry: fetch.Retry{Attempts: 3, Clock: clock}}}, clock
}

func TestUnpackTarballCompressions(t *testing.T) {
	src := tarballTree(t)
	want := tarballListing(t, src)
	for _, line := range []string{"usr/bin/su urwxr-xr-x ", "root drwx------ ", "lib Lrwxrwxrwx 0:0 -> /usr/lib", "usr/bin/tool Lrwxrwxrwx 0:0 -> ../../bin/tool", "bin/tool-again -rwxr-xr-x 0:0 nlink=2 "} {
		if !slices.ContainsFunc(want, func(l string) bool { return strings.HasPrefix(l, line) }) {
			t.Fatalf("source listing %q lacks %q", want, line)
		}
	}
	files := tarballFiles(t, src)
	// Each kind under a name that suggests another: content decides.
	misnamed := map[string]string{"tar": "/rootfs.tar.zst", "gzip": "/rootfs.tar.xz", "xz": "/rootfs.tar", "xz-blocks": "/rootfs.tgz", "zstd": "/rootfs.tar.gz"}
	served := map[string][]byte{}
	fileDir := t.TempDir()
	for kind, name := range misnamed {
		served[name] = files[kind]
		tarballMust(t, os.WriteFile(filepath.Join(fileDir, name), files[kind], 0o644))
	}
	srv, _ := tarballServer(t, tarballServe(served))

	for kind, name := range misnamed {
		sum := tarballSHA256(files[kind])
		for _, url := range []string{
			srv.URL + name,
			srv.URL + name + "#sha256=" + strings.ToUpper(sum),
			"file://" + filepath.Join(fileDir, name) + "#sha256=" + sum,
		} {
			t.Run(kind+" "+url, func(t *testing.T) {
				dir := t.TempDir()
				var log bytes.Buffer
				err := image.UnpackTarball(tarballContext(t, time.Minute), url, dir, image.TarballOptions{Log: &log})
				if err != nil {
					t.Fatalf("UnpackTarball: %v", err)
				}
				if got := tarballListing(t, dir); !slices.Equal(got, want) {
					t.Errorf("tree differs from the source:\ngot  %q\nwant %q", got, want)
				}
				lines := strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n")
				if len(lines) != 2 || !strings.Contains(lines[0], " "+strings.TrimSuffix(kind, "-blocks")+" ") || !strings.Contains(lines[1], "sha256:"+sum) {
					t.Errorf("log: want a start line naming %s and an end line with sha256:%s, got %q", kind, sum, log.String())
				}
				if parallel := strings.Contains(lines[len(lines)-1], " xz blocks decoded in parallel) in "); parallel != (kind == "xz-blocks" && runtime.GOMAXPROCS(0) > 1) {
					t.Errorf("log end line %q: blocks decoded in parallel=%v", lines[len(lines)-1], parallel)
				}
				if pinned := strings.Contains(url, "#"); pinned != strings.HasSuffix(lines[len(lines)-1], " verified") {
					t.Errorf("log end line %q: pinned=%v", lines[len(lines)-1], pinned)
				}
			})
		}
	}
}

// TestUnpackTarballSizes checks what Check is told of the sizes: the tar's
// as the format records it, read from a file or with one range request
// of the file's end (xz, gzip), or -1 from a server without ranges.
func TestUnpackTarballSizes(t *testing.T) {
	files := tarballFiles(t, tarballTree(t))
	tarLen := int64(len(files["tar"]))
	fileDir := t.TempDir()
	ranged := http.NewServeMux()
	ranged.Handle("/", http.FileServer(http.Dir(fileDir)))
	srv, requests := tarballServer(t, ranged.ServeHTTP)
	// A server that ignores Range, answering 200 and the whole file.
	plain, plainRequests := tarballServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(files["xz"])))
		w.Write(files["xz"])
	})
	for kind, data := range files {
		tarballMust(t, os.WriteFile(filepath.Join(fileDir, kind), data, 0o644))
		for _, c := range []struct {
			url      string
			want     int64
			requests int32
		}{
			{"file://" + filepath.Join(fileDir, kind), tarLen, 0},
			{srv.URL + "/" + kind, tarLen, map[string]int32{"xz": 2, "xz-blocks": 2, "gzip": 2}[kind] + map[string]int32{"tar": 1, "zstd": 1}[kind]},
		} {
			requests.Store(0)
			var got image.TarballSize
			o := image.TarballOptions{Check: func(ts image.TarballSize) error { got = ts; return nil }}
			if err := image.UnpackTarball(tarballContext(t, time.Minute), c.url, t.TempDir(), o); err != nil {
				t.Fatalf("%s: %v", c.url, err)
			}
			want := image.TarballSize{Compression: strings.TrimSuffix(kind, "-blocks"), File: int64(len(data)), Tar: c.want}
			if got != want || requests.Load() != c.requests {
				t.Errorf("%s: %+v after %d requests, want %+v after %d", c.url, got, requests.Load(), want, c.requests)
			}
		}
	}
	var got image.TarballSize
	o := image.TarballOptions{Check: func(ts image.TarballSize) error { got = ts; return nil }}
	if err := image.UnpackTarball(tarballContext(t, time.Minute), plain.URL+"/r", t.TempDir(), o); err != nil {
		t.Fatal(err)
	}
	if got.Tar != -1 || got.File != int64(len(files["xz"])) || plainRequests.Load() != 2 {
		t.Errorf("xz from a server without ranges: %+v after %d requests, want the tar's size unknown after 2", got, plainRequests.Load())
	}
}

func TestUnpackTarballSHA256(t *testing.T) {
	files := tarballFiles(t, tarballTree(t))
	// Bytes after the tar's end are part of the file and of its hash.
	withTail := append(slices.Clone(files["tar"]), make([]byte, 3<<20)...) // more than any read-ahead
	srv, _ := tarballServer(t, tarballServe(map[string][]byte{"/r.tar": withTail}))
	ctx := tarballContext(t, time.Minute)

	if err := image.UnpackTarball(ctx, srv.URL+"/r.tar#sha256="+tarballSHA256(withTail), t.TempDir(), image.TarballOptions{}); err != nil {
		t.Errorf("right pin over the whole file: %v", err)
	}
	dir := t.TempDir()
	wrong := tarballSHA256(files["tar"]) // the hash of the file without its tail
	err := image.UnpackTarball(ctx, srv.URL+"/r.tar#sha256="+wrong, dir, image.TarballOptions{})
	if err == nil {
		t.Fatal("wrong pin: no error")
	}
	for _, s := range []string{"sha256 mismatch", wrong, tarballSHA256(withTail), dir, "must not be used", srv.URL + "/r.tar"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("wrong pin: error %q does not contain %q", err, s)
		}
	}
}

func TestUnpackTarballRefusesWhatIsNotATar(t *testing.T) {
	html := []byte("<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head><body>" + strings.Repeat("<p>hello</p>", 100) + "</body></html>\n")
	var gzHTML bytes.Buffer
	zw := gzip.NewWriter(&gzHTML)
	zw.Write(html)
	zw.Close()
	srv, requests := tarballServer(t, tarballServe(map[string][]byte{
		"/index.tar.gz":  html,
		"/page.tar.gz":   gzHTML.Bytes(),
		"/empty.tar":     {},
		"/zeros.tar":     make([]byte, 10240),
		"/truncated.tar": []byte("ustar"),
	}))
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/index.tar.gz", []string{"not a tar archive", "gzip, xz or zstd", "the file starts with", `"<!DOCTYPE html>`}},
		{"/page.tar.gz", []string{"not a tar archive", "the gzip-decompressed data starts with", `"<!DOCTYPE html>`}},
		{"/empty.tar", []string{"the file is empty"}},
		{"/zeros.tar", []string{"tar archive is empty"}},
		{"/truncated.tar", []string{"not a tar archive", `"ustar"`}},
		{"/missing.tar.xz", []string{`server answered "404 Not Found", want "200 OK"`}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			requests.Store(0)
			dir := t.TempDir()
			err := image.UnpackTarball(tarballContext(t, time.Minute), srv.URL+tc.path, dir, image.TarballOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range append(tc.want, srv.URL+tc.path) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if got := requests.Load(); got != 1 {
				t.Errorf("%d requests, want 1 (no retry)", got)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("%s was written to: %v", dir, entries)
			}
		})
	}
}

func TestUnpackTarballBadURLs(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	for _, tc := range []struct{ url, want string }{
		{"tftp://127.0.0.1/rootfs.tar.xz", `unsupported URL scheme "tftp": want http, https or file`},
		{"nfs://127.0.0.1/export/rootfs.tar", `unsupported URL scheme "nfs"`},
		{"ftp://127.0.0.1/rootfs.tar", `unsupported URL scheme "ftp"`},
		{"/srv/rootfs.tar", "not a URL: want http://, https:// or file:///"},
		{"file://otherhost/rootfs.tar", "want file:///ABSOLUTE/PATH"},
		{"file:rootfs.tar", "want file:///ABSOLUTE/PATH"},
		{"http:///rootfs.tar", "no host in URL"},
		{"http://127.0.0.1/r.tar#md5=abc", `fragment "#md5=abc": want #sha256= followed by 64 hex digits`},
		{"http://127.0.0.1/r.tar#sha256=" + hex64[:62], `fragment "#sha256=` + hex64[:62] + `"`},
		{"http://127.0.0.1/r.tar#sha256=" + hex64[:62] + "zz", "64 hex digits"},
		{"http://127.0.0.1/r.tar#", `fragment "#"`},
		{"http://127.0.0.1/r.tar#sha256=" + hex64 + "#x", "64 hex digits"},
		{"http://user:s3cret@127.0.0.1:port/r.tar", "invalid URL"},
		{"tftp://user:s3cret@127.0.0.1/r.tar?token=s3cret", `rootfs tarball tftp://127.0.0.1/r.tar?...: unsupported`},
	} {
		t.Run(tc.url, func(t *testing.T) {
			dir := t.TempDir()
			err := image.UnpackTarball(tarballContext(t, 10*time.Second), tc.url, dir, image.TarballOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the credentials", err)
			}
		})
	}
}

func TestUnpackTarballMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.tar")
	err := image.UnpackTarball(tarballContext(t, 10*time.Second), "file://"+missing, t.TempDir(), image.TarballOptions{})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("error %v, want a not-exist error naming %s", err, missing)
	}
}

func TestUnpackTarballCredentials(t *testing.T) {
	files := tarballFiles(t, tarballTree(t))
	srv, _ := tarballServer(t, func(w http.ResponseWriter, r *http.Request) {
		if user, pass, ok := r.BasicAuth(); !ok || user != "boot" || pass != "s3cret" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		tarballServe(map[string][]byte{"/r.tar.gz": files["gzip"]})(w, r)
	})
	ctx := tarballContext(t, time.Minute)
	authed := strings.Replace(srv.URL, "http://", "http://boot:s3cret@", 1)
	if err := image.UnpackTarball(ctx, authed+"/r.tar.gz", t.TempDir(), image.TarballOptions{}); err != nil {
		t.Errorf("with credentials: %v", err)
	}
	err := image.UnpackTarball(ctx, authed+"/other.tar.gz?sig=s3cret", t.TempDir(), image.TarballOptions{})
	if err == nil || !strings.Contains(err.Error(), srv.URL+"/other.tar.gz?...") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %v, want one naming %s/other.tar.gz?... without the password", err, srv.URL)
	}
}

func TestUnpackTarballRetries(t *testing.T) {
	files := tarballFiles(t, tarballTree(t))

	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		tarballMust(t, err)
		addr := l.Addr().String()
		l.Close()
		var dials atomic.Int32
		o, clock := tarballRetries()
		o.Fetch.Base = &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, a)
		}}
		err = image.UnpackTarball(tarballContext(t, time.Minute), "http://"+addr+"/r.tar", t.TempDir(), o)
		if n := len(clock.Sleeps()); n != 2 {
			t.Errorf("%d waits between attempts, want 2", n)
		}
		for _, s := range []string{"http://" + addr + "/r.tar", "attempt 3 of 3", "connection refused"} {
			if err == nil || !strings.Contains(err.Error(), s) {
				t.Errorf("error %v, want one containing %q", err, s)
			}
		}
		if got := dials.Load(); got != 3 {
			t.Errorf("%d connection attempts, want 3", got)
		}
	})

	t.Run("dropped connections and 503 before the body", func(t *testing.T) {
		var calls atomic.Int32
		srv, requests := tarballServer(t, func(w http.ResponseWriter, r *http.Request) {
			switch calls.Add(1) {
			case 1:
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close()
				}
			case 2:
				http.Error(w, "busy", http.StatusServiceUnavailable)
			default:
				w.Write(files["zstd"])
			}
		})
		o, _ := tarballRetries()
		o.Fetch.Base = &http.Transport{DisableKeepAlives: true}
		dir := t.TempDir()
		if err := image.UnpackTarball(tarballContext(t, time.Minute), srv.URL+"/r", dir, o); err != nil {
			t.Fatalf("UnpackTarball: %v", err)
		}
		if got := requests.Load(); got != 3 {
			t.Errorf("%d requests, want 3", got)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "etc/os-release")); err != nil || string(b) != "ID=ocibootest\n" {
			t.Errorf("etc/os-release: %q, %v", b, err)
		}
	})

	t.Run("failure mid-stream is resumed", func(t *testing.T) {
		whole := files["gzip"]
		var ranges []string
		srv, requests := tarballServer(t, func(w http.ResponseWriter, r *http.Request) {
			ranges = append(ranges, r.Header.Get("Range"))
			if r.Header.Get("Range") == "" {
				w.Header().Set("Content-Length", fmt.Sprint(len(whole)))
				w.Write(whole[:len(whole)/2]) // then the handler ends: connection closed
				return
			}
			http.ServeContent(w, r, "r.tgz", time.Unix(1700000000, 0), bytes.NewReader(whole))
		})
		o, _ := tarballRetries()
		dir := t.TempDir()
		if err := image.UnpackTarball(tarballContext(t, time.Minute), srv.URL+"/r.tgz#sha256="+tarballSHA256(whole), dir, o); err != nil {
			t.Fatalf("UnpackTarball: %v", err)
		}
		want := fmt.Sprintf("bytes=%d-", len(whole)/2)
		if got := requests.Load(); got != 2 || ranges[1] != want {
			t.Errorf("%d requests with ranges %q, want a second one asking for %s", got, ranges, want)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "etc/os-release")); err != nil || string(b) != "ID=ocibootest\n" {
			t.Errorf("etc/os-release: %q, %v", b, err)
		}
	})
}

func TestUnpackTarballTimeouts(t *testing.T) {
	files := tarballFiles(t, tarballTree(t))
	done := make(chan struct{})
	srv, _ := tarballServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stall" {
			w.Write(files["tar"][:4096])
			http.NewResponseController(w).Flush()
		}
		select { // hang until the client gives up or the test ends
		case <-r.Context().Done():
		case <-done:
		}
	})
	t.Cleanup(func() { close(done) }) // runs before srv.Close

	t.Run("ctx deadline while waiting for the answer", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		o, _ := tarballRetries()
		err := image.UnpackTarball(ctx, srv.URL+"/hang", t.TempDir(), o)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v, want the context deadline", err)
		}
	})

	t.Run("no data mid-body", func(t *testing.T) {
		o, _ := tarballRetries()
		o.Fetch.Stall = 300 * time.Millisecond
		err := image.UnpackTarball(tarballContext(t, time.Minute), srv.URL+"/stall", t.TempDir(), o)
		if err == nil || !strings.Contains(err.Error(), "no data received for 300ms") {
			t.Errorf("error %v, want a stall", err)
		}
	})
}

func TestUnpackTarballHTTPS(t *testing.T) {
	files := tarballFiles(t, tarballTree(t))
	var requests atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Write(files["xz"])
	}))
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "https://127.0.0.1:") {
		t.Fatalf("test server listens on %s, want 127.0.0.1 only", srv.URL)
	}
	ctx := tarballContext(t, time.Minute)

	// The default client verifies the certificate: the test CA is unknown.
	o, clock := tarballRetries()
	err := image.UnpackTarball(ctx, srv.URL+"/r.txz", t.TempDir(), o)
	if err == nil || !strings.Contains(err.Error(), "certificate") || len(clock.Sleeps()) != 0 {
		t.Errorf("untrusted certificate: error %v after %d retries, want a certificate error, not retried", err, len(clock.Sleeps()))
	}
	o = image.TarballOptions{Client: srv.Client()}
	dir := t.TempDir()
	if err := image.UnpackTarball(ctx, srv.URL+"/r.txz#sha256="+tarballSHA256(files["xz"]), dir, o); err != nil {
		t.Fatalf("trusted certificate: %v", err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "lib")); err != nil || target != "/usr/lib" {
		t.Errorf("lib -> %q, %v; want /usr/lib", target, err)
	}
	if got := requests.Load(); got != 1 {
		t.Errorf("%d requests reached the handler, want 1", got)
	}
}

// tarballHostile builds a gzip-compressed tar from headers (regular files get
// the body "evil").
func tarballHostile(t *testing.T, headers ...tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range headers {
		if h.Typeflag == tar.TypeReg {
			h.Size, h.Mode = 4, 0o644
		}
		tarballMust(t, tw.WriteHeader(&h))
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte("evil"))
		}
	}
	tarballMust(t, tw.Close())
	tarballMust(t, zw.Close())
	return buf.Bytes()
}

func TestUnpackTarballStaysInsideDir(t *testing.T) {
	base := t.TempDir()
	root, sibling := filepath.Join(base, "root"), filepath.Join(base, "sibling")
	tarballMust(t, os.MkdirAll(root, 0o755))
	tarballMust(t, os.MkdirAll(sibling, 0o755))
	tarballMust(t, os.WriteFile(filepath.Join(sibling, "keep"), []byte("keep"), 0o644))

	srv, _ := tarballServer(t, tarballServe(map[string][]byte{
		"/dotdot.tar.gz": tarballHostile(t,
			tar.Header{Typeflag: tar.TypeReg, Name: "../sibling/keep"},
			tar.Header{Typeflag: tar.TypeReg, Name: "../../escaped"}),
		"/symlink.tar.gz": tarballHostile(t,
			tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: sibling},
			tar.Header{Typeflag: tar.TypeReg, Name: "link/keep"}),
		"/absolute.tar.gz": tarballHostile(t,
			tar.Header{Typeflag: tar.TypeDir, Name: "/", Mode: 0o755},
			tar.Header{Typeflag: tar.TypeReg, Name: "/etc/abs"},
			tar.Header{Typeflag: tar.TypeLink, Name: "/etc/abs2", Linkname: "/etc/abs"},
			tar.Header{Typeflag: tar.TypeReg, Name: sibling + "/keep"}),
	}))
	ctx := tarballContext(t, time.Minute)

	// A name that climbs out of the root with ".." is refused.
	err := image.UnpackTarball(ctx, srv.URL+"/dotdot.tar.gz", root, image.TarballOptions{})
	if err == nil || !strings.Contains(err.Error(), `"../sibling/keep"`) {
		t.Errorf("dotdot: error %v, want one naming entry ../sibling/keep", err)
	}
	if b, err := os.ReadFile(filepath.Join(sibling, "keep")); err != nil || string(b) != "keep" {
		t.Errorf("sibling/keep outside the root: %q, %v; want it untouched", b, err)
	}
	// Writing through a symlink that leads out of the root is an error.
	err = image.UnpackTarball(ctx, srv.URL+"/symlink.tar.gz", root, image.TarballOptions{})
	if err == nil || !strings.Contains(err.Error(), `"link/keep"`) {
		t.Errorf("symlink escape: error %v, want one naming entry link/keep", err)
	}

	// Absolute names, as tar -P and umoci write them, are relative to the
	// root: the host's path named by the last entry is made inside it.
	if err := image.UnpackTarball(ctx, srv.URL+"/absolute.tar.gz", root, image.TarballOptions{}); err != nil {
		t.Errorf("absolute names: %v", err)
	}
	for _, p := range []string{"etc/abs", "etc/abs2", strings.TrimPrefix(sibling, "/") + "/keep"} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != "evil" {
			t.Errorf("%s in the root: %q, %v", p, b, err)
		}
	}

	if b, err := os.ReadFile(filepath.Join(sibling, "keep")); err != nil || string(b) != "keep" {
		t.Errorf("outside the root, sibling/keep is %q, %v", b, err)
	}
	names := func(d string) []string {
		entries, err := os.ReadDir(d)
		tarballMust(t, err)
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	if got := names(base); !slices.Equal(got, []string{"root", "sibling"}) {
		t.Errorf("next to the root: %q, want only root and sibling", got)
	}
	if got := names(sibling); !slices.Equal(got, []string{"keep"}) {
		t.Errorf("in sibling: %q, want only keep", got)
	}
	if slices.Contains(names(filepath.Dir(base)), "escaped") {
		t.Errorf("escaped was written above the root")
	}
}

package netboot

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// AccessLog logs requests, a line each, to a writer and, per machine, to
// a file of a directory. A request names its machine by the MAC in its
// path (boot scripts, extra_args); later requests from the same address
// (the kernel, the initramfs, the registry's blobs) are put down to that
// machine too, unless the address is a loopback one: a relay or a proxy
// there stands for every machine.
type AccessLog struct {
	w   io.Writer
	dir string

	mu   sync.Mutex
	macs map[string]string // remote IP → MAC
}

// NewAccessLog returns a log writing to w (nil: nowhere) and, when dir is
// set, to dir/MACHINE.log, MACHINE being the MAC, or else the address.
func NewAccessLog(w io.Writer, dir string) *AccessLog {
	if w == nil {
		w = io.Discard
	}
	return &AccessLog{w: w, dir: dir, macs: map[string]string{}}
}

// Wrap returns h, logged.
func (l *AccessLog) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		l.log(r, rec, start)
	})
}

// machine names the machine behind r.
func (l *AccessLog) machine(r *http.Request, ip string) string {
	var mac string
	for _, prefix := range []string{"/boot/", "/extra_args/"} {
		if rest, ok := strings.CutPrefix(r.URL.Path, prefix); ok {
			mac, _ = ParseMAC(strings.TrimSuffix(rest, ".ipxe"))
		}
	}
	addr := net.ParseIP(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case mac != "" && addr != nil && !addr.IsLoopback():
		l.macs[ip] = mac
	case mac == "":
		mac = l.macs[ip]
	}
	if mac == "" {
		return ip
	}
	return mac
}

func (l *AccessLog) log(r *http.Request, rec *recorder, start time.Time) {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	machine := l.machine(r, ip)
	line := fmt.Sprintf("%s %s %s %q %d %d %s\n", start.UTC().Format(time.RFC3339), machine, ip,
		r.Method+" "+r.URL.RequestURI(), rec.status, rec.bytes, time.Since(start).Round(time.Millisecond))
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, line)
	if l.dir == "" {
		return
	}
	name := strings.NewReplacer("/", "_", ":", "_").Replace(machine)
	f, err := os.OpenFile(filepath.Join(l.dir, name+".log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintf(l.w, "access log: %v\n", err)
		return
	}
	_, _ = io.WriteString(f, line)
	f.Close()
}

// recorder keeps the status and size of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Unwrap gives http.ResponseController the writer underneath, for
// flushes (the fleet page's event stream).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// ReadFrom keeps io.Copy's sendfile path for files served.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	n, err := io.Copy(r.ResponseWriter, src)
	r.bytes += n
	return n, err
}

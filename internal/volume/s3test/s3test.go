// Package s3test starts a real S3 server for tests: versitygw with its
// posix backend, on 127.0.0.1 only, its data in a temporary directory.
package s3test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a running versitygw.
type Server struct {
	// URL is "http://127.0.0.1:PORT"; Addr "127.0.0.1:PORT".
	URL, Addr string
	// Access and Secret are its one account's keys.
	Access, Secret string
	// Dir holds the buckets, one directory each.
	Dir string

	bin  string
	tls  []string // versitygw's TLS flags
	log  syncBuffer
	mu   sync.Mutex
	cmd  *exec.Cmd // nil when stopped
	done chan error
}

// syncBuffer is the server's log, written by its output copiers while a
// test may read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Binary finds versitygw, installed by scripts/install-deps.sh with go
// install.
func Binary() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return "", err
	}
	p := filepath.Join(strings.TrimSpace(string(out)), "bin", "versitygw")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("versitygw is missing (scripts/install-deps.sh installs it): %w", err)
	}
	return p, nil
}

// Start starts versitygw on a free port of 127.0.0.1 with buckets made
// as directories of a temporary directory, waits until it answers, and
// stops it when the test ends.
func Start(t testing.TB, buckets ...string) *Server {
	t.Helper()
	return StartTLS(t, "", "", buckets...)
}

// StartTLS is Start with TLS when certFile and keyFile are set (the URL
// is then https://).
func StartTLS(t testing.TB, certFile, keyFile string, buckets ...string) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Access: "ociboot-test-access", Secret: "ociboot-test-secret-key", Dir: t.TempDir(), bin: bin}
	if certFile != "" {
		s.tls = []string{"--cert", certFile, "--key", keyFile}
	}
	for _, b := range buckets {
		if err := os.Mkdir(filepath.Join(s.Dir, b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = l.Addr().String()
	l.Close()
	s.URL = "http://" + s.Addr
	if s.tls != nil {
		s.URL = "https://" + s.Addr
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("versitygw log:\n%s", s.log.String())
		}
	})
	s.Restart(t)
	return s
}

// Stop stops the server, as a server that goes down would; its buckets
// stay.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts the server again, on the same address with the same
// buckets, and waits until it answers.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		t.Fatal("s3test: Restart of a running server")
	}
	args := append([]string{"--access", s.Access, "--secret", s.Secret, "--port", s.Addr}, s.tls...)
	cmd := exec.Command(s.bin, append(args, "posix", s.Dir)...)
	cmd.Stdout, cmd.Stderr = &s.log, &s.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("s3test: starting %s: %v", s.bin, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	s.cmd, s.done = cmd, done
	for {
		select {
		case err := <-done:
			s.cmd = nil
			t.Fatalf("s3test: versitygw ended: %v\n%s", err, s.log.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package vm

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/kmod"
	"github.com/u-root/u-root/pkg/cpio"
)

// These tests boot the installed kernel under TCG with testdata/guestinit
// as /init: three boots of about 7-20 s each and one cut short after a
// second, run in parallel.

// bootInitramfs builds testdata/guestinit and packs it as /init into a newc
// initramfs with /dev/console and, if withNet, the virtio-net modules of
// kernel in /modules. It returns the initramfs path.
func bootInitramfs(t *testing.T, kernel string, withNet bool) string {
	t.Helper()
	dir := t.TempDir()
	initBin := filepath.Join(dir, "init")
	build := exec.Command("go", "build", "-o", initBin, "./testdata/guestinit")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test init: %v\n%s", err, out)
	}
	initData, err := os.ReadFile(initBin)
	if err != nil {
		t.Fatal(err)
	}
	recs := []cpio.Record{
		cpio.Directory("dev", 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.StaticRecord(initData, cpio.Info{Name: "init", Mode: cpio.S_IFREG | 0o755}),
	}
	if withNet {
		release := strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-")
		modDir := filepath.Join("/lib/modules", release)
		ix, err := kmod.LoadIndex(modDir)
		if err != nil {
			t.Fatalf("the guest needs the modules of kernel %s: %v", kernel, err)
		}
		// In dependency order; the guest loads them by name order.
		mods, err := ix.Closure([]string{"virtio_pci", "virtio_net"})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, cpio.Directory("modules", 0o755))
		for i, m := range mods {
			if m.Builtin {
				continue
			}
			data, err := kmod.ReadFile(filepath.Join(modDir, m.Path))
			if err != nil {
				t.Fatalf("the guest needs the virtio-net modules of kernel %s: %v", kernel, err)
			}
			name := fmt.Sprintf("modules/%02d-%s.ko", i, m.Name)
			recs = append(recs, cpio.StaticRecord(data, cpio.Info{Name: name, Mode: cpio.S_IFREG | 0o644}))
		}
	}
	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	if err := cpio.WriteRecords(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "initramfs.cpio")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func testKernel(t *testing.T) string {
	t.Helper()
	k, err := DefaultKernel()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// connCounter is an HTTP handler that answers "hello PATH" and counts the
// distinct TCP connections it was reached on.
type connCounter struct {
	mu    sync.Mutex
	conns map[string]bool
}

func (c *connCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.conns[r.RemoteAddr] = true
	c.mu.Unlock()
	fmt.Fprintf(w, "hello %s", r.URL.Path)
}

func TestRunReportsStatusAndForwardsPorts(t *testing.T) {
	t.Parallel()
	counter := &connCounter{conns: map[string]bool{}}
	srv := httptest.NewServer(counter) // listens on 127.0.0.1
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var portNum int
	fmt.Sscan(port, &portNum)

	kernel := testKernel(t)
	var console, log bytes.Buffer
	res, err := Run(context.Background(), Config{
		Kernel:    kernel,
		Initramfs: bootInitramfs(t, kernel, true),
		Cmdline:   "quiet VMTEST_MODE=status VMTEST_PORT=" + port,
		Forwards:  []int{portNum},
		MemoryMB:  256,
		Timeout:   2 * time.Minute,
		Accel:     AccelTCG,
		Console:   &console,
		Log:       &log,
	})
	t.Logf("boot took %s", res.Elapsed)
	if err != nil {
		t.Fatalf("Run: %v\nconsole:\n%s", err, console.String())
	}
	if !res.StatusSeen || res.Status != 7 || !res.SafeSeen {
		t.Errorf("status %d (seen %v), safe line seen %v; want status 7 and the safe line", res.Status, res.StatusSeen, res.SafeSeen)
	}
	if got := ExitStatus(res, err); got != 7 {
		t.Errorf("ExitStatus = %d, want 7", got)
	}
	if res.ExitCode != 0 || res.Accel != AccelTCG {
		t.Errorf("qemu exit %d with %s, want 0 with tcg", res.ExitCode, res.Accel)
	}
	if log.String() != "vm: using tcg (as asked)\n" {
		t.Errorf("log = %q", log.String())
	}
	for _, want := range []string{
		"guest: hello from the test init",
		`guest: got "hello /seq1"`, `guest: got "hello /seq2"`,
		`guest: got "hello /par1"`, `guest: got "hello /par2"`,
		"Execution is over, pipeline status: 7",
	} {
		if !slices.Contains(res.Lines, want) {
			t.Errorf("no console line %q in Result.Lines", want)
		}
		if !strings.Contains(console.String(), want) {
			t.Errorf("Console did not receive %q", want)
		}
	}
	counter.mu.Lock()
	defer counter.mu.Unlock()
	if len(counter.conns) != 4 {
		t.Errorf("the host service saw %d connections, want 4 (one per guest request)", len(counter.conns))
	}
	if t.Failed() {
		t.Logf("console:\n%s", console.String())
	}
}

func TestRunFailsWithoutStatus(t *testing.T) {
	t.Parallel()
	kernel := testKernel(t)
	res, err := Run(context.Background(), Config{
		Kernel:    kernel,
		Initramfs: bootInitramfs(t, kernel, false),
		Cmdline:   "quiet VMTEST_MODE=silent",
		MemoryMB:  256,
		Timeout:   2 * time.Minute,
		Accel:     AccelTCG,
	})
	if err == nil || !strings.Contains(err.Error(), "stopped before the pipeline reported a status") ||
		!strings.Contains(err.Error(), "exit status 0") {
		t.Fatalf("Run error = %v, want one saying the VM stopped before reporting a status, with qemu's exit status", err)
	}
	if res.StatusSeen || ExitStatus(res, err) != NoStatusExit {
		t.Errorf("status seen %v, ExitStatus %d; want none and %d", res.StatusSeen, ExitStatus(res, err), NoStatusExit)
	}
	if !slices.Contains(res.Lines, "guest: hello from the test init") {
		t.Errorf("the guest's line is missing from Result.Lines: %q", res.Lines)
	}
}

// The timeout stops a VM that hangs. Its timer is fired once the guest
// says it hangs, so that a loaded machine booting slowly cannot make the
// test race it.
func TestRunTimesOut(t *testing.T) {
	t.Parallel()
	kernel := testKernel(t)
	const timeout = 20 * time.Second
	armed := make(chan func(), 1)
	hanging := &lineSeen{want: "guest: hanging", seen: make(chan struct{})}
	go func() {
		fire := <-armed
		<-hanging.seen
		fire()
	}()
	res, err := Run(context.Background(), Config{
		Kernel:    kernel,
		Initramfs: bootInitramfs(t, kernel, false),
		Cmdline:   "quiet VMTEST_MODE=hang",
		MemoryMB:  256,
		Timeout:   timeout,
		Accel:     AccelTCG,
		Console:   hanging,
		afterFunc: func(d time.Duration, f func()) func() bool {
			if d != timeout {
				t.Errorf("timer armed for %s, want %s", d, timeout)
			}
			armed <- f
			return func() bool { return true }
		},
	})
	if err == nil || !strings.Contains(err.Error(), "VM timed out after 20s") {
		t.Fatalf("Run error = %v, want a timeout after 20s", err)
	}
	if !slices.Contains(res.Lines, "guest: hanging") {
		t.Errorf("the guest never said it hangs; lines: %q", res.Lines)
	}
	if !res.Started || ExitStatus(res, err) != NoStatusExit {
		t.Errorf("started %v, ExitStatus %d; want started, %d", res.Started, ExitStatus(res, err), NoStatusExit)
	}
}

// lineSeen closes seen once the console has shown a line holding want.
type lineSeen struct {
	want string
	buf  strings.Builder
	seen chan struct{}
	done bool
}

func (l *lineSeen) Write(p []byte) (int, error) {
	l.buf.Write(p)
	if !l.done && strings.Contains(l.buf.String(), l.want) {
		l.done = true
		close(l.seen)
	}
	return len(p), nil
}

// Cancelling the context stops QEMU, which hangs without it (there is no
// timeout): the run ending at all shows it.
func TestRunStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	kernel := testKernel(t)
	initramfs := bootInitramfs(t, kernel, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(time.Second, cancel)
	res, err := Run(ctx, Config{
		Kernel:    kernel,
		Initramfs: initramfs,
		Cmdline:   "quiet VMTEST_MODE=hang",
		MemoryMB:  256,
		Accel:     AccelTCG,
	})
	if err == nil || !strings.Contains(err.Error(), "the VM was stopped: context canceled") {
		t.Fatalf("Run error = %v, want one saying the VM was stopped", err)
	}
	if !res.Started {
		t.Errorf("the VM did not start")
	}
}

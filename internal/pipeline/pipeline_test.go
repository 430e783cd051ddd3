package pipeline

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/cruntest"
	"github.com/ociboot/ociboot/internal/pid1"
	"github.com/ociboot/ociboot/internal/registrytest"
	"github.com/ociboot/ociboot/internal/runtime"
)

// TestMain runs real containers with crun; see cruntest.Main.
func TestMain(m *testing.M) { cruntest.Main(m) }

// harness runs pipelines against the real registry with real crun and the
// real PID-1 reaper.
type harness struct {
	reg    *registrytest.Registry
	ref    string // a busybox image in reg
	reaper *pid1.Reaper
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	reg := registrytest.Start(t)
	h := &harness{
		reg:    reg,
		ref:    registrytest.Push(t, reg, "pipeline/busybox:1", registrytest.BusyboxImage(t)),
		reaper: pid1.NewReaper(),
	}
	t.Cleanup(h.reaper.Stop)
	return h
}

// run runs the containers (each "IMAGE CMD...", IMAGE being "busybox" for
// the test image) and returns the status, the containers' output and
// ociboot's log.
func (h *harness) run(t *testing.T, ctx context.Context, specs ...string) (int, string, string) {
	t.Helper()
	plan := &bootcfg.Plan{InsecureRegistries: []string{h.reg.Addr}, PoweroffDelay: -1}
	for _, s := range specs {
		c, err := bootcfg.ParseContainer(strings.Replace(s, "busybox", h.ref, 1))
		if err != nil {
			t.Fatalf("ParseContainer(%q): %v", s, err)
		}
		plan.Containers = append(plan.Containers, c)
	}
	out, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var log bytes.Buffer
	state := t.TempDir()
	status := Run(ctx, Config{
		Plan:     plan,
		Runtime:  runtime.Runtime{Path: cruntest.Path},
		StateDir: state,
		Procs:    h.reaper,
		Log:      &log,
		Stdout:   out,
		Stderr:   out,
	})
	data, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("log:\n%s\noutput:\n%s", log.String(), data)
	if left, _ := os.ReadDir(filepath.Join(state, "containers")); len(left) != 0 {
		t.Errorf("%d bundles left in the state directory after the pipeline", len(left))
	}
	return status, string(data), log.String()
}

func TestPipeline(t *testing.T) {
	h := newHarness(t)

	t.Run("in order, first failure wins", func(t *testing.T) {
		status, out, _ := h.run(t, context.Background(),
			`busybox sh -c 'echo one'`,
			`busybox sh -c 'echo two; exit 3'`,
			`busybox sh -c 'echo three; exit 4'`)
		if status != 3 {
			t.Errorf("status %d, want 3 (the first failing container's)", status)
		}
		if out != "one\ntwo\nthree\n" {
			t.Errorf("output %q, want one, two, three in order", out)
		}
	})

	t.Run("an image that cannot be pulled", func(t *testing.T) {
		missing := h.reg.Addr + "/pipeline/nothing:1"
		status, out, log := h.run(t, context.Background(),
			missing+" true",
			`busybox sh -c 'echo still runs'`)
		if status != StatusSetupFailed {
			t.Errorf("status %d, want %d", status, StatusSetupFailed)
		}
		if !strings.Contains(log, missing) {
			t.Errorf("the log does not name %s", missing)
		}
		if out != "still runs\n" {
			t.Errorf("output %q: the next container did not run", out)
		}
	})

	t.Run("shutdown stops the running container", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		started := time.Now()
		time.AfterFunc(3*time.Second, cancel)
		status, out, log := h.run(t, ctx,
			`busybox sh -c 'trap "echo got TERM; exit 143" TERM; echo waiting; while :; do sleep 0.1; done'`,
			`busybox echo never`)
		if took := time.Since(started); took > stopGrace {
			t.Errorf("the pipeline took %s to stop, more than the %s grace", took, stopGrace)
		}
		if status != 143 {
			t.Errorf("status %d, want 143 (128+SIGTERM)", status)
		}
		if out != "waiting\ngot TERM\n" {
			t.Errorf("output %q", out)
		}
		if !strings.Contains(log, "not started: shutting down") {
			t.Error("the log does not say the second container was not started")
		}
	})
}

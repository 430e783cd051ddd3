package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/console"
	"github.com/ociboot/ociboot/internal/cruntest"
	"github.com/ociboot/ociboot/internal/event"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/pid1"
	"github.com/ociboot/ociboot/internal/registrytest"
	"github.com/ociboot/ociboot/internal/runtime"
	"github.com/ociboot/ociboot/internal/store"
	"github.com/ociboot/ociboot/internal/volume"
)

// TestMain runs real containers with crun; see cruntest.Main.
func TestMain(m *testing.M) { cruntest.Main(m) }

// harness runs pipelines against the real registry with real crun and the
// real PID-1 reaper.
type harness struct {
	reg     *registrytest.Registry
	ref     string // a busybox image in reg
	reaper  *pid1.Reaper
	layers  *store.Store // the image store of unpacked layers; nil for none
	volumes Volumes      // nil for none
	hooks   Hooks        // nil for none
	// devicesReady, when set, is Config.DevicesReady, given the events
	// so far.
	devicesReady func(soFar []event.Event)
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
	plan := &bootcfg.Plan{Containers: h.containers(t, specs...)}
	res, out, log := h.runPlan(t, ctx, plan)
	return res.Status, out, log
}

// containers parses specs, "busybox" standing for the test image.
func (h *harness) containers(t *testing.T, specs ...string) []bootcfg.Container {
	t.Helper()
	var list []bootcfg.Container
	for _, s := range specs {
		c, err := bootcfg.ParseContainer(strings.Replace(s, "busybox", h.ref, 1))
		if err != nil {
			t.Fatalf("ParseContainer(%q): %v", s, err)
		}
		list = append(list, c)
	}
	return list
}

// runPlan runs plan (its registry settings filled in) and returns the
// result, the containers' output and ociboot's log.
func (h *harness) runPlan(t *testing.T, ctx context.Context, plan *bootcfg.Plan) (Result, string, string) {
	t.Helper()
	plan.Registry.Insecure = []string{h.reg.Addr}
	puller, err := image.NewPuller(plan.Registry)
	if err != nil {
		t.Fatal(err)
	}
	plan.PoweroffDelay = -1
	out, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var log bytes.Buffer
	var rec event.Recorder
	state := t.TempDir()
	var devicesReady func()
	if h.devicesReady != nil {
		devicesReady = func() { h.devicesReady(rec.Events()) }
	}
	res := Run(ctx, Config{
		Plan:         plan,
		Puller:       puller,
		Runtime:      runtime.Runtime{Path: cruntest.Path},
		StateDir:     state,
		Layers:       h.layers,
		Volumes:      h.volumes,
		Hooks:        h.hooks,
		Procs:        h.reaper,
		Events:       event.New(console.NewSink(&log), &rec),
		DevicesReady: devicesReady,
		Stdout:       out,
		Stderr:       out,
	})
	checkEvents(t, rec.Events())
	data, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("log:\n%s\noutput:\n%s", log.String(), data)
	if left, _ := os.ReadDir(filepath.Join(state, "containers")); len(left) != 0 {
		t.Errorf("%d bundles left in the state directory after the pipeline", len(left))
	}
	return res, string(data), log.String()
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

	t.Run("devices are waited for once the image is pulled", func(t *testing.T) {
		// The boot's storage drivers load while images are pulled: the
		// devices of a container that uses the machine's are listed
		// after its pull, before it starts; another is not held.
		h := *h
		var calls []string
		h.devicesReady = func(soFar []event.Event) {
			var pulled, started int
			for _, e := range soFar {
				switch e := e.(type) {
				case event.Layer:
					if e.State == image.LayerDone.String() {
						pulled++
					}
				case event.ContainerStart:
					started++
				}
			}
			calls = append(calls, fmt.Sprintf("%d pulled, %d started", pulled, started))
		}
		status, out, _ := h.run(t, context.Background(), `--privileged busybox echo one`, `busybox echo two`, `--device /dev/null:/dev/x busybox echo three`)
		if status != 0 || out != "one\ntwo\nthree\n" {
			t.Errorf("status %d, output %q; want 0, one, two and three", status, out)
		}
		if want := []string{"1 pulled, 0 started", "3 pulled, 2 started"}; !slices.Equal(calls, want) {
			t.Errorf("DevicesReady called when %q, want %q", calls, want)
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
		time.AfterFunc(3*time.Second, cancel)
		status, out, log := h.run(t, ctx,
			`busybox sh -c 'trap "echo got TERM; exit 143" TERM; echo waiting; while :; do sleep 0.1; done'`,
			`busybox echo never`)
		// 143 shows the container ended on SIGTERM, within the grace: after
		// it, SIGKILL would have made it 137.
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

// TestPipelineLayerStore runs containers on their image's layers from
// the store, under overlayfs: the second container of an image unpacks
// nothing, sees none of what the first wrote, and neither changes the
// stored layers; whiteouts hide what they must; nothing stays mounted.
func TestPipelineLayerStore(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	h.layers = st
	layered := registrytest.Push(t, h.reg, "pipeline/layered:1", registrytest.BusyboxImage(t,
		registrytest.LayerFromFiles(t, map[string]string{"/etc/gone": "hidden\n", "/etc/kept": "kept\n"}),
		registrytest.LayerFromFiles(t, map[string]string{"/etc/new": "new\n"}, "/etc/gone")))
	status, out, log := h.run(t, context.Background(),
		`busybox sh -c 'echo written > /etc/written; rm /bin/ls; echo first'`,
		`busybox sh -c 'cat /etc/written 2>/dev/null; test -e /bin/ls && echo second sees ls'`,
		layered+` sh -c 'cat /etc/kept /etc/new; test -e /etc/gone && echo GONE-IS-THERE; true'`)
	if status != 0 {
		t.Errorf("status %d, want 0", status)
	}
	if out != "first\nsecond sees ls\nkept\nnew\n" {
		t.Errorf("output %q", out)
	}
	if n := strings.Count(log, "unpacked in the store"); n != 2 {
		t.Errorf("%d layers found unpacked in the store, want 2: the second container's and the layered image's busybox layer\n%s", n, log)
	}
	found, _ := filepath.Glob(filepath.Join(dir, "layers/sha256/*/etc/written"))
	if ls, _ := filepath.Glob(filepath.Join(dir, "layers/sha256/*/bin/ls")); len(ls) != 1 || len(found) != 0 {
		t.Errorf("the stored layers changed: bin/ls in %d, etc/written in %d", len(ls), len(found))
	}
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), dir) || strings.Contains(string(mounts), "/containers/") {
		t.Errorf("overlays left mounted:\n%s", mounts)
	}
}

// TestPipelineVolumes runs containers sharing named volumes: what one
// writes, the next reads, read-only when mounted so.
func TestPipelineVolumes(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	vols, err := volume.Open(dir, []bootcfg.Volume{{Name: "job"}}, nil, volume.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h.volumes = vols
	status, out, _ := h.run(t, context.Background(),
		`-v job:/job busybox sh -c 'echo results > /job/out'`,
		`--mount type=volume,src=job,dst=/in,ro -v plain:/p busybox sh -c 'cat /in/out; touch /in/x 2>/dev/null || echo read-only; echo p > /p/f'`)
	if status != 0 || out != "results\nread-only\n" {
		t.Errorf("status %d, output %q", status, out)
	}
	for _, f := range []string{"job/data/out", "plain/data/f"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("the volume's file: %v", err)
		}
	}
	h.volumes = nil
	if status, _, log := h.run(t, context.Background(), `-v job:/job busybox true`); status != StatusSetupFailed || !strings.Contains(log, "volume job: this boot has no volumes") {
		t.Errorf("a volume without volumes: status %d, log %q", status, log)
	}
}

// hookRecorder records the points its hooks run at, and whether their
// context was live; it fails the points in fail, and calls at[point]
// when it reaches point.
type hookRecorder struct {
	mu     sync.Mutex
	points []string
	fail   map[string]bool
	at     map[string]func()
}

func (r *hookRecorder) At(ctx context.Context, point string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Err() != nil {
		point += " (cancelled)"
	}
	r.points = append(r.points, point)
	if f := r.at[point]; f != nil {
		f()
	}
	if r.fail[point] {
		return fmt.Errorf("volume v: push to gw/b at %s: refused", point)
	}
	return nil
}

// TestPipelineHooks checks boot2container's hook order, and what a hook's
// failure does: a failed pipeline_start skips the services and the
// pipeline (the post containers still run), a failed pipeline_end fails a
// pipeline that had not failed, and a shutdown still runs container_end
// and pipeline_end, with a live context, so that volumes are pushed.
func TestPipelineHooks(t *testing.T) {
	h := newHarness(t)
	wrap := []string{"container_start", "container_end"}
	// Ends at once on SIGTERM (a PID 1 without a handler ignores it).
	const waits = `busybox sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done'`
	run := func(t *testing.T, ctx context.Context, r *hookRecorder, plan *bootcfg.Plan) (Result, string, string) {
		t.Helper()
		h.hooks = r
		defer func() { h.hooks = nil }()
		return h.runPlan(t, ctx, plan)
	}
	for _, tc := range []struct {
		name       string
		fail       string
		status     int
		out        string
		points     []string
		failedBy   string
		logPattern string
	}{
		{name: "in order", status: 0, out: "one\ntwo\npost\n",
			points: slices.Concat([]string{"pipeline_start"}, wrap, wrap, wrap, []string{"pipeline_end"})},
		{name: "a failed pipeline_start", fail: "pipeline_start", status: StatusSetupFailed, out: "post\n", failedBy: "pipeline_start",
			points:     slices.Concat([]string{"pipeline_start"}, wrap, []string{"pipeline_end"}),
			logPattern: "container 1/2 (" + h.ref + "): not started: pipeline_start failed"},
		{name: "a failed pipeline_end", fail: "pipeline_end", status: StatusSetupFailed, out: "one\ntwo\npost\n", failedBy: "pipeline_end",
			points:     slices.Concat([]string{"pipeline_start"}, wrap, wrap, wrap, []string{"pipeline_end"}),
			logPattern: "pipeline_end: volume v: push to gw/b at pipeline_end: refused"},
		{name: "a failed container_end", fail: "container_end", status: StatusSetupFailed, out: "one\ntwo\npost\n",
			points: slices.Concat([]string{"pipeline_start"}, wrap, wrap, wrap, []string{"pipeline_end"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &hookRecorder{fail: map[string]bool{tc.fail: true}}
			res, out, log := run(t, context.Background(), r, &bootcfg.Plan{
				Services:       h.containers(t, waits),
				Containers:     h.containers(t, `busybox echo one`, `busybox echo two`),
				PostContainers: h.containers(t, `busybox echo post`),
			})
			if res.Status != tc.status || out != tc.out || !slices.Equal(r.points, tc.points) {
				t.Errorf("status %d, output %q, hooks %q; want %d, %q, %q", res.Status, out, r.points, tc.status, tc.out, tc.points)
			}
			if tc.failedBy != "" && res.FailedBy != tc.failedBy {
				t.Errorf("failed by %q, want %q", res.FailedBy, tc.failedBy)
			}
			if !strings.Contains(log, tc.logPattern) {
				t.Errorf("the log lacks %q", tc.logPattern)
			}
		})
	}

	t.Run("a shutdown still pushes", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// The machine is asked to stop once the first container has
		// started: it is stopped, the second never starts.
		r := &hookRecorder{at: map[string]func(){"container_start": cancel}}
		res, _, _ := run(t, ctx, r, &bootcfg.Plan{
			Containers: h.containers(t, waits, `busybox echo never`),
		})
		want := []string{"pipeline_start", "container_start", "container_end", "pipeline_end"}
		if !slices.Equal(r.points, want) || res.Status == 0 {
			t.Errorf("hooks %q, status %d; want %q (no cancelled context), a failure", r.points, res.Status, want)
		}
	})
}

// freePort returns a TCP port free on 127.0.0.1 at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestServicesPostContainersPipefail(t *testing.T) {
	h := newHarness(t)

	t.Run("a service runs during the pipeline and is stopped at the end", func(t *testing.T) {
		port := freePort(t)
		plan := &bootcfg.Plan{
			// The service serves a page on 127.0.0.1 (containers share the
			// host's network); the pipeline container fetches it.
			Services: h.containers(t, fmt.Sprintf(`busybox sh -c 'mkdir -p /www && echo served-by-service > /www/index.html && `+
				`trap "echo service got TERM; exit 0" TERM; httpd -f -p 127.0.0.1:%d -h /www & wait'`, port)),
			Containers:     h.containers(t, fmt.Sprintf(`busybox sh -c 'for i in $(seq 300); do wget -qO- http://127.0.0.1:%d/ && exit 0; sleep 0.1; done; exit 1'`, port)),
			PostContainers: h.containers(t, `busybox echo post ran`),
		}
		res, out, log := h.runPlan(t, context.Background(), plan)
		if res.Status != 0 {
			t.Errorf("status %d, want 0: the pipeline container did not reach the service", res.Status)
		}
		want := "served-by-service\npost ran\nservice got TERM\n"
		if out != want {
			t.Errorf("output %q, want %q: the service answers during the pipeline and gets SIGTERM after the post containers", out, want)
		}
		if !strings.Contains(log, "service 1/1 ("+h.ref+"): stopped, status 0") {
			t.Error("the log does not say the service was stopped")
		}
	})

	t.Run("pipefail stops the pipeline, post containers still run", func(t *testing.T) {
		plan := &bootcfg.Plan{
			Pipefail:       true,
			Containers:     h.containers(t, `busybox sh -c 'exit 129'`, `busybox sh -c 'echo first; exit 2'`, `busybox echo never`),
			PostContainers: h.containers(t, `busybox sh -c 'echo post; exit 5'`),
		}
		res, out, log := h.runPlan(t, context.Background(), plan)
		if res.Status != 2 || out != "first\npost\n" {
			t.Errorf("status %d, output %q: want 2 and the first container then the post container", res.Status, out)
		}
		if !strings.Contains(log, "container 3/3 ("+h.ref+"): not started: pipefail") {
			t.Error("the log does not say why the second container did not run")
		}
	})

	t.Run("without pipefail the pipeline goes on; a post container's status does not count", func(t *testing.T) {
		plan := &bootcfg.Plan{
			Containers:     h.containers(t, `busybox true`, `busybox sh -c 'exit 2'`, `busybox echo still`),
			PostContainers: h.containers(t, `busybox sh -c 'exit 5'`),
		}
		res, out, _ := h.runPlan(t, context.Background(), plan)
		if res.Status != 2 || out != "still\n" || res.Action != PowerOff {
			t.Errorf("status %d, output %q, action %s: want 2, \"still\", poweroff", res.Status, out, res.Action)
		}
	})
}

func TestEnvironmentAndEndActions(t *testing.T) {
	h := newHarness(t)
	show := `busybox sh -c 'env | grep PIPELINE_ | sort'`
	failing := `busybox sh -c 'exit 3'`
	plan := &bootcfg.Plan{
		Containers:     h.containers(t, show, failing, show, `busybox sh -c 'exit 129'`),
		PostContainers: h.containers(t, show),
	}
	res, out, _ := h.runPlan(t, context.Background(), plan)
	if res.Status != 3 || res.FailedBy != plan.Containers[1].Spec || res.Action != Reboot {
		t.Errorf("result %+v: want status 3, failed by %q, reboot (129)", res, plan.Containers[1].Spec)
	}
	blocks := strings.Split(strings.TrimSpace(out), "B2C_PIPELINE_FAILED_BY=")
	if len(blocks) != 4 {
		t.Fatalf("output %q: want three environments", out)
	}
	env := func(block string) map[string]string {
		m := map[string]string{}
		for _, line := range strings.Split("B2C_PIPELINE_FAILED_BY="+block, "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
				m[k] = v
			}
		}
		return m
	}
	check := func(name string, got map[string]string, status, failedBy, prev, prevCode, mode string) {
		t.Helper()
		for _, prefix := range []string{"B2C_", "OCIBOOT_"} {
			want := map[string]string{
				prefix + "PIPELINE_STATUS": status, prefix + "PIPELINE_FAILED_BY": failedBy,
				prefix + "PIPELINE_PREV_CONTAINER": prev, prefix + "PIPELINE_PREV_CONTAINER_EXIT_CODE": prevCode,
				prefix + "PIPELINE_SHUTDOWN_MODE": mode,
			}
			for k, v := range want {
				if g, ok := got[k]; !ok || g != v {
					t.Errorf("%s: %s=%q (set: %v), want %q", name, k, g, ok, v)
				}
			}
		}
	}
	check("first container", env(blocks[1]), "0", "", "", "", "poweroff")
	check("third container", env(blocks[2]), "3", failing2(plan), failing2(plan), "3", "poweroff")
	check("post container", env(blocks[3]), "3", failing2(plan), plan.Containers[3].Spec, "129", "reboot")

	// 130 switches back to power off.
	plan = &bootcfg.Plan{Containers: h.containers(t, `busybox sh -c 'exit 129'`, `busybox sh -c 'exit 130'`)}
	if res, _, _ := h.runPlan(t, context.Background(), plan); res.Action != PowerOff || res.Status != 0 {
		t.Errorf("result %+v: want poweroff (130 after 129) and status 0", res)
	}
}

// failing2 is the spec of the plan's second container.
func failing2(p *bootcfg.Plan) string { return p.Containers[1].Spec }

// checkEvents checks the typed events of a run: every container that
// starts was pulled first, its layers all done, and exits once.
func checkEvents(t *testing.T, events []event.Event) {
	t.Helper()
	pulled, running := map[string]bool{}, map[string]bool{}
	layers := map[string][]string{} // job → the states of its layers, in order
	for _, e := range events {
		switch e := e.(type) {
		case event.Pull:
			pulled[e.Job] = true
		case event.Layer:
			layers[e.Job] = append(layers[e.Job], fmt.Sprintf("%d/%d %s", e.Index, e.Count, e.State))
		case event.ContainerStart:
			if !pulled[e.Job] || running[e.Job] {
				t.Errorf("%s started twice, or without a pull event", e.Job)
			}
			if l := layers[e.Job]; len(l) == 0 || !strings.HasSuffix(l[len(l)-1], " done") {
				t.Errorf("%s started with its layers %q, want the last one done", e.Job, l)
			}
			running[e.Job] = true
		case event.ContainerExit:
			if !running[e.Job] {
				t.Errorf("%s exited with status %d, but no start was reported", e.Job, e.Status)
			}
			delete(running, e.Job)
		}
	}
	for job := range running {
		t.Errorf("%s started, but no exit was reported", job)
	}
}

// TestPodmanRunOptions checks the options the pipeline itself acts on:
// stop signals and timeouts, --timeout, -a, --log-driver, -p's warning,
// -q and --rmi.
func TestPodmanRunOptions(t *testing.T) {
	h := newHarness(t)
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h.layers = st
	port := freePort(t)
	plan := &bootcfg.Plan{
		// The service takes only SIGUSR1 as its stop signal, and gets all
		// the time it needs; it serves a page once its trap is set, which
		// the first container waits for.
		Services: h.containers(t, fmt.Sprintf(`--rmi --stop-signal SIGUSR1 --stop-timeout 600 busybox sh -c 'trap "echo service got USR1; exit 0" USR1; trap "" TERM; `+
			`mkdir -p /www && echo service-ready > /www/index.html && httpd -f -p 127.0.0.1:%d -h /www & wait'`, port)),
		Containers: h.containers(t,
			fmt.Sprintf(`busybox sh -c 'until wget -qO- http://127.0.0.1:%d/ 2>/dev/null; do sleep 0.1; done'`, port),
			// Killed when its time is up, whatever it is doing.
			`--timeout 1 --stop-signal=KILL busybox sleep 600`,
			`--log-driver none busybox echo discarded`,
			`-a stderr busybox sh -c 'echo out-discarded; echo err-kept >&2'`,
			`-p 8080:80 -q --rmi busybox echo quiet`,
		),
	}
	plan.Registry.Store = st
	res, out, log := h.runPlan(t, context.Background(), plan)
	if res.Status != 137 {
		t.Errorf("status %d, want 137: the second container's, killed by its --timeout with its stop signal", res.Status)
	}
	if want := "service-ready\nerr-kept\nquiet\nservice got USR1\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	for _, line := range []string{
		"container 2/5 (" + h.ref + "): ran for its --timeout of 1s: stopping it",
		"container 5/5 (" + h.ref + "): warning: -p 8080:80: the container shares the machine's network",
		"service 1/1 (" + h.ref + "): stopped, status 0",
		// The last container's --rmi waits for the service, which uses
		// the same image, and whose own --rmi forgets it at the end.
		"container 5/5 (" + h.ref + "): --rmi: " + h.ref + " is kept, service 1/1 (" + h.ref + ") uses it",
	} {
		if !strings.Contains(log, line) {
			t.Errorf("the log lacks %q:\n%s", line, log)
		}
	}
	if strings.Count(log, "image: pulled "+h.ref) != 5 {
		t.Errorf("want 5 pulls of %s in the log, the service's and the first four containers' (the fifth is quiet):\n%s", h.ref, log)
	}
	if strings.Contains(log, "killing it") {
		t.Errorf("a container was killed after its stop timeout; its stop signal should have stopped it:\n%s", log)
	}
	// --rmi forgot the image the last container used, and with it what
	// no other image needs: everything here.
	if refs, err := st.Refs(); err != nil || len(refs) != 0 {
		t.Errorf("refs left after --rmi: %v, %v", refs, err)
	}
}

// TestReplace: a container given --replace stops the service running
// under its name before it starts, and the service is not stopped again
// at the end.
func TestReplace(t *testing.T) {
	h := newHarness(t)
	plan := &bootcfg.Plan{
		Services:   h.containers(t, `--name web --stop-signal KILL busybox sleep 600`),
		Containers: h.containers(t, `--name web --replace busybox echo replaced`),
	}
	res, out, log := h.runPlan(t, context.Background(), plan)
	if res.Status != 0 || out != "replaced\n" {
		t.Errorf("status %d, output %q: want 0 and the replacing container's line", res.Status, out)
	}
	inOrder := []string{
		"container 1/1 (" + h.ref + "): --replace: stopping service 1/1 (" + h.ref + "), which has its name",
		"service 1/1 (" + h.ref + "): stopped, status 137",
		"container 1/1 (" + h.ref + "): starting web",
	}
	rest := log
	for _, want := range inOrder {
		i := strings.Index(rest, want)
		if i < 0 {
			t.Fatalf("the log lacks %q after the previous lines:\n%s", want, log)
		}
		rest = rest[i:]
	}
	if strings.Count(log, "service 1/1 ("+h.ref+"): stopped") != 1 {
		t.Errorf("the service was stopped more than once:\n%s", log)
	}
}

// Package pipeline runs a Plan's containers under the OCI runtime the way
// boot2container does: services in the background, then the pipeline
// containers one after the other, then the post containers, and computes
// the pipeline status (the exit code of the first pipeline container that
// failed, else 0) and the end action (power off, or reboot when a
// container asked for it).
package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/event"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/layer"
	"github.com/ociboot/ociboot/internal/runtime"
	"github.com/ociboot/ociboot/internal/store"
	"golang.org/x/sys/unix"
)

// StatusSetupFailed is a container's status when it could not be started
// at all (image pull, unpack or bundle failure), as podman run's 125.
const StatusSetupFailed = 125

// Exit codes with which a container changes the end action, as in
// boot2container (a container that ran `reboot` exits with 129).
const (
	StatusReboot   = 129
	StatusPowerOff = 130
)

// stopGrace is how long a container gets between SIGTERM and SIGKILL when
// it is stopped (a service at the end, anything at shutdown).
const stopGrace = 10 * time.Second

// EndAction is what the machine does once the pipeline is over.
type EndAction string

// End actions; their values are those of B2C_PIPELINE_SHUTDOWN_MODE.
const (
	PowerOff EndAction = "poweroff"
	Reboot   EndAction = "reboot"
)

// Hooks run at the pipeline's points.
type Hooks interface {
	At(ctx context.Context, point string) error
}

// Volumes are the named volumes containers mount.
type Volumes interface {
	// Dir returns the volume's directory, making the volume when new.
	Dir(name string) (string, error)
}

// Procs starts processes and waits for them. PID 1's reaper is one; it
// must be used for every child so that reaping orphans cannot steal a
// container's exit status.
type Procs interface {
	Start(cmd *exec.Cmd) (wait func() int, err error)
}

// Config is what Run needs.
type Config struct {
	Plan *bootcfg.Plan
	// Puller pulls the images, with the Plan's registry settings.
	Puller  *image.Puller
	Runtime runtime.Runtime
	// StateDir holds one bundle (config.json + rootfs) per container
	// while it runs.
	StateDir string
	// Layers, when set, is the image store of unpacked layers: a
	// container's root is then its image's layers, unpacked once into
	// the store, under overlayfs, with a writable upper directory of its
	// own in ScratchDir (StateDir when ""). Images overlayfs cannot show
	// as they are, and every image without a store, are unpacked whole
	// into the bundle.
	Layers     *store.Store
	ScratchDir string
	// Volumes gives the directory of a named volume (-v NAME:/path);
	// nil refuses them.
	Volumes Volumes
	// Hooks, when set, run at the pipeline's points (volumes pulled and
	// pushed): pipeline_start before anything, container_start and
	// container_end around every container, pipeline_end after
	// everything, even after failures. A failed pipeline_start skips the
	// containers; a failed pipeline_start or pipeline_end fails the
	// pipeline.
	Hooks Hooks
	Procs Procs
	// Events receives what happens: pulls, container starts and exits,
	// progress lines.
	Events *event.Reporter
	// Stdin, Stdout and Stderr are the containers' stdio; nil means the
	// process's own (the console).
	Stdin, Stdout, Stderr *os.File
	// CmdlineFile, when set, is what containers see as /proc/cmdline (the
	// command line with its secrets masked).
	CmdlineFile string
	// DevicesReady, when set, is called before the devices of a
	// container that uses the machine's (runtime.UsesHostDevices) are
	// listed, once its image is pulled: it returns when the drivers of
	// the devices present are loaded.
	DevicesReady func()
	// InitBinary is the ociboot binary, the init of containers given
	// --init; "" means this executable.
	InitBinary string
}

// Result is how the pipeline went.
type Result struct {
	// Status is the exit code of the first pipeline container that failed
	// (StatusSetupFailed if it could not start), else 0.
	Status int
	// FailedBy is the spec of that container, "" when Status is 0.
	FailedBy string
	// Action is the end action: PowerOff unless a container exited with
	// StatusReboot (and none later with StatusPowerOff).
	Action EndAction
}

// state is what the containers are told about the pipeline so far.
type state struct {
	Result
	prevSpec string
	prevCode int
	ran      bool // prevSpec and prevCode are set
}

// env is the environment every container gets, under boot2container's
// names and ociboot's.
func (s state) env() []string {
	prevCode := ""
	if s.ran {
		prevCode = strconv.Itoa(s.prevCode)
	}
	vars := [][2]string{
		{"PIPELINE_STATUS", strconv.Itoa(s.Status)},
		{"PIPELINE_FAILED_BY", s.FailedBy},
		{"PIPELINE_PREV_CONTAINER", s.prevSpec},
		{"PIPELINE_PREV_CONTAINER_EXIT_CODE", prevCode},
		{"PIPELINE_SHUTDOWN_MODE", string(s.Action)},
	}
	var env []string
	for _, prefix := range []string{"B2C_", "OCIBOOT_"} {
		for _, v := range vars {
			env = append(env, prefix+v[0]+"="+v[1])
		}
	}
	return env
}

// record takes a finished container's exit code into account; pipeline
// containers may set the status, any container the end action. 129 and
// 130 are what a container's init gets when it calls reboot(2) or
// poweroff in its PID namespace: requests, not failures.
func (s *state) record(spec string, code int, pipeline bool) {
	s.prevSpec, s.prevCode, s.ran = spec, code, true
	switch code {
	case StatusReboot:
		s.Action = Reboot
	case StatusPowerOff:
		s.Action = PowerOff
	}
	if pipeline && failed(code) && s.Status == 0 {
		s.Status, s.FailedBy = code, spec
	}
}

// failed tells whether a pipeline container's exit code is a failure: 129
// and 130 are requests (reboot, power off), not failures.
func failed(code int) bool {
	return code != 0 && code != StatusReboot && code != StatusPowerOff
}

// job is one container to run, with what names it in messages.
type job struct {
	ct    bootcfg.Container
	kind  string // "container", "service" or "post container"
	index int    // from 1, within its kind
	count int
	id    string
}

func (j job) String() string {
	return fmt.Sprintf("%s %d/%d (%s)", j.kind, j.index, j.count, j.ct.Image)
}

func jobs(list []bootcfg.Container, kind, idPrefix string) []job {
	out := make([]job, len(list))
	for i, ct := range list {
		id := ct.Name
		if id == "" {
			id = fmt.Sprintf("%s-%d", idPrefix, i+1)
		}
		out[i] = job{ct: ct, kind: kind, index: i + 1, count: len(list), id: id}
	}
	return out
}

// Run starts the plan's services, runs its pipeline containers in order
// (with Pipefail, none after the first failure), then its post
// containers, stops the services and returns the result. When ctx is
// cancelled (the machine is asked to shut down), the running containers
// are stopped and no more are started.
func Run(ctx context.Context, c Config) Result {
	s := state{Result: Result{Action: PowerOff}}
	// A pipeline_start that fails (a volume not pulled) skips the
	// services and the pipeline; the post containers still run.
	startFailed := c.hook(ctx, "pipeline_start") != nil
	if startFailed {
		s.record("pipeline_start", StatusSetupFailed, true)
	}

	var services []*running
	for _, j := range jobs(c.Plan.Services, "service", "service") {
		if ctx.Err() != nil || startFailed {
			break
		}
		services = c.replace(j, services)
		r, err := c.start(ctx, j, s.env())
		if err != nil {
			c.Events.Report(event.ContainerFailed{Job: j.String(), Err: err})
			continue
		}
		c.Events.Report(event.ContainerBackground{Job: j.String()})
		services = append(services, r)
	}

	stopped := false
	for _, j := range jobs(c.Plan.Containers, "container", "container") {
		switch {
		case startFailed:
			c.Events.Report(event.ContainerSkipped{Job: j.String(), Why: "pipeline_start failed"})
			continue
		case ctx.Err() != nil:
			c.Events.Report(event.ContainerSkipped{Job: j.String(), Why: "shutting down"})
			s.record(j.ct.Spec, StatusSetupFailed, true)
			continue
		case stopped:
			c.Events.Report(event.ContainerSkipped{Job: j.String(), Why: "pipefail, an earlier container failed"})
			continue
		}
		services = c.replace(j, services)
		code := c.runJob(ctx, j, s.env())
		c.removeImage(j, services)
		s.record(j.ct.Spec, code, true)
		stopped = c.Plan.Pipefail && failed(code)
	}

	for _, j := range jobs(c.Plan.PostContainers, "post container", "post") {
		if ctx.Err() != nil {
			c.Events.Report(event.ContainerSkipped{Job: j.String(), Why: "shutting down"})
			continue
		}
		services = c.replace(j, services)
		s.record(j.ct.Spec, c.runJob(ctx, j, s.env()), false)
		c.removeImage(j, services)
	}

	for _, r := range services {
		code := c.stop(r)
		c.Events.Report(event.ContainerExit{Job: r.job.String(), Status: code, Stopped: true})
	}
	for _, r := range services {
		c.removeImage(r.job, nil)
	}
	return c.end(ctx, s.Result)
}

// end runs the pipeline_end hook, which fails a pipeline that had not
// failed. It runs even when the machine is asked to stop: what
// containers wrote is pushed first.
func (c Config) end(ctx context.Context, r Result) Result {
	if err := c.hook(context.WithoutCancel(ctx), "pipeline_end"); err != nil && r.Status == 0 {
		r.Status, r.FailedBy = StatusSetupFailed, "pipeline_end"
	}
	return r
}

// hook runs the hooks at point, reporting a failure.
func (c Config) hook(ctx context.Context, point string) error {
	if c.Hooks == nil {
		return nil
	}
	err := c.Hooks.At(ctx, point)
	if err != nil {
		c.Events.Report(event.Message{Stage: "volumes", Text: fmt.Sprintf("%s: %v", point, err)})
	}
	return err
}

// running is a started container.
type running struct {
	job        job
	exited     chan struct{} // closed when it is over, code set
	code       int
	stopSignal int // runtime.StopSignal
}

// runJob runs one container to its end and returns its status, the
// container_start and container_end hooks around it.
func (c Config) runJob(ctx context.Context, j job, env []string) int {
	if err := c.hook(ctx, "container_start"); err != nil {
		c.Events.Report(event.ContainerFailed{Job: j.String(), Err: err})
		return StatusSetupFailed
	}
	code := c.runContainer(ctx, j, env)
	if err := c.hook(context.WithoutCancel(ctx), "container_end"); err != nil && !failed(code) {
		return StatusSetupFailed
	}
	return code
}

// runContainer runs one container to its end and returns its status.
func (c Config) runContainer(ctx context.Context, j job, env []string) int {
	r, err := c.start(ctx, j, env)
	if err != nil {
		c.Events.Report(event.ContainerFailed{Job: j.String(), Err: err})
		return StatusSetupFailed
	}
	var code int
	select {
	case <-r.exited:
		code = r.code
	case <-ctx.Done():
		code = c.stop(r)
	}
	c.Events.Report(event.ContainerExit{Job: j.String(), Status: code})
	return code
}

// start pulls, unpacks and starts one container. Its bundle is removed
// when it ends.
func (c Config) start(ctx context.Context, j job, env []string) (*running, error) {
	bundle := filepath.Join(c.StateDir, "containers", j.id)
	for _, w := range j.ct.Warnings {
		c.Events.Report(event.Message{Stage: "pipeline", Text: fmt.Sprintf("%s: warning: %s", j, w)})
	}
	c.Events.Report(event.Pull{Job: j.String(), Image: j.ct.Image})
	begin := time.Now()
	stopSignal, err := prepare(ctx, c, j, bundle, env)
	if err != nil {
		c.removeBundle(j, bundle)
		return nil, err
	}
	c.Events.Report(event.ContainerStart{Job: j.String(), ID: j.id, Prepared: time.Since(begin)})
	cmd := c.Runtime.Command(bundle, j.id)
	devNull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		c.removeBundle(j, bundle)
		return nil, err
	}
	defer devNull.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = attached(j.ct, devNull, stdio(c.Stdin, os.Stdin), stdio(c.Stdout, os.Stdout), stdio(c.Stderr, os.Stderr))
	wait, err := c.Procs.Start(cmd)
	if err != nil {
		c.removeBundle(j, bundle)
		return nil, err
	}
	r := &running{job: j, exited: make(chan struct{}), stopSignal: stopSignal}
	go func() {
		// `crun run` deletes the container's state when it ends.
		r.code = wait()
		c.removeBundle(j, bundle)
		close(r.exited)
	}()
	if j.ct.Timeout > 0 {
		go c.timeout(r, time.Duration(j.ct.Timeout)*time.Second)
	}
	return r, nil
}

// replace stops the service running under j's name, when j was given
// --replace (bootcfg refuses the name otherwise), and returns the
// services left.
func (c Config) replace(j job, services []*running) []*running {
	if !j.ct.Replace {
		return services
	}
	return slices.DeleteFunc(services, func(r *running) bool {
		if r.job.id != j.id {
			return false
		}
		c.Events.Report(event.Message{Stage: "pipeline", Text: fmt.Sprintf("%s: --replace: stopping %s, which has its name", j, r.job)})
		c.Events.Report(event.ContainerExit{Job: r.job.String(), Status: c.stop(r), Stopped: true})
		c.removeImage(r.job, services) // r is over: only the others count
		return true
	})
}

// removeImage forgets the image of j, which is over, when it was given
// --rmi, unless one of the services still running uses it (its layers
// are its root), as podman keeps an image another container uses.
func (c Config) removeImage(j job, running []*running) {
	if !j.ct.Rmi {
		return
	}
	for _, r := range running {
		select {
		case <-r.exited:
			continue
		default:
		}
		if r.job.ct.Image == j.ct.Image {
			c.Events.Report(event.Message{Stage: "pipeline", Text: fmt.Sprintf("%s: --rmi: %s is kept, %s uses it", j, j.ct.Image, r.job)})
			return
		}
	}
	if err := c.Puller.Forget(j.ct.Image, j.ct.Platform); err != nil {
		c.Events.Report(event.Message{Stage: "pipeline", Text: fmt.Sprintf("%s: --rmi: %v", j, err)})
	}
}

// attached returns the container's stdin, stdout and stderr: the
// console's (in, out and errOut), or devNull for those it is not attached
// to. Only -i reads the console (with -t, the runtime needs it as its
// stdin to set up the terminal); --log-driver=none discards the output;
// -a names the streams attached.
func attached(ct bootcfg.Container, devNull, in, out, errOut *os.File) (*os.File, *os.File, *os.File) {
	if !ct.Interactive && !ct.TTY {
		in = devNull
	}
	if ct.LogNone {
		out, errOut = devNull, devNull
	}
	if len(ct.Attach) > 0 {
		streams := []**os.File{&in, &out, &errOut}
		for i, name := range []string{"stdin", "stdout", "stderr"} {
			if !slices.Contains(ct.Attach, name) && !(i == 0 && ct.TTY) {
				*streams[i] = devNull
			}
		}
	}
	return in, out, errOut
}

// timeout stops r once it has run for d (--timeout).
func (c Config) timeout(r *running, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.exited:
	case <-t.C:
		c.Events.Report(event.Message{Stage: "pipeline", Text: fmt.Sprintf("%s: ran for its --timeout of %s: stopping it", r.job, d)})
		c.stop(r)
	}
}

// stop asks a running container to stop with its stop signal, then
// insists after its stop timeout with SIGKILL, and returns its status.
func (c Config) stop(r *running) int {
	select {
	case <-r.exited:
		return r.code
	default:
	}
	sig := r.stopSignal
	grace := stopGrace
	if t := r.job.ct.StopTimeout; t != nil {
		grace = time.Duration(*t) * time.Second
	}
	c.kill(r.job.id, strconv.Itoa(sig))
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-r.exited:
		return r.code
	case <-t.C:
	}
	c.Events.Report(event.Message{Stage: "pipeline", Text: fmt.Sprintf("%s: still running %s after signal %d: killing it", r.job, grace, sig)})
	c.kill(r.job.id, strconv.Itoa(int(unix.SIGKILL)))
	<-r.exited
	return r.code
}

// stdio returns f, or def when f is nil.
func stdio(f, def *os.File) *os.File {
	if f != nil {
		return f
	}
	return def
}

// prepare pulls the image of job, unpacks it (or assembles its layers
// from the store) and writes the bundle. It returns the container's stop
// signal.
func prepare(ctx context.Context, c Config, j job, bundle string, env []string) (int, error) {
	ct, err := c.withVolumes(j.ct)
	if err != nil {
		return 0, err
	}
	rq := image.Request{Platform: ct.Platform, Policy: ct.Pull, Log: c.Events.Writer("image")}
	if ct.Registry.Quiet {
		rq.Log = io.Discard
	}
	if rq.Registry, err = registryOverrides(ct.Registry); err != nil {
		return 0, fmt.Errorf("image %s: %w", ct.Image, err)
	}
	img, err := c.Puller.Pull(ctx, ct.Image, rq)
	if err != nil {
		return 0, err
	}
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return 0, fmt.Errorf("creating %s: %w", rootfs, err)
	}
	// Each layer's state changes are reported; the progress lines stay
	// the image package's own.
	states := map[int]image.LayerState{}
	progress := func(p image.LayerProgress) {
		if s, seen := states[p.Index]; seen && s == p.State {
			return
		}
		states[p.Index] = p.State
		c.Events.Report(event.Layer{Job: j.String(), Index: p.Index, Count: p.Count, Digest: p.Digest.String(), Size: p.Size,
			Fetched: p.Fetched, Unpacked: p.Unpacked, State: p.State.String(), Err: p.Err})
	}
	opts := image.UnpackOptions{Log: rq.Log, Progress: progress, AllowDevices: true}
	mounted, err := c.assemble(ctx, j, img, rootfs, opts)
	if err != nil {
		return 0, err
	}
	if !mounted {
		if err := image.UnpackWith(ctx, img, rootfs, opts); err != nil {
			return 0, err
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return 0, fmt.Errorf("reading the image config of %s: %w", ct.Image, err)
	}
	initBinary := c.InitBinary
	if initBinary == "" && ct.Init {
		if initBinary, err = os.Executable(); err != nil {
			return 0, fmt.Errorf("--init: %w", err)
		}
	}
	if c.DevicesReady != nil && runtime.UsesHostDevices(ct) {
		c.DevicesReady()
	}
	spec, err := runtime.Spec(cfg, ct, runtime.Options{RootfsDir: rootfs, Env: env, CmdlineFile: c.CmdlineFile, InitBinary: initBinary,
		ID: j.id, FilesDir: bundle})
	if err != nil {
		return 0, err
	}
	if err := runtime.WriteBundle(bundle, spec); err != nil {
		return 0, err
	}
	var cfgValue v1.Config
	if cfg != nil {
		cfgValue = cfg.Config
	}
	stopSignal, err := runtime.StopSignal(cfgValue, ct)
	if err == nil && runtime.SystemdMode(cfgValue, ct) {
		c.Events.Report(event.Message{Stage: "pipeline", Text: fmt.Sprintf("%s: systemd mode: tmpfs on /run, /run/lock, /tmp and /var/log/journal, /sys/fs/cgroup writable, the console as /dev/console, stop signal %d", j, stopSignal)})
	}
	return stopSignal, err
}

// withVolumes returns ct with its volume mounts made bind mounts of the
// volumes' directories.
func (c Config) withVolumes(ct bootcfg.Container) (bootcfg.Container, error) {
	mounts := slices.Clone(ct.Mounts)
	for i, m := range mounts {
		if m.Type != "volume" {
			continue
		}
		if c.Volumes == nil {
			return ct, fmt.Errorf("volume %s: this boot has no volumes", m.Source)
		}
		dir, err := c.Volumes.Dir(m.Source)
		if err != nil {
			return ct, err
		}
		mounts[i].Type, mounts[i].Source = "bind", dir
	}
	ct.Mounts = mounts
	return ct, nil
}

// assemble mounts the layers of img, unpacked into the store once, under
// overlayfs on rootfs, with an upper directory of the job's own; it
// reports false, and mounts nothing, when there is no store or the image
// cannot be shown by overlayfs as it is (it is then unpacked whole).
func (c Config) assemble(ctx context.Context, j job, img v1.Image, rootfs string, opts image.UnpackOptions) (bool, error) {
	if c.Layers == nil {
		return false, nil
	}
	dirs, err := image.UnpackLayers(ctx, img, c.Layers, opts)
	if err == nil {
		scratch := c.scratch(j)
		err = layer.MountOverlay(dirs, filepath.Join(scratch, "upper"), filepath.Join(scratch, "work"), rootfs)
	}
	if errors.Is(err, layer.ErrNotOverlay) {
		fmt.Fprintf(c.Events.Writer("image"), "%s: %v; unpacking it whole instead\n", j.ct.Image, err)
		return false, nil
	}
	return err == nil, err
}

// scratch is where the job's overlayfs upper and work directories live.
func (c Config) scratch(j job) string {
	return filepath.Join(cmp.Or(c.ScratchDir, filepath.Join(c.StateDir, "scratch")), j.id)
}

// removeBundle removes the job's bundle, its root unmounted first when
// it is an overlay, and its scratch directory.
func (c Config) removeBundle(j job, bundle string) {
	_ = unix.Unmount(filepath.Join(bundle, "rootfs"), unix.MNT_DETACH) // not a mount point: nothing to do
	os.RemoveAll(bundle)
	os.RemoveAll(c.scratch(j))
}

// kill sends a signal to the container through the runtime.
func (c Config) kill(id, sig string) {
	cmd := exec.Command(c.Runtime.Path, "kill", id, sig)
	if wait, err := c.Procs.Start(cmd); err == nil {
		wait()
	}
}

// registryOverrides reads a container's own pull options: its auth file
// and certificate directory.
func registryOverrides(f bootcfg.PullFlags) (image.RegistryOverrides, error) {
	o := image.RegistryOverrides{TLSVerify: f.TLSVerify, Creds: f.Creds}
	var err error
	if f.AuthFile != "" {
		if o.Auth, err = image.ReadDockerConfig(f.AuthFile); err != nil {
			return o, fmt.Errorf("--authfile: %w", err)
		}
	}
	if f.CertDir != "" {
		if o.CACerts, o.ClientCerts, err = image.ReadCertDir(f.CertDir); err != nil {
			return o, fmt.Errorf("--cert-dir: %w", err)
		}
	}
	return o, nil
}

// Package boot is the init's main sequence: the walk from the kernel command
// line to power-off, as an ordered list of stages run by one loop. Each
// stage is a small function over the boot's state that calls into the
// package owning the work; this one only strings them together, reports
// what happens, and decides what a failure means.
package boot

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/console"
	"github.com/ociboot/ociboot/internal/event"
	"github.com/ociboot/ociboot/internal/hotplug"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/kmod"
	"github.com/ociboot/ociboot/internal/netconf"
	"github.com/ociboot/ociboot/internal/pid1"
	"github.com/ociboot/ociboot/internal/pipeline"
	"github.com/ociboot/ociboot/internal/report"
	"github.com/ociboot/ociboot/internal/store"
	"github.com/ociboot/ociboot/internal/volume"
)

// failDelay is how long a failed boot waits, so that a person can read the
// error, before powering off (unless a poweroff delay was given).
const failDelay = 5 * time.Second

// state is what the stages share: the Plan, and what earlier stages
// produced.
type state struct {
	con    io.Writer // the console, for what is not an event (the shell, the safe line)
	events *event.Reporter
	sink   *console.Sink // the events' console lines
	report *report.Sink  // the events sent to ociboot.report
	// reportStarted is set once the plan has said where events go.
	reportStarted bool
	reaper        *pid1.Reaper
	input         input         // the baked-in configuration and the command line
	plan          *bootcfg.Plan // nil only when the baked-in configuration is unreadable
	puller        *image.Puller // the Plan's registry settings, one HTTP stack for every pull

	// layers is the image store of unpacked layers (the cache's, or one
	// in RAM), scratch where containers' writable layers go ("" for the
	// bundles' directory).
	layers  *store.Store
	scratch string
	volumes *volume.Set // nil without volumes
	kmods   *kmod.Index // the initramfs's modules, once read (moduleIndex)
	// tree, in switch-root mode with the module tree of `ociboot build
	// --modules-all`, is that tree, mounted apart until the hand-over;
	// nil otherwise.
	tree    *stagedTree
	hotplug *hotplug.Listener // loads the drivers of devices as they come; nil when off
	// storageDrivers is closed once the drivers of storage controllers,
	// which coldplug loads in the background, are loaded; nil when it
	// loads none.
	storageDrivers <-chan struct{}
	// fsModules waits for the filesystem modules of the storage stage
	// or of the containers' layers, started early, and returns how their
	// loading went; nil when not started.
	fsModules func() error

	network     *netconf.Result
	stopNetwork func() *netconf.Result // ends the network's upkeep, gives its last state

	requested atomic.Int32    // a pid1.Action asked from outside; PowerOff unless asked
	result    pipeline.Result // the pipeline's
	interrupt context.Context // ends when a power-off or reboot is asked from outside
}

// stage is one step of the walk. A stage whose skip says so is left out,
// section line included.
type stage struct {
	name string
	run  func(context.Context, *state) error
	skip func(*state) bool
}

// stages is the walk, in order.
func stages() []stage {
	return []stage{
		{name: "configuration", run: configure},
		{name: "modules", run: loadModules},
		{name: "network", run: bringUpNetwork},
		{name: "clock", run: syncClock},
		{name: "extra_args_url", run: fetchExtraArgs, skip: noExtraArgs},
		{name: "storage", run: prepareStorage, skip: noStorage},
		{name: "volumes", run: prepareVolumes, skip: noVolumes},
		{name: "root", run: switchRoot, skip: containerMode},
		{name: "containers", run: runContainers, skip: rootMode},
		{name: "end", run: end, skip: rootMode},
	}
}

func noExtraArgs(s *state) bool   { return s.plan.ExtraArgsURL == "" }
func containerMode(s *state) bool { return s.plan.Root == "" }
func rootMode(s *state) bool      { return s.plan.Root != "" }

// Main runs the init. It never returns.
func Main() {
	con := console.NewMirror(os.Stdout)
	s := &state{con: con, sink: console.NewSink(con), report: report.New(report.Options{Log: con})}
	s.events = event.New(s.sink, s.report)
	s.input = readInput()
	s.plan = s.input.plan
	s.freeEarlyMicrocode()
	if pid1.RootMoved(os.Environ()) {
		s.say("root: the kernel made the initramfs a ramfs (root= was given), so it was moved into a tmpfs")
	} else if s.plan == nil || s.plan.Root == "" {
		// The kernel's rootfs cannot be pivoted away from, as the
		// container runtime must: use it through a bind mount, or (a
		// ramfs) move into a tmpfs and re-execute from there, which does
		// not return on success. Switch-root mode needs no pivot_root,
		// and stays.
		if err := pid1.PivotableRoot("75%"); err != nil {
			s.fail(&stageError{"root", err})
		}
	}
	if err := pid1.MountAPI(); err != nil {
		s.fail(&stageError{"mounts", err})
	}
	s.identify()
	if err := pid1.SetupConsole(); err != nil {
		s.say("console: %v (going on)", err)
	}
	others, err := pid1.OtherConsoles()
	con.Add(others...)
	if err != nil {
		s.say("console: %v (going on)", err)
	}
	s.reaper = pid1.NewReaper()
	defer func() {
		if p := recover(); p != nil {
			s.fail(fmt.Errorf("internal error: %v\n%s", p, debug.Stack()))
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	s.interrupt = ctx
	go func() {
		a := <-pid1.Requests()
		s.requested.Store(int32(a))
		s.say("%s requested: stopping the containers", a)
		cancel()
	}()
	if err := s.run(ctx, stages()); err != nil {
		s.fail(err)
	}
}

// freeEarlyMicrocode frees the early microcode the kernel was handed, and
// says what it was: the one sign in a VM, where the kernel's loader
// stays off, that the early archive reached the kernel.
func (s *state) freeEarlyMicrocode() {
	ucode, err := pid1.FreeEarlyMicrocode("/", bootcfg.EarlyMicrocodeDir)
	if err != nil {
		s.say("%v (going on)", err)
	}
	if len(ucode) == 0 {
		return
	}
	files := make([]string, len(ucode))
	for i, f := range ucode {
		files[i] = fmt.Sprintf("%s (%d bytes)", f.Name, f.Size)
	}
	s.say("early microcode: the kernel was handed %s; freed", strings.Join(files, ", "))
}

// run is the one loop: it runs each stage not skipped, reporting its
// start (the section line) and end, and stops at the first error,
// wrapped with the stage's name, for Main to follow the failure action.
func (s *state) run(ctx context.Context, stages []stage) error {
	for _, st := range stages {
		if st.skip != nil && st.skip(s) {
			continue
		}
		start := console.SinceBoot()
		s.events.Report(event.StageStart{Stage: st.name, SinceBoot: start})
		err := st.run(ctx, s)
		end := console.SinceBoot()
		s.events.Report(event.StageEnd{Stage: st.name, SinceBoot: end, Took: end - start, Err: err})
		if err != nil {
			return &stageError{st.name, err}
		}
	}
	return nil
}

// stageError is a failure of one boot stage.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

// say reports a line of ociboot's own.
func (s *state) say(format string, args ...any) {
	s.events.Report(event.Message{Text: fmt.Sprintf(format, args...)})
}

// log returns the writer of a stage's progress lines.
func (s *state) log(stage string) io.Writer { return s.events.Writer(stage) }

// end reports the pipeline's status and powers off or reboots, as the
// containers or a request from outside asked. It does not return.
func end(_ context.Context, s *state) error {
	s.events.Report(event.PipelineStatus{Status: s.result.Status})
	action := pid1.PowerOff
	if s.result.Action == pipeline.Reboot {
		action = pid1.Reboot
	}
	if s.interrupt.Err() != nil {
		// Asked from outside (SIGTERM, ctrl-alt-del): that wins.
		action = pid1.Action(s.requested.Load())
	}
	delay := time.Duration(max(s.plan.PoweroffDelay, 0)) * time.Second
	s.events.Report(event.EndAction{Action: action.String(), Delay: delay})
	s.flushReport()
	time.Sleep(delay)
	pid1.ShutdownWith(action, s.reaper, s.con, endCommand(s.plan, action))
	return nil
}

// endCommand is the command the plan gives for action, if any.
func endCommand(plan *bootcfg.Plan, action pid1.Action) []string {
	if plan == nil {
		return nil
	}
	if action == pid1.Reboot {
		return plan.RebootCmd
	}
	return plan.ShutdownCmd
}

// fail reports a stage failure on the console, waits so that it can be
// read, and powers off or reboots (or starts a shell first) as the plan,
// if there is one, says. It does not return.
func (s *state) fail(err error) {
	s.say("boot failed at %v", err)
	if s.reaper == nil {
		s.reaper = pid1.NewReaper()
	}
	plan := s.plan
	if plan != nil && plan.OnFailure == bootcfg.FailShell && plan.Shell() != "" {
		runShell(s, plan.Shell())
		plan.PoweroffDelay = 0 // the shell's user has read the error
	}
	wait, action := failDelay, pid1.PowerOff
	if plan != nil {
		if plan.PoweroffDelay >= 0 {
			wait = time.Duration(plan.PoweroffDelay) * time.Second
		}
		if plan.OnFailure == bootcfg.FailReboot {
			action = pid1.Reboot
		}
	}
	s.events.Report(event.EndAction{Action: action.String(), Delay: wait})
	s.startReport(true) // the failure may have come before the plan was final
	s.flushReport()
	time.Sleep(wait)
	pid1.ShutdownWith(action, s.reaper, s.con, endCommand(plan, action))
}

// configure reports what could not be read of the configuration, and
// gives the machine its identity and keymap.
func configure(_ context.Context, s *state) error {
	if err := s.input.err; err != nil {
		return err
	}
	if err := s.usePlan(s.input.plan); err != nil {
		return err
	}
	s.sink.SetSections(s.plan.ConsoleSections)
	s.startReport(s.plan.ExtraArgsURL == "")
	setIdentity(s, cmp.Or(hostname(s.plan), "ociboot"))
	if s.plan.Keymap != "" {
		if err := loadKeymap(s.plan.Keymap); err != nil {
			return fmt.Errorf("keymap: %w", err)
		}
		s.say("keymap: %s loaded", s.plan.Keymap)
	}
	return nil
}

// usePlan makes plan the boot's, with the one puller of its registry
// settings.
func (s *state) usePlan(plan *bootcfg.Plan) error {
	puller, err := image.NewPuller(plan.Registry)
	if err != nil {
		return err
	}
	s.plan, s.puller = plan, puller
	return nil
}

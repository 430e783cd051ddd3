// Package pipeline runs a Plan's containers one after the other under the
// OCI runtime and computes the pipeline status the way boot2container does:
// the exit code of the first container that failed, else 0.
package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/console"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/runtime"
)

// StatusSetupFailed is a container's status when it could not be started
// at all (image pull, unpack or bundle failure), as podman run's 125.
const StatusSetupFailed = 125

// stopGrace is how long a container gets between SIGTERM and SIGKILL when
// the machine is asked to shut down.
const stopGrace = 10 * time.Second

// Procs starts processes and waits for them. PID 1's reaper is one; it
// must be used for every child so that reaping orphans cannot steal a
// container's exit status.
type Procs interface {
	Start(cmd *exec.Cmd) (wait func() int, err error)
}

// Config is what Run needs.
type Config struct {
	Plan    *bootcfg.Plan
	Runtime runtime.Runtime
	// StateDir holds one bundle (config.json + rootfs) per container
	// while it runs.
	StateDir string
	Procs    Procs
	// Log gets ociboot's progress lines.
	Log io.Writer
	// Stdin, Stdout and Stderr are the containers' stdio; nil means the
	// process's own (the console).
	Stdin, Stdout, Stderr *os.File
}

// stdio returns f, or def when f is nil.
func stdio(f, def *os.File) *os.File {
	if f != nil {
		return f
	}
	return def
}

// Run runs every container of the plan in order and returns the pipeline
// status. When ctx is cancelled, the running container is stopped and the
// remaining ones are not started.
func Run(ctx context.Context, c Config) int {
	status := 0
	n := len(c.Plan.Containers)
	for i, ct := range c.Plan.Containers {
		if ctx.Err() != nil {
			fmt.Fprintf(c.Log, "ociboot: container %d/%d (%s): not started: shutting down\n", i+1, n, ct.Image)
			if status == 0 {
				status = StatusSetupFailed
			}
			continue
		}
		code := runOne(ctx, c, i, ct)
		fmt.Fprintf(c.Log, "ociboot: container %d/%d (%s) exited with status %d\n", i+1, n, ct.Image, code)
		if code != 0 && status == 0 {
			status = code
		}
	}
	return status
}

// runOne pulls, unpacks and runs one container, and returns its status.
func runOne(ctx context.Context, c Config, i int, ct bootcfg.Container) int {
	n := len(c.Plan.Containers)
	id := ct.Name
	if id == "" {
		id = fmt.Sprintf("container-%d", i+1)
	}
	bundle := filepath.Join(c.StateDir, "containers", id)
	defer os.RemoveAll(bundle)

	fmt.Fprintf(c.Log, "ociboot: container %d/%d: pulling %s\n", i+1, n, ct.Image)
	start := time.Now()
	if err := prepare(ctx, c, ct, id, bundle); err != nil {
		fmt.Fprintf(c.Log, "ociboot: container %d/%d (%s): %v\n", i+1, n, ct.Image, err)
		return StatusSetupFailed
	}

	fmt.Fprintf(c.Log, "ociboot: container %d/%d: starting %s (pulled and unpacked in %s)\n", i+1, n, id, time.Since(start).Round(time.Millisecond))
	cmd := c.Runtime.Command(bundle, id)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio(c.Stdin, os.Stdin), stdio(c.Stdout, os.Stdout), stdio(c.Stderr, os.Stderr)
	wait, err := c.Procs.Start(cmd)
	if err != nil {
		fmt.Fprintf(c.Log, "ociboot: container %d/%d (%s): %v\n", i+1, n, ct.Image, err)
		return StatusSetupFailed
	}
	done := make(chan int, 1)
	go func() { done <- wait() }()
	// `crun run` deletes the container's state when it ends.
	select {
	case code := <-done:
		return code
	case <-ctx.Done():
	}
	// Shutting down: ask the container to stop, then insist.
	c.kill(id, "TERM")
	select {
	case code := <-done:
		return code
	case <-time.After(stopGrace):
	}
	c.kill(id, "KILL")
	return <-done
}

// prepare pulls the image, unpacks it and writes the bundle.
func prepare(ctx context.Context, c Config, ct bootcfg.Container, id, bundle string) error {
	platform := c.Plan.Platform
	if ct.Platform.Architecture != "" {
		platform = ct.Platform
	}
	img, err := image.Pull(ctx, ct.Image, image.PullOptions{
		Insecure: c.Plan.InsecureRegistries,
		Platform: platform,
		Log:      console.Stage(c.Log, "image"),
		Mirrors:  c.Plan.RegistryMirrors,
		Auth:     c.Plan.RegistryAuth,
		CACerts:  c.Plan.CACerts,
		Timeout:  c.Plan.PullTimeout,
	})
	if err != nil {
		return err
	}
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", rootfs, err)
	}
	if err := image.Unpack(ctx, img, rootfs, console.Stage(c.Log, "image")); err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("reading the image config of %s: %w", ct.Image, err)
	}
	spec, err := runtime.Spec(cfg, ct, runtime.Options{RootfsDir: rootfs})
	if err != nil {
		return err
	}
	return runtime.WriteBundle(bundle, spec)
}

// kill sends a signal to the container through the runtime.
func (c Config) kill(id, sig string) {
	cmd := exec.Command(c.Runtime.Path, "kill", id, sig)
	if wait, err := c.Procs.Start(cmd); err == nil {
		wait()
	}
}

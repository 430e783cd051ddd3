package boot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/console"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/kmod"
	"github.com/ociboot/ociboot/internal/netconf"
	"github.com/ociboot/ociboot/internal/pid1"
	"github.com/ociboot/ociboot/internal/switchroot"
)

// newRoot is where the image is unpacked before it becomes "/".
const newRoot = "/sysroot"

// switchRoot boots the plan's root as the OS: unpack, hand over, switch
// root and execute its init. It returns only on failure.
func switchRoot(ctx context.Context, s *state) error {
	plan, log := s.plan, s.log("root")
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	root, err := switchroot.Prepare(ctx, newRoot, switchroot.Options{
		Source:    plan.Root,
		Size:      plan.RootSize,
		SizeParam: plan.RootSizeParam,
		Puller:    s.puller,
		Tarball:   image.TarballOptions{Fetch: fetch.Options{CACerts: plan.Registry.CACerts}, Verify: plan.TarballVerification()},
		Log:       log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "unpacked in %.1fs: the tree takes %s (%d entries) of a %s tmpfs; memory in use rose by %s at most while unpacking\n",
		root.Took.Seconds(), mib(root.Used), root.Entries, mib(root.Size), mib(root.MemoryRise))

	init, err := switchroot.FindInit(newRoot, plan.Init)
	if err != nil {
		return err
	}
	kver, err := kmod.RunningRelease()
	if err != nil {
		return err
	}
	s.stopHotplug() // the new root's udev takes over
	if err := s.unstageTree(); err != nil {
		return err
	}
	keep, err := switchroot.HandOverModules("/", newRoot, kver, log)
	if err != nil {
		return err
	}

	network := s.stopNetwork()
	if plan.DropNetwork {
		if err := netconf.Release(ctx, network, s.log("")); err != nil {
			return err
		}
	} else if err := handOverNetwork(network, hostname(plan), log); err != nil {
		return err
	}

	// The cache stays behind with the initramfs: it must be clean.
	s.evictImages()
	pid1.ReleaseDisks(log)
	if err := switchroot.MoveAPIMounts(newRoot); err != nil {
		return err
	}
	sel := switchroot.SELinux{Disabled: plan.SELinuxDisabled, Permissive: plan.SELinuxPermissive, Runner: s.reaper}
	if _, err := switchroot.LoadSELinuxPolicy(ctx, newRoot, sel, s.log("")); err != nil {
		return err
	}

	args := plan.InitArgs
	if args == nil {
		args = os.Args[1:] // what the kernel gave PID 1
	}
	fmt.Fprintf(log, "starting %s %s, %.2f s since boot\n", init, strings.Join(args, " "), console.SinceBoot().Seconds())
	s.flushReport()
	s.reaper.Stop()
	return switchroot.Exec(newRoot, init, args, initEnv(os.Environ()), keep, log)
}

// hostname is the host name the plan gives (ociboot.hostname, else ip=),
// "" when none.
func hostname(plan *bootcfg.Plan) string {
	if plan.Hostname != "" || plan.KernelIP == nil {
		return plan.Hostname
	}
	return plan.KernelIP.Hostname
}

// handOverNetwork leaves the network configuration for the OS.
func handOverNetwork(network *netconf.Result, hostname string, log io.Writer) error {
	state, err := json.MarshalIndent(network.Handover(hostname), "", "  ")
	if err != nil {
		return fmt.Errorf("network hand-over: %w", err)
	}
	resolv, err := os.ReadFile(netconf.DefaultResolvConf)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("network hand-over: %w", err)
	}
	return switchroot.HandOverNetwork(newRoot, "/run", switchroot.NetworkFiles{
		State:      append(state, '\n'),
		ResolvConf: string(resolv),
		Hostname:   hostname,
	}, log)
}

// initEnv is the environment the image's init gets: the kernel's, as
// PID 1 got it, without ociboot's own variables.
func initEnv(environ []string) []string {
	var env []string
	for _, e := range environ {
		if !strings.HasPrefix(e, "OCIBOOT_") {
			env = append(env, e)
		}
	}
	return env
}

// mib writes a size in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

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
	"github.com/ociboot/ociboot/internal/netconf"
	"github.com/ociboot/ociboot/internal/pid1"
	"github.com/ociboot/ociboot/internal/switchroot"
	"golang.org/x/sys/unix"
)

// newRoot is where the image is unpacked before it becomes "/".
const newRoot = "/sysroot"

// wantsSwitchRoot reads, before anything else is set up, whether the
// command line (or the baked-in one) asks to boot an image as the OS. It
// mounts /proc for that moment only.
func wantsSwitchRoot() bool {
	_ = os.MkdirAll("/proc", 0o555)
	mounted := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "") == nil
	raw, err := os.ReadFile("/proc/cmdline")
	if mounted {
		_ = unix.Unmount("/proc", 0)
	}
	if err != nil {
		return false // Parse will say what is wrong
	}
	baked, _ := readBaked(bootcfg.BakedPath)
	return bootcfg.WantsRoot(string(raw), baked)
}

// switchRoot boots plan.Root as the OS: unpack, hand over, switch root
// and execute its init. It returns only on failure. stopNetwork ends the
// network's upkeep and returns its final state.
func switchRoot(ctx context.Context, con io.Writer, reaper *pid1.Reaper, plan *bootcfg.Plan, hostname string, stopNetwork func() *netconf.Result) error {
	console.Section(con, "root")
	log := console.Stage(con, "root")
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	root, err := switchroot.Prepare(ctx, newRoot, switchroot.Options{
		Source:    plan.Root,
		Size:      plan.RootSize,
		SizeParam: plan.RootSizeParam,
		Pull: image.PullOptions{
			Insecure: plan.InsecureRegistries,
			Platform: plan.Platform,
			Mirrors:  plan.RegistryMirrors,
			Auth:     plan.RegistryAuth,
			CACerts:  plan.CACerts,
			Timeout:  plan.PullTimeout,
		},
		Tarball: image.TarballOptions{Fetch: fetch.Options{CACerts: plan.CACerts}},
		Log:     log,
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
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	keep, err := switchroot.HandOverModules("/", newRoot, unix.ByteSliceToString(uts.Release[:]), log)
	if err != nil {
		return err
	}

	network := stopNetwork()
	if plan.DropNetwork {
		if err := netconf.Release(ctx, network, console.Ours(con)); err != nil {
			return err
		}
	} else if err := handOverNetwork(network, hostname, log); err != nil {
		return err
	}

	if err := switchroot.MoveAPIMounts(newRoot); err != nil {
		return err
	}
	sel := switchroot.SELinux{Disabled: plan.SELinuxDisabled, Permissive: plan.SELinuxPermissive, Runner: reaper}
	if _, err := switchroot.LoadSELinuxPolicy(ctx, newRoot, sel, console.Ours(con)); err != nil {
		return err
	}

	args := plan.InitArgs
	if args == nil {
		args = os.Args[1:] // what the kernel gave PID 1
	}
	fmt.Fprintf(log, "starting %s %s, %.2f s since boot\n", init, strings.Join(args, " "), console.SinceBoot().Seconds())
	reaper.Stop()
	return switchroot.Exec(newRoot, init, args, initEnv(os.Environ()), keep, log)
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

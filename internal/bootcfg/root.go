package bootcfg

import (
	"fmt"
	"strings"

	"github.com/ociboot/ociboot/internal/switchroot"
)

// The switch-root parameters: ociboot.root= (dracut's rd.container.rootfs=)
// boots an image as the OS instead of running containers.

func applyRoot(p *Plan, v Param) error {
	const want = "an image reference (such as registry.lan/os/debian:12) or the http://, https:// or file:/// URL of a rootfs tarball, with an optional #sha256=HEX"
	s, err := value(v)
	if err == nil && s == "" {
		err = errNoValue
	}
	if err != nil {
		return fmt.Errorf("%w: %s", err, want)
	}
	if err := switchroot.CheckSource(s); err != nil {
		if switchroot.IsURL(s) { // the error says what is wanted
			return err
		}
		return fmt.Errorf("%w; expected %s", err, want)
	}
	p.Root = s
	return nil
}

func applyRootSize(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: a size such as 3G, 512M or 50%%", err)
	}
	size, err := switchroot.ParseSize(s)
	if err != nil {
		return err
	}
	p.RootSize, p.RootSizeParam = size, v.Key+"="+s
	p.rootOnly = append(p.rootOnly, v.Key)
	return nil
}

func applyInit(p *Plan, v Param) error {
	// The kernel's own init= only concerns switch-root mode, as in
	// dracut: it is checked there (checkRoot), and ignored otherwise.
	if v.Key == "init" {
		p.Init, p.initParam = v.Value, v.Key+"="+v.Value
		return nil
	}
	if err := checkInitPath(v); err != nil {
		return err
	}
	p.Init, p.initParam = v.Value, ""
	p.rootOnly = append(p.rootOnly, v.Key)
	return nil
}

func checkInitPath(v Param) error {
	s, err := value(v)
	if err == nil && !strings.HasPrefix(s, "/") {
		err = fmt.Errorf("got %q", s)
	}
	if err != nil {
		return fmt.Errorf("%w, expected the absolute path of the image's init, such as /sbin/init", err)
	}
	return nil
}

func applyInitArgs(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: the init's arguments, split like a shell would, such as \"--log-level=debug systemd.unit=rescue.target\"", err)
	}
	args, err := ShellSplit(s)
	if err != nil {
		return err
	}
	p.InitArgs = append([]string{}, args...)
	p.rootOnly = append(p.rootOnly, v.Key)
	return nil
}

func applyKeepNetwork(p *Plan, v Param) error {
	keep, err := boolean(v)
	p.DropNetwork = !keep
	p.rootOnly = append(p.rootOnly, v.Key)
	return err
}

// applyRDShell takes dracut's rd.shell: rd.shell or rd.shell=1 asks for a
// shell on failure, like ociboot.on_failure=shell, when the initramfs has
// one (command lines written for dracut often carry it: without a shell
// it changes nothing); rd.shell=0 changes nothing.
func applyRDShell(p *Plan, v Param) error {
	on, err := boolean(v)
	p.rdShell = on && p.shell != ""
	return err
}

// applySELinux reads the kernel's selinux=: 0 disables SELinux (no policy
// is loaded before switching root); anything else is the kernel's.
func applySELinux(p *Plan, v Param) error {
	p.SELinuxDisabled = v.HasValue && v.Value == "0"
	return nil
}

// applyEnforcing reads the kernel's enforcing=: 0 makes a failed SELinux
// policy load a warning.
func applyEnforcing(p *Plan, v Param) error {
	p.SELinuxPermissive = v.HasValue && v.Value == "0"
	return nil
}

// boolean reads a flag: no value means true.
func boolean(v Param) (bool, error) {
	if !v.HasValue {
		return true, nil
	}
	switch strings.ToLower(v.Value) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("got %q, expected no value, or 1/0, true/false, yes/no, on/off", v.Value)
}

// failOver makes rd.shell ask for the shell on failure, unless
// ociboot.on_failure said otherwise.
func (p *Plan) failOver() {
	if p.rdShell && p.OnFailure == "" {
		p.OnFailure = FailShell
	}
}

// checkRoot checks the switch-root parameters against the rest of the
// plan.
func (p *Plan) checkRoot() error {
	p.failOver()
	if p.Root == "" {
		if len(p.rootOnly) > 0 {
			return fmt.Errorf("parameter %s only applies when booting an image as the OS: add ociboot.root=IMAGE-OR-URL", p.rootOnly[0])
		}
		p.Init = "" // the kernel's init=, which no one uses here
		return nil
	}
	if p.initParam != "" {
		if err := checkInitPath(Param{Key: "init", Value: p.Init, HasValue: true}); err != nil {
			return fmt.Errorf("kernel parameter %s: %w", p.initParam, err)
		}
	}
	if n := len(p.Containers) + len(p.Services) + len(p.PostContainers); n > 0 {
		return fmt.Errorf("ociboot.root=%s boots an image as the OS, so it cannot also run the %d container(s) the command line gives: use one or the other", p.Root, n)
	}
	return nil
}

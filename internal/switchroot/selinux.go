package switchroot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// SELinux says what the kernel command line says about SELinux, and how
// to run the image's tools.
type SELinux struct {
	// Disabled is selinux=0: no policy is loaded.
	Disabled bool
	// Permissive is enforcing=0: a failed policy load is not fatal.
	Permissive bool
	// Runner starts and waits for the tools (PID 1's reaper: exec.Cmd's
	// own Wait cannot be used next to it).
	Runner Runner
}

// Runner starts a command and returns a function that waits for its end
// and gives its exit status (128+N when killed by signal N). The
// command's stdio are nil or *os.File.
type Runner interface {
	Start(cmd *exec.Cmd) (wait func() int, err error)
}

// selinuxTimeout bounds load_policy and each relabel.
const selinuxTimeout = 10 * time.Minute

// LoadSELinuxPolicy loads the SELinux policy of the tree at dir and
// relabels it, as dracut does before switching root: unless s.Disabled,
// when the tree has /etc/selinux/config with SELINUX= other than
// disabled, it runs the tree's load_policy -i chroot'ed in the tree
// (which needs the API filesystems moved there: see MoveAPIMounts), then
// restorecon on the tree's root filesystem (files unpacked into a tmpfs
// carry no labels, or the image's), /dev and /run. A failed load stops
// the boot in enforcing mode and is only reported in permissive mode
// (SELINUX=permissive, or enforcing=0). It reports whether a policy was
// loaded.
func LoadSELinuxPolicy(ctx context.Context, dir string, s SELinux, log io.Writer) (bool, error) {
	if s.Disabled {
		return false, nil
	}
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("opening the new root %s: %w", dir, err)
	}
	defer unix.Close(root)
	mode, err := selinuxMode(root)
	if err != nil || mode == "" || mode == "disabled" {
		return false, err
	}
	permissive := s.Permissive || mode == "permissive"
	loadPolicy, err := firstInRoot(root, "/usr/sbin/load_policy", "/sbin/load_policy")
	if err != nil {
		return false, err
	}
	if loadPolicy == "" {
		if permissive {
			fmt.Fprintf(log, "selinux: /etc/selinux/config says %s but the image has no load_policy: going on without a policy\n", mode)
			return false, nil
		}
		return false, errors.New("selinux: /etc/selinux/config says enforcing but the image has no load_policy (boot with selinux=0 or enforcing=0 to go on)")
	}
	start := time.Now()
	code, out, err := runInRoot(ctx, s.Runner, dir, loadPolicy, "-i")
	if err != nil {
		return false, fmt.Errorf("selinux: %s -i: %w", loadPolicy, err)
	}
	// load_policy -i exits with 2 when the kernel has SELinux disabled:
	// there is nothing to label for.
	if code == 2 {
		fmt.Fprintf(log, "selinux: the kernel has SELinux disabled (%s -i: %s): going on without a policy\n", loadPolicy, out)
		return false, nil
	}
	if code != 0 {
		if permissive && code != 3 {
			fmt.Fprintf(log, "selinux: %s -i failed with status %d (%s): going on, permissive\n", loadPolicy, code, out)
			return false, nil
		}
		return false, fmt.Errorf("selinux: %s -i failed with status %d in enforcing mode: %s", loadPolicy, code, out)
	}
	fmt.Fprintf(log, "selinux: policy loaded (%s) in %.1fs\n", mode, time.Since(start).Seconds())

	restorecon, err := firstInRoot(root, "/usr/sbin/restorecon", "/sbin/restorecon")
	if err != nil {
		return true, err
	}
	if restorecon == "" {
		if permissive {
			fmt.Fprintln(log, "selinux: the image has no restorecon: its files keep the labels they came with")
			return true, nil
		}
		return true, errors.New("selinux: the image has no restorecon to label its files, in enforcing mode")
	}
	start = time.Now()
	for _, args := range [][]string{{"-R", "-x", "/"}, {"-R", "/dev", "/run"}} {
		code, out, err := runInRoot(ctx, s.Runner, dir, restorecon, args...)
		if err == nil && code != 0 {
			err = fmt.Errorf("exit status %d: %s", code, out)
		}
		if err != nil {
			if permissive {
				fmt.Fprintf(log, "selinux: %s %s: %v (going on, permissive)\n", restorecon, strings.Join(args, " "), err)
				continue
			}
			return true, fmt.Errorf("selinux: relabelling with %s %s: %w", restorecon, strings.Join(args, " "), err)
		}
	}
	fmt.Fprintf(log, "selinux: root relabelled in %.1fs\n", time.Since(start).Seconds())
	return true, nil
}

// selinuxMode reads SELINUX= from the tree's /etc/selinux/config; "" when
// the tree has no such file.
func selinuxMode(root int) (string, error) {
	fd, err := openInRoot(root, "/etc/selinux/config", unix.O_RDONLY)
	if errors.Is(err, unix.ENOENT) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	f := os.NewFile(uintptr(fd), "/etc/selinux/config")
	defer f.Close()
	mode := "enforcing" // what SELinux assumes without a SELINUX= line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "SELINUX="); ok {
			mode = strings.ToLower(strings.Trim(strings.TrimSpace(v), `"'`))
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading /etc/selinux/config in the new root: %w", err)
	}
	return mode, nil
}

// firstInRoot returns the first of names that the tree has, "" if none.
func firstInRoot(root int, names ...string) (string, error) {
	for _, n := range names {
		ok, err := existsInRoot(root, n)
		if err != nil || ok {
			return n, err
		}
	}
	return "", nil
}

// runInRoot runs name with args chroot'ed into dir, through r, and
// returns its exit status and the start of its output, trimmed. ctx (and
// selinuxTimeout) bound it: the command is killed when it ends.
func runInRoot(ctx context.Context, r Runner, dir, name string, args ...string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, selinuxTimeout)
	defer cancel()
	pr, pw, err := os.Pipe()
	if err != nil {
		return -1, "", err
	}
	defer pr.Close()
	out := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(pr, 4<<10))
		_, _ = io.Copy(io.Discard, pr)
		out <- strings.TrimSpace(string(b))
	}()
	// exec.Cmd's default stdin, /dev/null, is gone with the initramfs's
	// /dev (MoveAPIMounts): an empty pipe reads as it does.
	null, closed, err := os.Pipe()
	if err != nil {
		pw.Close()
		<-out
		return -1, "", err
	}
	closed.Close()
	defer null.Close()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: dir}
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, pw, pw
	wait, err := r.Start(cmd)
	pw.Close()
	if err != nil {
		<-out
		return -1, "", err
	}
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	code := wait()
	stop()
	text := <-out
	if ctx.Err() != nil {
		return code, text, fmt.Errorf("killed: %w", context.Cause(ctx))
	}
	return code, text, nil
}

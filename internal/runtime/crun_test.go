package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/cruntest"
)

// crunPath is the runtime the tests run containers with.
const crunPath = cruntest.Path

// TestMain runs the tests the way PID 1 runs containers; see cruntest.Main.
func TestMain(m *testing.M) { cruntest.Main(m) }

// busyboxRootfs makes a bundle directory whose rootfs holds the host's static
// busybox, some of its applets plus those asked for, and users.
func busyboxRootfs(t *testing.T, applets ...string) (bundle, rootfs string) {
	t.Helper()
	bundle = t.TempDir()
	rootfs = filepath.Join(bundle, "rootfs")
	for _, d := range []string{"bin", "etc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("the test needs busybox-static: %v", err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range append(applets, "sh", "echo", "id", "pwd", "hostname", "cat", "grep", "sleep") {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup} {
		var valid []string // busybox refuses comments and bad lines
		for _, l := range strings.Split(content, "\n") {
			if strings.Count(l, ":") >= 3 && l[0] != '#' {
				valid = append(valid, l+"\n")
			}
		}
		if err := os.WriteFile(filepath.Join(rootfs, name), []byte(strings.Join(valid, "")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return bundle, rootfs
}

func containerID(t *testing.T) string {
	return fmt.Sprintf("ociboot-test-%d-%s", os.Getpid(), strings.ToLower(t.Name()))
}

// runContainer writes the bundle for c, with the given busybox applets, and
// runs it with crun, returning its output and exit status.
func runContainer(t *testing.T, c bootcfg.Container, o Options, applets ...string) (stdout, stderr string, status int) {
	t.Helper()
	bundle, rootfs := busyboxRootfs(t, applets...)
	return runIn(t, bundle, rootfs, c, o)
}

// runIn is runContainer in a bundle made by busyboxRootfs.
func runIn(t *testing.T, bundle, rootfs string, c bootcfg.Container, o Options) (stdout, stderr string, status int) {
	t.Helper()
	o.RootfsDir = rootfs
	s, err := Spec(&v1.ConfigFile{Config: v1.Config{Env: []string{"PATH=/bin"}}}, c, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteBundle(bundle, s); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cmd := Runtime{Path: crunPath}.Command(bundle, containerID(t))
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%s: %v", cmd, err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

func TestCrunRunExitStatus(t *testing.T) {
	c, err := bootcfg.ParseContainer(`--rm --privileged --network=host docker://busybox sh -c 'echo hi; exit 3'`)
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, status := runContainer(t, c, Options{Hostname: "box"})
	if stdout != "hi\n" || status != 3 {
		t.Errorf("stdout %q, exit status %d, want \"hi\\n\" and 3; stderr: %s", stdout, status, stderr)
	}
}

// TestCrunPrivileged checks from inside a container what Spec promises.
func TestCrunPrivileged(t *testing.T) {
	etc := t.TempDir()
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver 10.0.2.3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `echo "pid=$$"; echo "id=$(id)"; echo "pwd=$(pwd)"; echo "hostname=$(hostname) $HOSTNAME"; echo "msg=$MSG";
		grep '^Cap' /proc/self/status; cat /etc/resolv.conf;
		echo "net=$(grep : /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' ')";
		echo "sys=$(grep ' /sys ' /proc/mounts)"; echo "cgroup=$(grep ' /sys/fs/cgroup ' /proc/mounts | cut -d' ' -f3)";
		echo "ptmx=$(readlink /dev/ptmx)"; find /dev -type c -o -type b | sort | sed 's/^/dev /'`
	c := bootcfg.Container{Image: "busybox", Command: []string{"sh", "-c", script}, Env: []string{"MSG=hello world"}, Dialect: bootcfg.DialectB2C,
		Workdir: "/work/dir", Hostname: "ci-box"}
	stdout, stderr, status := runContainer(t, c, Options{HostEtcDir: etc}, "cut", "tr", "sort", "sed", "readlink", "find")
	if status != 0 {
		t.Fatalf("exit status %d; stdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
	lines := strings.Split(stdout, "\n")
	value := func(key string) string {
		for _, l := range lines {
			if v, ok := strings.CutPrefix(l, key+"="); ok {
				return v
			}
			if v, ok := strings.CutPrefix(l, key+":\t"); ok {
				return v
			}
		}
		t.Errorf("no %s in the output:\n%s", key, stdout)
		return ""
	}
	checks := []struct{ key, want string }{
		{"pid", "1"},
		{"id", "uid=0(root) gid=0(root) groups=0(root),10(wheel)"},
		{"pwd", "/work/dir"},
		{"hostname", "ci-box ci-box"},
		{"msg", "hello world"},
		{"cgroup", "cgroup2"},
		{"CapBnd", hostCaps(t, "CapBnd")},
		{"CapEff", hostCaps(t, "CapBnd")},
		{"net", hostInterfaces(t)},
		{"ptmx", "pts/ptmx"},
	}
	for _, ch := range checks {
		if got := value(ch.key); got != ch.want {
			t.Errorf("%s = %q, want %q", ch.key, got, ch.want)
		}
	}
	if sys := value("sys"); !strings.Contains(sys, " rw,") {
		t.Errorf("/sys is mounted %q, want read-write", sys)
	}
	if !slices.Contains(lines, "nameserver 10.0.2.3") {
		t.Errorf("the host's resolv.conf is not in the container:\n%s", stdout)
	}
	devs, err := hostDevices("/dev")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if !slices.Contains(lines, "dev "+d.Path) {
			t.Errorf("host device %s is missing from the container", d.Path)
		}
	}
}

// hostCaps is a capability line of /proc/self/status of the test process:
// a container cannot have more than the runtime that starts it.
func hostCaps(t *testing.T, key string) string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, key+":\t"); ok {
			return v
		}
	}
	t.Fatalf("no %s in /proc/self/status", key)
	return ""
}

// hostInterfaces lists the host's network interfaces as the container's
// script prints them.
func hostInterfaces(t *testing.T) string {
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifaces {
		names = append(names, i.Name)
	}
	slices.Sort(names)
	return strings.Join(names, " ") + " "
}

func TestCrunUser(t *testing.T) {
	c := bootcfg.Container{Image: "busybox", User: "app", Workdir: "/home/app/work",
		Command: []string{"sh", "-c", `id; pwd; ls -ld /home/app/work | cut -c1-10; echo "$HOME"; grep CapEff /proc/self/status`}}
	stdout, stderr, status := runContainer(t, c, Options{Hostname: "box"}, "cut", "ls")
	want := "uid=1000(app) gid=1000(app) groups=10(wheel),29(audio)\n/home/app/work\ndrwxr-xr-x\n/home/app\nCapEff:\t0000000000000000\n"
	if stdout != want || status != 0 {
		t.Errorf("exit status %d, stdout\n%s\nwant\n%s\nstderr: %s", status, stdout, want, stderr)
	}
}

func TestCrunDelete(t *testing.T) {
	bundle, rootfs := busyboxRootfs(t)
	s, err := Spec(nil, bootcfg.Container{Image: "busybox", Command: []string{"sleep", "60"}}, Options{RootfsDir: rootfs, Hostname: "box"})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteBundle(bundle, s); err != nil {
		t.Fatal(err)
	}
	rt := Runtime{Path: crunPath}
	id := containerID(t)
	cmd := rt.Command(bundle, id)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for {
		out, _ := exec.Command(crunPath, "state", id).Output()
		if bytes.Contains(out, []byte(`"running"`)) {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("crun run ended before the container ran: %v: %s", err, stderr.Bytes())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("container %s not running after a minute; state: %s", id, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := rt.Delete(ctx, id); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	err = <-done
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); err == nil || !ok || (ws.ExitStatus() != 137 && ws.Signal() != syscall.SIGKILL) {
		t.Errorf("crun run ended with %v, want the container killed", err)
	}
	if out, err := exec.Command(crunPath, "state", id).CombinedOutput(); err == nil {
		t.Errorf("crun still knows container %s after Delete: %s", id, out)
	}
	if err := rt.Delete(ctx, id); err != nil {
		t.Errorf("deleting a container that is gone: %v, want success", err)
	}
	err = Runtime{Path: "/nonexistent/crun"}.Delete(ctx, id)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/crun delete -f "+id) {
		t.Errorf("Delete with a missing runtime: %v, want an error naming it", err)
	}
}

// TestCrunCmdline checks that a container sees the given file as
// /proc/cmdline, and cannot write it.
func TestCrunCmdline(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cmdline")
	const masked = `console=ttyS0 ociboot.registry_auth="r.lan,bob,***"` + "\n"
	if err := os.WriteFile(file, []byte(masked), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := bootcfg.ParseContainer(`busybox sh -c 'cat /proc/cmdline; echo x > /proc/cmdline && echo WROTE'`)
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, _ := runContainer(t, c, Options{CmdlineFile: file})
	if stdout != masked {
		t.Errorf("/proc/cmdline in the container: %q, want %q; stderr: %s", stdout, masked, stderr)
	}
	if data, _ := os.ReadFile(file); string(data) != masked {
		t.Errorf("the container changed the file: %q", data)
	}
}

// TestCrunDefaultConfinement checks from inside a native container,
// without --privileged, podman's defaults: its capability set, a seccomp
// filter, read-only /sys and /proc/sys, masked /proc/timer_list, no host
// devices; and --cap-add/--cap-drop.
func TestCrunDefaultConfinement(t *testing.T) {
	script := `grep -E '^(CapEff|CapBnd|Seccomp):' /proc/self/status | tr -d '\t';
		echo "sys=$(grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1)";
		echo "timer_list=$(wc -c < /proc/timer_list)";
		echo x > /proc/sys/kernel/hostname 2>/dev/null && echo "wrote /proc/sys";
		ls /dev/kmsg 2>/dev/null; ls /dev/null`
	c := bootcfg.Container{Image: "busybox", Command: []string{"sh", "-c", script}}
	stdout, stderr, status := runContainer(t, c, Options{}, "tr", "cut", "wc", "ls")
	if status != 0 {
		t.Fatalf("exit status %d, stdout %q, stderr %s", status, stdout, stderr)
	}
	want := "CapEff:00000000800405fb\nCapBnd:00000000800405fb\nSeccomp:2\nsys=ro\ntimer_list=0\n/dev/null\n"
	if stdout != want {
		t.Errorf("inside the container:\n%s\nwant:\n%s\nstderr: %s", stdout, want, stderr)
	}

	c, err := bootcfg.ParseContainer(`--cap-add net_admin --cap-drop CAP_CHOWN,kill busybox grep CapEff /proc/self/status`)
	if err != nil {
		t.Fatal(err)
	}
	// Default set, with NET_ADMIN (bit 12) and without CHOWN (0) and KILL (5).
	if stdout, stderr, _ := runContainer(t, c, Options{}); stdout != "CapEff:\t00000000800415da\n" {
		t.Errorf("with --cap-add net_admin --cap-drop CAP_CHOWN,kill: %q; stderr: %s", stdout, stderr)
	}
	if _, err := Spec(nil, bootcfg.Container{Image: "x", Command: []string{"sh"}, CapAdd: []string{"CAP_NOPE"}}, Options{RootfsDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), `unknown capability "CAP_NOPE"`) {
		t.Errorf("unknown capability: %v", err)
	}
}

// TestCrunTTY checks that -t gives the container a terminal: crun makes
// a pseudo-terminal and relays it to its own stdio, which must be a
// terminal too (the console, at boot; a pseudo-terminal here).
func TestCrunTTY(t *testing.T) {
	c, err := bootcfg.ParseContainer(`-t busybox sh -c 'test -t 0 && test -t 1 && echo on a terminal; tty'`)
	if err != nil {
		t.Fatal(err)
	}
	bundle, rootfs := busyboxRootfs(t, "test", "tty")
	s, err := Spec(&v1.ConfigFile{Config: v1.Config{Env: []string{"PATH=/bin"}}}, c, Options{RootfsDir: rootfs})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteBundle(bundle, s); err != nil {
		t.Fatal(err)
	}
	master, slave := openPTY(t)
	cmd := Runtime{Path: crunPath}.Command(bundle, containerID(t))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { _, _ = io.Copy(&out, master); close(done) }()
	err = cmd.Wait()
	<-done // EIO once every slave is closed
	if err != nil || !strings.Contains(out.String(), "on a terminal") || !strings.Contains(out.String(), "/dev/pts/") {
		t.Errorf("with -t: %v, output %q; want a terminal on /dev/pts", err, out.String())
	}
}

// openPTY opens a pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	sl, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, sl
}

// TestCrunContainerOptions checks from inside a container what the
// podman-run options ask for.
func TestCrunContainerOptions(t *testing.T) {
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "in"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(t.TempDir(), "ci.env")
	if err := os.WriteFile(envFile, []byte("# a comment\nFROM_FILE=yes\n\nBOTH=file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := fmt.Sprintf(`-v %s:/data:ro --tmpfs /scratch:size=1m --env-file %s -e BOTH=flag --network none --shm-size 8m `+
		`--ulimit nofile=100:200 --security-opt no-new-privileges --security-opt seccomp=unconfined --device /dev/null:/dev/mynull busybox`, host, envFile)
	c, err := bootcfg.ParseContainer(spec)
	if err != nil {
		t.Fatal(err)
	}
	c.Command = []string{"sh", "-c", `cat /data/in; echo x > /data/out 2>/dev/null || echo data read-only;
		for m in /dev/shm /scratch; do echo "$m $(grep " $m " /proc/mounts | grep -o 'size=[0-9]*k')"; done;
		echo "env $FROM_FILE $BOTH"; grep -c : /proc/net/dev; ulimit -n; ulimit -Hn;
		grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t'; test -c /dev/mynull && echo mynull`}
	stdout, stderr, status := runContainer(t, c, Options{}, "cut", "tr", "test")
	want := "from the host\ndata read-only\n/dev/shm size=8192k\n/scratch size=1024k\nenv yes flag\n1\n100\n200\nNoNewPrivs:1\nSeccomp:0\nmynull\n"
	if status != 0 || stdout != want {
		t.Errorf("status %d, inside the container:\n%s\nwant:\n%s\nstderr: %s", status, stdout, want, stderr)
	}
	// A bind mount whose source is missing is an error naming it.
	c.Mounts = []bootcfg.Mount{{Type: "bind", Source: "/nonexistent/dir", Target: "/x"}}
	if _, err := Spec(nil, c, Options{RootfsDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "volume /nonexistent/dir:/x") {
		t.Errorf("missing volume source: %v", err)
	}
}

// TestCrunInit checks --init: the ociboot binary, built here, is the
// container's PID 1, runs the command, and exits with its status.
func TestCrunInit(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ociboot")
	build := exec.Command("go", "build", "-o", bin, "github.com/ociboot/ociboot/cmd/ociboot")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building ociboot: %v\n%s", err, out)
	}
	c, err := bootcfg.ParseContainer(`--init busybox sh -c 'tr "\0" " " < /proc/1/cmdline; echo; sleep 0.2 & echo child; exit 3'`)
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, status := runContainer(t, c, Options{InitBinary: bin}, "tr")
	want := "/run/ociboot-init container-init -- sh -c tr \"\\0\" \" \" < /proc/1/cmdline; echo; sleep 0.2 & echo child; exit 3 \nchild\n"
	if status != 3 || stdout != want {
		t.Errorf("with --init: status %d, stdout %q, stderr %q; want 3 and %q", status, stdout, stderr, want)
	}
	if _, err := Spec(nil, bootcfg.Container{Image: "x", Command: []string{"sh"}, Init: true}, Options{RootfsDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "--init: no init binary") {
		t.Errorf("--init without a binary: %v", err)
	}
}

// TestCrunPodmanOptions checks from inside a container what the options
// of the full podman table do, those that need no cgroup controller (the
// VM tests check those).
func TestCrunPodmanOptions(t *testing.T) {
	etc := t.TempDir()
	for name, content := range map[string]string{"resolv.conf": "nameserver 10.0.2.3\nsearch old.lan\n", "hosts": "127.0.0.1\tlocalhost\n"} {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("OCIBOOT_TEST_ONE", "1")
	t.Setenv("OCIBOOT_TEST_PAIR_A", "a")
	t.Setenv("OCIBOOT_TEST_PAIR_B", "b")
	t.Setenv("http_proxy", "http://proxy.lan:3128")
	c, err := bootcfg.ParseContainer(`-e OCIBOOT_TEST_ONE -e 'OCIBOOT_TEST_PAIR_*' -e OCIBOOT_TEST_UNSET --env-merge PATH=/extra:${PATH} --unsetenv HOSTNAME ` +
		`--dns 10.0.2.99 --dns-search lab --dns-option ndots:3 --add-host gw:10.0.2.2 --read-only --group-add wheel --group-add 1234 ` +
		`--pid host --ipc none --uts host --sysctl kernel.shmmax=123456 --oom-score-adj 345 --umask 0027 --tz Europe/Paris ` +
		`--security-opt mask=/proc/cpuinfo --security-opt unmask=/proc/sys busybox sh -c '` +
		`env | grep -e ^OCIBOOT_TEST -e ^PATH= -e ^HOSTNAME= -e ^http_proxy= -e ^container= -e ^TZ= | sort; cat /etc/resolv.conf /etc/hosts; ` +
		`touch /rootfs-file 2>/dev/null && echo root=writable; touch /tmp/x /run/x /var/tmp/x && echo tmp=writable; id -G; ` +
		`echo pid=$$ uts=$(hostname) shm=$(ls -d /dev/shm 2>&1 | grep -c "No such"); cat /proc/self/cgroup; ` +
		`echo shmmax=$(cat /proc/sys/kernel/shmmax) oom=$(cat /proc/self/oom_score_adj) umask=$(umask); ` +
		`echo localtime=$(readlink /etc/localtime) cpuinfo=$(wc -c < /proc/cpuinfo) procsys=$(grep -c " /proc/sys " /proc/mounts)'`)
	if err != nil {
		t.Fatal(err)
	}
	bundle, rootfs := busyboxRootfs(t, "env", "sort", "touch", "ls", "readlink", "wc", "mkdir")
	for _, dir := range []string{"usr/share/zoneinfo/Europe", "run", "var/tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(rootfs, "usr/share/zoneinfo/Europe/Paris"), []byte("TZif"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, status := runIn(t, bundle, rootfs, c, Options{HostEtcDir: etc, FilesDir: t.TempDir()})
	if status != 0 {
		t.Fatalf("exit status %d; stdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
	host, _ := os.Hostname()
	want := "OCIBOOT_TEST_ONE=1\nOCIBOOT_TEST_PAIR_A=a\nOCIBOOT_TEST_PAIR_B=b\nPATH=/extra:/bin\nTZ=Europe/Paris\ncontainer=ociboot\nhttp_proxy=http://proxy.lan:3128\n" +
		"nameserver 10.0.2.99\nsearch lab\noptions ndots:3\n" +
		"10.0.2.2\tgw\n127.0.0.1\tlocalhost\n" +
		"tmp=writable\n0 10 1234\n"
	if !strings.HasPrefix(stdout, want) {
		t.Errorf("output:\n%s\nwant it to start with:\n%s", stdout, want)
	}
	for _, line := range []string{
		"uts=" + host + " shm=1\n", "0::/\n",
		"shmmax=123456 oom=345 umask=0027\n",
		"localtime=../usr/share/zoneinfo/Europe/Paris cpuinfo=0 procsys=0\n",
	} {
		if !strings.Contains(stdout, line) {
			t.Errorf("output lacks %q:\n%s", line, stdout)
		}
	}
	if strings.Contains(stdout, "pid=1 ") {
		t.Errorf("--pid host: the shell is PID 1:\n%s", stdout)
	}
}

// TestCrunPodmanOptionsShared checks the options that share the
// machine's namespaces or environment, and leave the image's files be.
func TestCrunPodmanOptionsShared(t *testing.T) {
	etc := t.TempDir()
	if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte("127.0.0.1\tmachine-hosts\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OCIBOOT_TEST_HOST_ONLY", "seen")
	t.Setenv("https_proxy", "http://proxy.lan:3128")
	c, err := bootcfg.ParseContainer(`--no-hosts --env-host --http-proxy=false --unsetenv https_proxy --cgroupns host --cgroup-parent /ocibootci --ipc host ` +
		`--read-only --read-only-tmpfs=false --network none --sysctl net.ipv4.ip_forward=1 busybox sh -c '` +
		`cat /etc/hosts; env | grep -e ^OCIBOOT_TEST_HOST_ONLY= -e _proxy=; echo cgroup=$(grep "^0::" /proc/self/cgroup); ` +
		`echo ipc=$(readlink /proc/self/ns/ipc); touch /tmp/x 2>/dev/null || echo tmp=read-only; echo forward=$(cat /proc/sys/net/ipv4/ip_forward)'`)
	if err != nil {
		t.Fatal(err)
	}
	bundle, rootfs := busyboxRootfs(t, "env", "touch", "readlink")
	if err := os.WriteFile(filepath.Join(rootfs, "etc/hosts"), []byte("10.9.9.9\timage-hosts\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := containerID(t)
	t.Cleanup(func() { os.Remove("/sys/fs/cgroup/ocibootci") }) // crun leaves the parent
	stdout, stderr, status := runIn(t, bundle, rootfs, c, Options{HostEtcDir: etc, FilesDir: t.TempDir(), ID: id})
	if status != 0 {
		t.Fatalf("exit status %d; stdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
	hostIPC, err := os.Readlink("/proc/self/ns/ipc")
	if err != nil {
		t.Fatal(err)
	}
	// --env-host passes https_proxy on, whatever --http-proxy says, and
	// --unsetenv takes it away; the cgroup seen is the machine's tree,
	// the container's under --cgroup-parent.
	want := "10.9.9.9\timage-hosts\nOCIBOOT_TEST_HOST_ONLY=seen\ncgroup=0::/ocibootci/" + id + "\nipc=" + hostIPC + "\ntmp=read-only\nforward=1\n"
	if stdout != want {
		t.Errorf("output:\n%s\nwant:\n%s", stdout, want)
	}
}

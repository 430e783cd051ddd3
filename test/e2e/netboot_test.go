package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ociboot/ociboot/internal/hosttest"
	"github.com/ociboot/ociboot/internal/vm"
)

// startServe starts `ociboot serve` on a free port of 127.0.0.1 with
// args, and returns its port and its log (the access log), once it
// listens. It is stopped when the test ends.
func (f *fixture) startServe(t *testing.T, args ...string) (int, *lockedWriter) {
	t.Helper()
	return startServe(t, f.bin, args...)
}

// startServe starts `bin serve` as the fixture's startServe does.
func startServe(t testing.TB, bin string, args ...string) (int, *lockedWriter) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	log := &lockedWriter{w: &bytes.Buffer{}}
	cmd.Stderr = log
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Logf("ociboot serve's log:\n%s", log.String())
	})
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		t.Logf("ociboot serve: %s", sc.Text())
		var port int
		if _, err := fmt.Sscanf(sc.Text(), "registry listening on 127.0.0.1:%d", &port); err == nil {
			go func() {
				for sc.Scan() {
				}
			}()
			return port, log
		}
	}
	t.Fatalf("ociboot serve stopped before listening: %v\n%s", sc.Err(), log.String())
	return 0, nil
}

// netbootTests registers the netboot subtest of TestBoot: two machines
// boot from nothing but `ociboot serve`, each with its own command line.
func (f *fixture) netbootTests(t *testing.T) {
	t.Run("netboot", func(t *testing.T) {
		t.Parallel()
		// The busybox image as an OCI layout and as a docker-archive,
		// both written by skopeo from the test registry.
		dir := t.TempDir()
		src := "docker://" + f.reg.Addr + "/e2e/busybox:1"
		lay, arc := filepath.Join(dir, "layout"), filepath.Join(dir, "busybox.tar")
		hosttest.Run(t, "skopeo", "copy", "-q", "--src-tls-verify=false", src, "oci:"+lay+":1")
		hosttest.Run(t, "skopeo", "copy", "-q", "--src-tls-verify=false", src, "docker-archive:"+arc+":e2e/busybox:1")
		machines, logs := filepath.Join(dir, "machines"), filepath.Join(dir, "logs")
		if err := os.Mkdir(machines, 0o755); err != nil {
			t.Fatal(err)
		}
		port, serveLog := f.startServe(t, "--initramfs", f.initramfs, "--machines", machines, "--access-log-dir", logs,
			"--image", "lay/busybox="+lay, "--image", "arc/busybox="+arc)

		// Written once serve listens (the command lines name its port):
		// the directory is read on each boot.
		reg := fmt.Sprintf("%s:%d", vm.GuestHost, port)
		base := fmt.Sprintf("console=ttyS0 panic=-1 ociboot.insecure_registry=%s ", reg)
		const macA, macB = "52-54-00-00-00-0a", "52-54-00-00-00-0b"
		const token = secretMarker + "-netboot"
		files := map[string]string{
			// Machine A has a file of its own; B is in a group, whose
			// extra_args carry a secret and one more container.
			macA + ".cmdline": base + fmt.Sprintf(`ociboot.container="%s/lay/busybox:1 sh -c 'echo machine-$((0xa))'"`, reg),
			"runners.macs":    "# the runners\n52:54:00:00:00:0B\n",
			"runners.cmdline": base + fmt.Sprintf(`ociboot.container="%s/arc/busybox:1 sh -c 'echo machine-$((0xb))'"`, reg),
			"runners.extra_args": fmt.Sprintf(`ociboot.container="-e TOKEN=%s %s/arc/busybox:1 sh -c 'test $TOKEN = %s && echo token-$((6*7)); exit 3'"`,
				token, reg, token),
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(machines, name), []byte(content+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}

		// Both machines at once, through the CLI.
		url := fmt.Sprintf("http://127.0.0.1:%d/boot.ipxe", port)
		var wg sync.WaitGroup
		consoles, codes := make([]string, 2), make([]int, 2)
		for i, mac := range []string{"52:54:00:00:00:0a", "52:54:00:00:00:0b"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := exec.Command(f.bin, "vm", "--netboot", url, "--mac", mac, "--timeout", bootTimeout.String()).CombinedOutput()
				consoles[i] = string(out)
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					codes[i] = ee.ExitCode()
				} else if err != nil {
					codes[i] = -1
				}
			}()
		}
		wg.Wait()
		t.Logf("machine A:\n%s", consoles[0])
		t.Logf("machine B:\n%s", consoles[1])
		if codes[0] != 0 || codes[1] != 3 {
			t.Errorf("exit statuses %v, want [0 3] (the pipelines' statuses)", codes)
		}
		inOrder(t, consoles[0], "Kernel command line: initrd=initramfs "+files[macA+".cmdline"],
			"machine-10", "Execution is over, pipeline status: 0")
		inOrder(t, consoles[1], "Kernel command line: initrd=initramfs "+files["runners.cmdline"]+fmt.Sprintf(" ociboot.extra_args_url=http://%s/extra_args/%s", reg, macB),
			"machine-11", "token-42", "Execution is over, pipeline status: 3")
		if strings.Contains(consoles[0], "machine-11") || strings.Contains(consoles[1], "machine-10") {
			t.Error("a machine ran the other's containers")
		}
		if strings.Contains(consoles[1], secretMarker) {
			t.Error("machine B's console shows the secret of its extra_args")
		}

		// The access logs: per machine, and the images pulled from serve.
		for mac, wants := range map[string][]string{
			macA: {`"GET /boot/` + macA + `.ipxe" 200`},
			macB: {`"GET /boot/` + macB + `.ipxe" 200`, `"GET /extra_args/` + macB + `" 200`},
		} {
			data, err := os.ReadFile(filepath.Join(logs, mac+".log"))
			for _, want := range wants {
				if err != nil || !strings.Contains(string(data), want) {
					t.Errorf("%s.log lacks %s (%v):\n%s", mac, want, err, data)
				}
			}
		}
		for _, want := range []string{`"GET /boot.ipxe" 200`, `"GET /kernel" 200`, `"GET /initramfs" 200`, `"GET /v2/lay/busybox/manifests/1" 200`, `"GET /v2/arc/busybox/manifests/1" 200`} {
			if !strings.Contains(serveLog.String(), want) {
				t.Errorf("serve's log lacks %s", want)
			}
		}
	})
}

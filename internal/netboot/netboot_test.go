package netboot_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/internal/netboot"
)

func TestParseMAC(t *testing.T) {
	for in, want := range map[string]string{
		"52:54:00:12:34:56": "52-54-00-12-34-56",
		"52-54-00-AB-cd-EF": "52-54-00-ab-cd-ef",
		"525400123456":      "52-54-00-12-34-56",
	} {
		if got, err := netboot.ParseMAC(in); err != nil || got != want {
			t.Errorf("ParseMAC(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "52:54:00:12:34", "52:54:00:12:34:56:78", "zz:54:00:12:34:56", "5254-0012-3456", "../../etc/passwd"} {
		if got, err := netboot.ParseMAC(in); err == nil {
			t.Errorf("ParseMAC(%q) = %q, want an error", in, got)
		}
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// newServer serves a kernel, an initramfs and a machines directory.
func newServer(t *testing.T) (*netboot.Server, string) {
	t.Helper()
	dir := t.TempDir()
	machines := filepath.Join(dir, "machines")
	if err := os.Mkdir(machines, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "vmlinuz", "KERNEL")
	write(t, dir, "initramfs.img", "0123456789")
	s, err := netboot.New(netboot.Config{
		Kernel: filepath.Join(dir, "vmlinuz"), Initramfs: filepath.Join(dir, "initramfs.img"),
		Machines: machines, Cmdline: "fallback=1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, machines
}

func get(t *testing.T, h http.Handler, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://boot.lab:8080"+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestMachines checks which settings a machine gets, read anew on each
// boot.
func TestMachines(t *testing.T) {
	s, dir := newServer(t)
	const a, b, c = "52-54-00-00-00-0a", "52-54-00-00-00-0b", "52-54-00-00-00-0c"
	check := func(mac, source, cmdline, extra string) {
		t.Helper()
		m, err := s.Machine(mac)
		if err != nil {
			t.Fatal(err)
		}
		gotExtra := ""
		if m.ExtraArgs != "" {
			gotExtra = filepath.Base(m.ExtraArgs)
		}
		if m.Source != source || m.Cmdline != cmdline || gotExtra != extra {
			t.Errorf("%s: %q %q extra %q; want %q %q extra %q", mac, m.Source, m.Cmdline, gotExtra, source, cmdline, extra)
		}
	}
	check(a, "the server's --cmdline", "fallback=1", "")

	write(t, dir, "default.cmdline", "# all machines\nd=1\n\n  e=2  \n")
	check(a, "default.cmdline", "d=1 e=2", "")

	write(t, dir, "gpu.macs", "# the GPU runners\n52:54:00:00:00:0A 52:54:00:00:00:0b # two of them\n")
	write(t, dir, "gpu.cmdline", "g=1")
	write(t, dir, "gpu.extra_args", "ociboot.s3=...")
	check(a, "gpu.cmdline", "g=1", "gpu.extra_args")
	check(c, "default.cmdline", "d=1 e=2", "")

	write(t, dir, b+".cmdline", "own=1")
	check(b, b+".cmdline", "own=1", "gpu.extra_args")
	write(t, dir, b+".extra_args", "mine")
	check(b, b+".cmdline", "own=1", b+".extra_args")

	// Faults name the files.
	write(t, dir, "other.macs", "52-54-00-00-00-0a")
	if _, err := s.Machine(a); err == nil || !strings.Contains(err.Error(), "2 groups (gpu, other)") {
		t.Errorf("a MAC in two groups: %v", err)
	}
	write(t, dir, "other.macs", "\nnot-a-mac")
	if _, err := s.Machine(c); err == nil || !strings.Contains(err.Error(), "other.macs line 2") {
		t.Errorf("a bad .macs file: %v", err)
	}
}

func TestScripts(t *testing.T) {
	s, dir := newServer(t)
	const mac = "52-54-00-00-00-0a"
	rec := get(t, s, "/boot.ipxe")
	if !strings.HasPrefix(rec.Body.String(), "#!ipxe\n") || !strings.Contains(rec.Body.String(), "chain --autofree boot/${netX/mac:hexhyp}.ipxe") {
		t.Errorf("/boot.ipxe: %s", rec.Body)
	}

	write(t, dir, mac+".cmdline", `ociboot.container="docker://x sh -c 'echo hi'"`)
	rec = get(t, s, "/boot/52:54:00:00:00:0A.ipxe")
	want := "#!ipxe\n# " + mac + ": " + mac + ".cmdline\n" +
		`kernel ../kernel initrd=initramfs ociboot.container="docker://x sh -c 'echo hi'"` + "\n" +
		"initrd --name initramfs ../initramfs\nboot\n"
	if rec.Code != 200 || rec.Body.String() != want {
		t.Errorf("boot script: %d\n%s\nwant\n%s", rec.Code, rec.Body, want)
	}

	// With extra_args, the command line points at them, at the address the
	// machine reached the server by.
	write(t, dir, mac+".extra_args", "ociboot.s3=local,http://s3,KEY,SECRET")
	rec = get(t, s, "/boot/"+mac+".ipxe")
	if !strings.Contains(rec.Body.String(), "ociboot.extra_args_url=http://boot.lab:8080/extra_args/"+mac+"\n") {
		t.Errorf("boot script with extra_args: %s", rec.Body)
	}
	if rec := get(t, s, "/extra_args/"+mac); rec.Code != 200 || rec.Body.String() != "ociboot.s3=local,http://s3,KEY,SECRET" {
		t.Errorf("/extra_args: %d %s", rec.Code, rec.Body)
	}
	if rec := get(t, s, "/extra_args/52-54-00-00-00-0c"); rec.Code != 404 {
		t.Errorf("/extra_args of a machine without: %d %s", rec.Code, rec.Body)
	}

	// A fault in the directory: the machine is told, and retries.
	write(t, dir, "bad.macs", "nonsense")
	rec = get(t, s, "/boot/"+mac+".ipxe")
	if body := rec.Body.String(); !strings.Contains(body, "echo ociboot serve: machines: ") || !strings.Contains(body, "bad.macs line 1") || !strings.Contains(body, "sleep 30\nchain --autofree "+mac+".ipxe") {
		t.Errorf("boot script of a broken directory: %s", body)
	}

	// The files, with ranges.
	if rec := get(t, s, "/initramfs", "Range", "bytes=2-4"); rec.Code != 206 || rec.Body.String() != "234" {
		t.Errorf("/initramfs range: %d %q", rec.Code, rec.Body)
	}
	if rec := get(t, s, "/kernel"); rec.Body.String() != "KERNEL" {
		t.Errorf("/kernel: %d %q", rec.Code, rec.Body)
	}
	for _, p := range []string{"/uki.efi", "/nothing", "/boot/nope.ipxe", "/extra_args/../kernel"} {
		if rec := get(t, s, p); rec.Code == 200 {
			t.Errorf("%s: 200 %q, want an error", p, rec.Body)
		}
	}
}

func TestAccessLog(t *testing.T) {
	s, _ := newServer(t)
	var all bytes.Buffer
	dir := t.TempDir()
	h := netboot.NewAccessLog(&all, dir).Wrap(s)
	do := func(remote, path string) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.RemoteAddr = remote
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	const mac = "52-54-00-00-00-0a"
	do("192.0.2.7:1000", "/boot.ipxe")         // not known yet: by address
	do("192.0.2.7:1001", "/boot/"+mac+".ipxe") // now known
	do("192.0.2.7:1002", "/initramfs")         // put down to the machine
	do("127.0.0.1:1003", "/boot/"+mac+".ipxe") // a relay: named by its path only
	do("127.0.0.1:1004", "/kernel")            // and the rest by address
	do("192.0.2.8:1005", "/v2/does/not/exist") // another machine
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	if got := strings.Count(all.String(), "\n"); got != 6 {
		t.Errorf("%d lines, want 6:\n%s", got, all.String())
	}
	m := read(mac + ".log")
	if strings.Count(m, "\n") != 3 || !strings.Contains(m, ` 192.0.2.7 "GET /initramfs" 200 10 `) || !strings.Contains(m, ` 127.0.0.1 "GET /boot/`+mac+`.ipxe" 200 `) {
		t.Errorf("%s.log:\n%s", mac, m)
	}
	if got := read("192.0.2.7.log"); !strings.Contains(got, `"GET /boot.ipxe" 200`) {
		t.Errorf("192.0.2.7.log:\n%s", got)
	}
	if got := read("127.0.0.1.log"); !strings.Contains(got, `"GET /kernel" 200 6 `) {
		t.Errorf("127.0.0.1.log:\n%s", got)
	}
	if got := read("192.0.2.8.log"); !strings.Contains(got, `"GET /v2/does/not/exist" 404`) {
		t.Errorf("192.0.2.8.log:\n%s", got)
	}
}

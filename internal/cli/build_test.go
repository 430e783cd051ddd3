package cli

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/internal/initramfs"
)

func TestRegistryOptions(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	auth := write("config.json", `{"auths": {"r.lan": {"username": "u", "password": "Zq7-secret"}}}`)
	opts := initramfs.Options{Cmdline: "quiet"}
	err := registryOptions(&opts, auth, nil, []string{"Docker.io=m.lan:5000|m2.lan/hub", "quay.io=q.lan"})
	if err != nil {
		t.Fatalf("registryOptions: %v", err)
	}
	if want := "quiet ociboot.registry_mirror=docker.io=m.lan:5000|m2.lan/hub ociboot.registry_mirror=quay.io=q.lan"; opts.Cmdline != want {
		t.Errorf("cmdline %q, want %q", opts.Cmdline, want)
	}
	if !strings.Contains(string(opts.RegistryAuth), "Zq7-secret") {
		t.Errorf("credentials not carried to the build")
	}
	for _, tc := range []struct {
		auth    string
		ca      []string
		mirrors []string
		want    string
	}{
		{filepath.Join(dir, "none.json"), nil, nil, "--registry-auth: open"},
		{write("bad.json", `{"auths": {"r.lan": {"auth": "!!Zq7-secret"}}}`), nil, nil, "--registry-auth " + dir + "/bad.json: auths entry \"r.lan\""},
		{"", []string{write("ca.pem", "junk")}, nil, "--ca-file " + dir + "/ca.pem: no PEM CERTIFICATE block"},
		{"", nil, []string{"docker.io"}, `--registry-mirror "docker.io": no '='`},
	} {
		err := registryOptions(&initramfs.Options{}, tc.auth, tc.ca, tc.mirrors)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "Zq7-secret") {
			t.Errorf("registryOptions(%q, %q, %q): error %v, want one containing %q and no secret", tc.auth, tc.ca, tc.mirrors, err, tc.want)
		}
	}
}

// TestBuildUKI builds a small initramfs and its unified kernel image
// twice: the images are the same bytes, and hold --cmdline, the kernel and
// the initramfs as written. A kernel of another release than the modules
// is refused, naming both.
func TestBuildUKI(t *testing.T) {
	dir := t.TempDir()
	init := filepath.Join(dir, "init")
	if err := os.WriteFile(init, []byte("#!/not/run\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	kernels, err := filepath.Glob("/boot/vmlinuz-*")
	if err != nil || len(kernels) == 0 {
		t.Fatalf("no kernel in /boot (install linux-image-amd64): %v", err)
	}
	kernel := kernels[0]
	release := strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-")
	build := func(name string, extra ...string) []byte {
		t.Helper()
		out := filepath.Join(dir, name+".efi")
		args := append([]string{"build", "-o", filepath.Join(dir, name+".img"), "--init-binary", init, "--runtime", "none",
			"--modules", "virtio_net", "--storage-modules", "", "--fscrypt-modules", "", "--drivers", "", "--mkfs", "none",
			"--kernel-version", release, "--cmdline", "console=ttyS0 ociboot.container=alpine", "--uki", out}, extra...)
		if log, err := runCLI(t, args...); err != nil {
			t.Fatalf("ociboot build --uki: %v\n%s", err, log)
		}
		img, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	a := build("a", "--kernel", kernel)
	b := build("b", "--kernel", kernel)
	if !bytes.Equal(a, b) {
		t.Error("two builds of the unified kernel image differ")
	}
	f, err := pe.NewFile(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	initrd, err := os.ReadFile(filepath.Join(dir, "a.img"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{".cmdline": "console=ttyS0 ociboot.container=alpine", ".uname": release, ".initrd": string(initrd)} {
		s := f.Section(name)
		if s == nil {
			t.Errorf("no %s section", name)
			continue
		}
		data, err := s.Data()
		if err != nil || string(data[:s.VirtualSize]) != want {
			t.Errorf("section %s holds %d bytes, want %d (%v)", name, s.VirtualSize, len(want), err)
		}
	}

	// A bzImage of another release: a setup header naming it.
	other := make([]byte, 0x400)
	copy(other[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(other[0x206:], 0x20f)
	binary.LittleEndian.PutUint16(other[0x20e:], 0x100)
	copy(other[0x300:], "5.10.0-99-amd64 (test) #1")
	fake := filepath.Join(dir, "vmlinuz-5.10.0-99-amd64")
	if err := os.WriteFile(fake, other, 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := runCLI(t, "build", "-o", filepath.Join(dir, "c.img"), "--init-binary", init, "--runtime", "none",
		"--modules", "virtio_net", "--storage-modules", "", "--fscrypt-modules", "", "--drivers", "", "--mkfs", "none",
		"--kernel-version", release, "--uki", filepath.Join(dir, "c.efi"), "--kernel", fake)
	if err == nil || !strings.Contains(err.Error(), "release 5.10.0-99-amd64") || !strings.Contains(err.Error(), "modules are for "+release) {
		t.Errorf("a kernel of another release: %v\n%s", err, log)
	}
	if _, err := os.Stat(filepath.Join(dir, "c.efi")); !os.IsNotExist(err) {
		t.Errorf("c.efi was written: %v", err)
	}
}

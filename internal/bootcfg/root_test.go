package bootcfg

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/internal/switchroot"
)

// rootFields are the Plan's switch-root fields, and OnFailure, which
// rd.shell sets.
type rootFields struct {
	Root              string
	RootSize          switchroot.Size
	RootSizeParam     string
	Init              string
	InitArgs          []string
	DropNetwork       bool
	SELinuxDisabled   bool
	SELinuxPermissive bool
	OnFailure         FailureAction
}

func rootFieldsOf(p *Plan) rootFields {
	return rootFields{
		Root: p.Root, RootSize: p.RootSize, RootSizeParam: p.RootSizeParam,
		Init: p.Init, InitArgs: p.InitArgs, DropNetwork: p.DropNetwork,
		SELinuxDisabled: p.SELinuxDisabled, SELinuxPermissive: p.SELinuxPermissive,
		OnFailure: p.OnFailure,
	}
}

func TestParseRoot(t *testing.T) {
	const img = "registry.lan/os/debian:12"
	pinned := "https://boot.lan/rootfs.tar.zst#sha256=" + strings.Repeat("ab", 32)
	tests := []struct {
		name, kernel, baked, shell string
		want                       rootFields
	}{
		{name: "nothing", want: rootFields{}},
		{name: "ociboot.root image", kernel: "ociboot.root=" + img, want: rootFields{Root: img}},
		{name: "rd.container.rootfs pinned URL", kernel: "rd.container.rootfs=" + pinned, want: rootFields{Root: pinned}},
		{name: "file URL", kernel: "ociboot.root=file:///srv/rootfs.tar", want: rootFields{Root: "file:///srv/rootfs.tar"}},
		{name: "docker:// image", kernel: "ociboot.root=docker://" + img, want: rootFields{Root: "docker://" + img}},
		{name: "quoted", kernel: `ociboot.root="` + img + `"`, want: rootFields{Root: img}},
		{name: "baked in", baked: "ociboot.root=" + img, want: rootFields{Root: img}},
		{name: "kernel replaces baked", kernel: "rd.container.rootfs=alpine", baked: "ociboot.root=" + img, want: rootFields{Root: "alpine"}},
		{
			name: "ociboot.root_size", kernel: "ociboot.root=" + img + " ociboot.root_size=3G",
			want: rootFields{Root: img, RootSize: switchroot.Size{Bytes: 3 << 30}, RootSizeParam: "ociboot.root_size=3G"},
		},
		{
			name: "rd.tmpfs.size", kernel: "rd.container.rootfs=" + img + " rd.tmpfs.size=50%",
			want: rootFields{Root: img, RootSize: switchroot.Size{Percent: 50}, RootSizeParam: "rd.tmpfs.size=50%"},
		},
		{
			name: "the last size wins, under either name", kernel: "ociboot.root=" + img + " rd.tmpfs.size=1G ociboot.root_size=512m",
			want: rootFields{Root: img, RootSize: switchroot.Size{Bytes: 512 << 20}, RootSizeParam: "ociboot.root_size=512m"},
		},
		{
			name: "kernel size replaces baked", kernel: "ociboot.root_size=2G", baked: "ociboot.root=" + img + " ociboot.root_size=1G",
			want: rootFields{Root: img, RootSize: switchroot.Size{Bytes: 2 << 30}, RootSizeParam: "ociboot.root_size=2G"},
		},
		{name: "ociboot.init", kernel: "ociboot.root=" + img + " ociboot.init=/usr/lib/systemd/systemd", want: rootFields{Root: img, Init: "/usr/lib/systemd/systemd"}},
		{name: "the kernel's init=", kernel: "init=/sbin/myinit rd.container.rootfs=" + img, want: rootFields{Root: img, Init: "/sbin/myinit"}},
		{name: "init= then ociboot.init", kernel: "ociboot.root=" + img + " init=/a ociboot.init=/b", want: rootFields{Root: img, Init: "/b"}},
		{name: "init= without root is ignored", kernel: "init=/sbin/init ociboot.container=alpine", want: rootFields{}},
		{name: "init= alone", kernel: "init=/sbin/init", want: rootFields{}},
		{
			name: "ociboot.init_args", kernel: "ociboot.root=" + img + ` ociboot.init_args="--log-level=debug systemd.unit='rescue target'"`,
			want: rootFields{Root: img, InitArgs: []string{"--log-level=debug", "systemd.unit=rescue target"}},
		},
		{name: "empty ociboot.init_args: no arguments, not the kernel's", kernel: "ociboot.root=" + img + ` ociboot.init_args=""`, want: rootFields{Root: img, InitArgs: []string{}}},
		{name: "keep_network=0", kernel: "ociboot.root=" + img + " ociboot.keep_network=0", want: rootFields{Root: img, DropNetwork: true}},
		{name: "keep_network=no", kernel: "ociboot.root=" + img + " ociboot.keep_network=no", want: rootFields{Root: img, DropNetwork: true}},
		{name: "keep_network=1", kernel: "ociboot.root=" + img + " ociboot.keep_network=1", want: rootFields{Root: img}},
		{name: "bare keep_network", kernel: "ociboot.root=" + img + " ociboot.keep_network", want: rootFields{Root: img}},
		{name: "keep_network, last wins", kernel: "ociboot.root=" + img + " ociboot.keep_network=0 ociboot.keep_network=on", want: rootFields{Root: img}},
		{name: "rd.shell with a shell", kernel: "ociboot.root=" + img + " rd.shell", shell: "/bin/sh", want: rootFields{Root: img, OnFailure: FailShell}},
		{name: "rd.shell=1 with a shell", kernel: "rd.shell=1 ociboot.container=alpine", shell: "/bin/sh", want: rootFields{OnFailure: FailShell}},
		{name: "rd.shell without a shell", kernel: "ociboot.root=" + img + " rd.shell", want: rootFields{Root: img}},
		{name: "rd.shell=0 with a shell", kernel: "ociboot.root=" + img + " rd.shell=0", shell: "/bin/sh", want: rootFields{Root: img}},
		{name: "rd.shell=0 leaves on_failure", kernel: "ociboot.on_failure=reboot rd.shell=0", shell: "/bin/sh", want: rootFields{OnFailure: FailReboot}},
		{name: "on_failure wins over rd.shell", kernel: "rd.shell ociboot.on_failure=reboot", shell: "/bin/sh", want: rootFields{OnFailure: FailReboot}},
		{name: "a bad init= without a root is the kernel's", kernel: "init=sbin/init ociboot.container=alpine", want: rootFields{}},
		{name: "selinux=0", kernel: "ociboot.root=" + img + " selinux=0", want: rootFields{Root: img, SELinuxDisabled: true}},
		{name: "selinux=1", kernel: "ociboot.root=" + img + " selinux=1", want: rootFields{Root: img}},
		{name: "enforcing=0", kernel: "ociboot.root=" + img + " enforcing=0", want: rootFields{Root: img, SELinuxPermissive: true}},
		{name: "enforcing=1", kernel: "ociboot.root=" + img + " enforcing=1", want: rootFields{Root: img}},
		{name: "selinux=0 enforcing=0 in container mode", kernel: "selinux=0 enforcing=0 ociboot.container=alpine", want: rootFields{SELinuxDisabled: true, SELinuxPermissive: true}},
		{
			name: "all of them",
			kernel: "BOOT_IMAGE=/vmlinuz console=ttyS0 rd.container.rootfs=" + pinned + " rd.tmpfs.size=2G init=/usr/lib/systemd/systemd " +
				`ociboot.init_args="systemd.unit=multi-user.target" ociboot.keep_network=0 selinux=0 enforcing=0 rd.shell quiet -- single`,
			shell: "/bin/busybox",
			want: rootFields{
				Root: pinned, RootSize: switchroot.Size{Bytes: 2 << 30}, RootSizeParam: "rd.tmpfs.size=2G",
				Init: "/usr/lib/systemd/systemd", InitArgs: []string{"systemd.unit=multi-user.target"},
				DropNetwork: true, SELinuxDisabled: true, SELinuxPermissive: true, OnFailure: FailShell,
			},
		},
		{name: "after --, for init", kernel: "ociboot.container=alpine -- ociboot.root=" + img + " ociboot.root_size=x", want: rootFields{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.kernel, Baked{Cmdline: tt.baked, Shell: tt.shell})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := rootFieldsOf(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestParseRootErrors(t *testing.T) {
	tests := []struct{ kernel, baked, want string }{
		{"ociboot.root=alpine ociboot.container=busybox", "", "ociboot.root=alpine boots an image as the OS, so it cannot also run the 1 container(s) the command line gives"},
		{"rd.container.rootfs=alpine b2c.service=redis b2c.post_container=busybox", "", "cannot also run the 2 container(s)"},
		{"ociboot.container=busybox", "ociboot.root=alpine", "cannot also run the 1 container(s)"},
		{"ociboot.root_size=3G", "", "parameter ociboot.root_size only applies when booting an image as the OS: add ociboot.root=IMAGE-OR-URL"},
		{"rd.tmpfs.size=50%", "", "parameter rd.tmpfs.size only applies when booting an image as the OS"},
		{`ociboot.init_args="-s"`, "", "parameter ociboot.init_args only applies"},
		{"ociboot.keep_network=0", "", "parameter ociboot.keep_network only applies"},
		{"ociboot.keep_network", "", "parameter ociboot.keep_network only applies"},
		{"ociboot.init=/sbin/init ociboot.container=alpine", "", "parameter ociboot.init only applies"},
		{"", "ociboot.root_size=1G", "parameter ociboot.root_size only applies"},
		{"ociboot.root=ftp://boot.lan/rootfs.tar", "", `kernel parameter ociboot.root="ftp://boot.lan/rootfs.tar": rootfs tarball URL: unsupported URL scheme "ftp": want http, https or file`},
		{"rd.container.rootfs=nfs://server/root", "", `kernel parameter rd.container.rootfs="nfs://server/root": rootfs tarball URL: unsupported URL scheme "nfs"`},
		{"ociboot.root=", "", `kernel parameter ociboot.root="": needs a value: an image reference (such as registry.lan/os/debian:12) or the http://, https:// or file:/// URL of a rootfs tarball`},
		{"ociboot.root", "", "kernel parameter ociboot.root: needs a value: an image reference"},
		{"", `ociboot.root=""`, `baked-in parameter ociboot.root="": needs a value`},
		{"rd.container.rootfs=Debian:12", "", `kernel parameter rd.container.rootfs="Debian:12": invalid image reference`},
		{"ociboot.root=alpine ociboot.root_size=3X", "", `kernel parameter ociboot.root_size="3X": got "3X", expected a size such as 3G, 512M or 50% (of RAM)`},
		{"ociboot.root=alpine rd.tmpfs.size=101%", "", `kernel parameter rd.tmpfs.size="101%": got "101%", expected a size`},
		{"ociboot.root=alpine ociboot.root_size", "", "kernel parameter ociboot.root_size: needs a value: a size such as 3G, 512M or 50%"},
		{"ociboot.root=alpine ociboot.init=sbin/init", "", `kernel parameter ociboot.init="sbin/init": got "sbin/init", expected the absolute path of the image's init, such as /sbin/init`},
		{"ociboot.root=alpine ociboot.init", "", "kernel parameter ociboot.init: needs a value, expected the absolute path"},
		{"ociboot.root=alpine init=", "", `kernel parameter init=: got "", expected the absolute path`},
		{"ociboot.root=alpine ociboot.init_args", "", "kernel parameter ociboot.init_args: needs a value: the init's arguments"},
		{`ociboot.root=alpine ociboot.init_args="'unterminated"`, "", `kernel parameter ociboot.init_args="'unterminated":`},
		{"ociboot.root=alpine ociboot.keep_network=maybe", "", `kernel parameter ociboot.keep_network="maybe": got "maybe", expected no value, or 1/0`},
		{"ociboot.root=alpine rd.shell=sometimes", "", `kernel parameter rd.shell="sometimes": got "sometimes"`},
	}
	for _, tt := range tests {
		p, err := Parse(tt.kernel, Baked{Cmdline: tt.baked, Shell: "/bin/sh"})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q, %q) = %+v, %v\nwant an error containing %q", tt.kernel, tt.baked, p, err, tt.want)
		}
	}
}

func TestParseRootWithExtra(t *testing.T) {
	for _, extra := range []string{"ociboot.root=alpine", "rd.container.rootfs=https://boot.lan/rootfs.tar"} {
		_, err := ParseWithExtra("ociboot.root=debian", Baked{}, extra)
		key, _, _ := strings.Cut(extra, "=")
		if err == nil || !strings.Contains(err.Error(), "extra_args_url parameter "+key+" comes too late") {
			t.Errorf("%s in the extra args: %v, want an error saying it comes too late", extra, err)
		}
	}
	if _, err := ParseWithExtra("", Baked{}, "ociboot.root=alpine"); err == nil || !strings.Contains(err.Error(), "comes too late") {
		t.Errorf("ociboot.root in the extra args only: %v, want an error saying it comes too late", err)
	}
	// The other switch-root parameters may come from there.
	p, err := ParseWithExtra("ociboot.root=debian ociboot.root_size=1G", Baked{}, `ociboot.root_size=2G ociboot.init=/bin/sh ociboot.init_args="-l" ociboot.keep_network=0`)
	if err != nil {
		t.Fatal(err)
	}
	want := rootFields{Root: "debian", RootSize: switchroot.Size{Bytes: 2 << 30}, RootSizeParam: "ociboot.root_size=2G", Init: "/bin/sh", InitArgs: []string{"-l"}, DropNetwork: true}
	if got := rootFieldsOf(p); !reflect.DeepEqual(got, want) {
		t.Errorf("ParseWithExtra\n got %#v\nwant %#v", got, want)
	}
	if _, err := ParseWithExtra("ociboot.root=debian", Baked{}, "ociboot.container=alpine"); err == nil || !strings.Contains(err.Error(), "cannot also run the 1 container(s)") {
		t.Errorf("a container in the extra args of a switch-root boot: %v", err)
	}
}

// TestRootReadFirst checks what PID 1 decides first of all: whether an
// image is booted as the OS, read by Parse even from a command line it
// refuses.
func TestRootReadFirst(t *testing.T) {
	tests := []struct {
		kernel, baked string
		want          bool
	}{
		{"", "", false},
		{"console=ttyS0 ociboot.container=alpine", "", false},
		{"console=ttyS0 ociboot.root=alpine quiet", "", true},
		{"rd.container.rootfs=https://boot.lan/rootfs.tar.gz", "", true},
		{`ociboot.root="registry.lan/os/debian:12"`, "", true},
		{"", "ociboot.root=alpine", true},
		{"", "rd.container.rootfs=alpine", true},
		{"ociboot.root=", "", false},
		{"ociboot.root", "", false},
		{`ociboot.root=""`, "", false},
		{"ociboot.root_size=3G ociboot.init=/sbin/init init=/sbin/init", "", false},
		{"ociboot.rootfs=alpine b2c.root=alpine root=/dev/sda1", "", false},
		{"-- ociboot.root=alpine", "", false},
		{"quiet -- ociboot.root=alpine", "", false},
		{"", "ociboot.container=alpine -- ociboot.root=alpine", false},
		{"ociboot.root=alpine", "quiet -- x", true},    // each command line stops at its own --
		{"a=\"b -- c\" ociboot.root=alpine", "", true}, // a quoted -- is not the end
		{"ociboot.root=alpine --", "", true},
		{"ociboot.root=alpine\x00rd.container.rootfs=x", "", true},
		{"\x00ociboot.root=alpine", "", false},           // the command line ends at a NUL
		{"ociboot.root=alpine ociboot.nope=1", "", true}, // refused, but the root is read
		{"ociboot.root=alpine ociboot.container=busybox", "", true},
		{"ociboot.root=bad::ref ociboot.nope=1", "", false},
	}
	for _, tt := range tests {
		p, err := Parse(tt.kernel, Baked{Cmdline: tt.baked})
		if got := p.Root != ""; got != tt.want {
			t.Errorf("Parse(%q, baked %q): root %q (error %v), want one: %v", tt.kernel, tt.baked, p.Root, err, tt.want)
		}
	}
}

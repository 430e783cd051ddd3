package bootcfg

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/netconf"
)

func TestParse(t *testing.T) {
	c := func(spec string) Container {
		t.Helper()
		ct, err := ParseContainer(spec)
		if err != nil {
			t.Fatal(err)
		}
		return ct
	}
	b2c := func(spec string) Container {
		t.Helper()
		ct := c(spec)
		ct.Dialect = DialectB2C
		return ct
	}
	tests := []struct {
		name   string
		kernel string
		baked  string
		want   Plan
	}{
		{"nothing", "", "", Plan{PoweroffDelay: -1}},
		{
			"b2c machine",
			`BOOT_IMAGE=/vmlinuz console=ttyS0,115200 quiet ip=dhcp rd.shell b2c.container="-ti docker://alpine:latest" ` +
				`b2c.run="alpine sh -c 'echo hi; exit 3'" ociboot.container=busybox ociboot.run="--entrypoint=/bin/true busybox" b2c.poweroff_delay=15` + "\n",
			"",
			Plan{
				Containers: []Container{
					b2c("-ti docker://alpine:latest"), b2c("alpine sh -c 'echo hi; exit 3'"),
					c("busybox"), c("--entrypoint=/bin/true busybox"),
				},
				PoweroffDelay: 15,
				KernelIP:      kernelIP(t, "dhcp"),
			},
		},
		{
			"baked defaults",
			"console=ttyS0",
			`ociboot.container=alpine ociboot.modules=virtio_net,e1000 ociboot.insecure_registry=10.0.2.100:5000 ociboot.poweroff_delay=0`,
			Plan{
				Containers:    []Container{c("alpine")},
				Modules:       []string{"virtio_net", "e1000"},
				Registry:      image.PullOptions{Insecure: []string{"10.0.2.100:5000"}},
				PoweroffDelay: 0,
			},
		},
		{
			"kernel replaces baked lists as a whole, under any spelling",
			`b2c.run=busybox ociboot.insecure_registry=[fd00::1]:5000 ociboot.insecure_registry=registry.lan`,
			`ociboot.container=alpine ociboot.container=debian ociboot.insecure_registry=10.0.2.100:5000 ociboot.poweroff_delay=3 ociboot.modules=a`,
			Plan{
				Containers:    []Container{b2c("busybox")},
				Modules:       []string{"a"},
				Registry:      image.PullOptions{Insecure: []string{"[fd00::1]:5000", "registry.lan"}},
				PoweroffDelay: 3,
			},
		},
		{"last value wins", "b2c.poweroff_delay=1 ociboot.poweroff_delay=2 ociboot.modules=a ociboot.modules=b", "", Plan{Modules: []string{"b"}, PoweroffDelay: 2}},
		{"arguments for init after --", "ociboot.container=alpine -- ociboot.container=debian ociboot.foo", "", Plan{Containers: []Container{c("alpine")}, PoweroffDelay: -1}},
		{
			"pipeline, services, post containers and shutdown",
			`b2c.service=redis b2c.post_container="busybox echo post" ociboot.service="--name db postgres" b2c.pipefail b2c.shutdown_cmd="/bin/busybox poweroff -f" ` +
				`ociboot.reboot_cmd="/sbin/reboot -f" ociboot.on_failure=reboot b2c.hostname=runner-12 b2c.insmods=/lib/modules/extra/a.ko,b.ko.xz ociboot.container=alpine`,
			"ociboot.pipefail=0",
			Plan{
				Containers:     []Container{c("alpine")},
				Services:       []Container{b2c("redis"), c("--name db postgres")},
				PostContainers: []Container{b2c("busybox echo post")},
				Pipefail:       true,
				ShutdownCmd:    []string{"/bin/busybox", "poweroff", "-f"},
				RebootCmd:      []string{"/sbin/reboot", "-f"},
				OnFailure:      FailReboot,
				Hostname:       "runner-12",
				Insmods:        []string{"/lib/modules/extra/a.ko", "b.ko.xz"},
				PoweroffDelay:  -1,
			},
		},
		{"pipefail values", "ociboot.pipefail=yes ociboot.pipefail=off", "", Plan{PoweroffDelay: -1}},
		{"other namespaces are left alone", "rd.break=pre-mount ociboot2.foo b2cx=1 OCIBOOT.foo", "", Plan{PoweroffDelay: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.kernel, Baked{Cmdline: tt.baked})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tt.want.Registry.Timeout == 0 {
				tt.want.Registry.Timeout = image.DefaultPullTimeout
			}
			if tt.want.PushTimeout == 0 {
				tt.want.PushTimeout = DefaultPushTimeout
			}
			if tt.want.LinkWait == 0 {
				tt.want.LinkWait = netconf.DefaultLinkWait
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("Parse\n got %#v\nwant %#v", *got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ kernel, baked, want string }{
		{"ociboot.frobnicate=1", "", `unknown kernel parameter "ociboot.frobnicate": ociboot's parameters are listed in docs/cmdline.md`},
		{"b2c.containr=alpine", "", `unknown kernel parameter "b2c.containr" (did you mean b2c.container?)`},
		{"b2c.pipefail=maybe", "", `b2c.pipefail="maybe": got "maybe", expected no value, or 1/0`},
		{"b2c.shutdown_cmd=", "", `b2c.shutdown_cmd="": empty command`},
		{"b2c.reboot_cmd", "", `b2c.reboot_cmd: needs a value: a command`},
		{"ociboot.on_failure=halt", "", `got "halt", expected poweroff, reboot or shell`},
		{"b2c.hostname=-x", "", `got "-x", expected a host name`},
		{"b2c.hostname=a_b", "", `got "a_b"`},
		{"b2c.insmods=a.ko,", "", `module file "": expected comma-separated paths`},
		{"b2c.insmods=a.txt", "", `module file "a.txt"`},
		{"b2c.service", "", `b2c.service: needs a value: [OPTIONS] IMAGE`},
		{"b2c.post_container=--bogus alpine", "", `unknown container option --bogus`},
		{"b2c.volumes=job", "", `unknown kernel parameter "b2c.volumes"`},
		{"", "ociboot.bar", `unknown baked-in parameter "ociboot.bar"`},
		{"ociboot.container", "", `kernel parameter ociboot.container: needs a value: [OPTIONS] IMAGE`},
		{`b2c.container="--detach alpine"`, "", `kernel parameter b2c.container="--detach alpine": option --detach: not supported: a pipeline container runs in the foreground`},
		{`ociboot.run=`, "", `kernel parameter ociboot.run="": no image`},
		{"b2c.poweroff_delay=-1", "", `kernel parameter b2c.poweroff_delay="-1": got "-1", expected a whole number of seconds, 0 or more`},
		{"ociboot.poweroff_delay=soon", "", `ociboot.poweroff_delay="soon": got "soon"`},
		{"ociboot.poweroff_delay", "", `ociboot.poweroff_delay: needs a value: a whole number`},
		{"ociboot.poweroff_delay=x ociboot.poweroff_delay=1", "", `got "x"`},
		{"", "ociboot.poweroff_delay=+1", `baked-in parameter ociboot.poweroff_delay="+1"`},
		{"ociboot.modules=a,,b", "", `ociboot.modules="a,,b": module name "": expected comma-separated module names`},
		{"ociboot.modules=../x", "", `module name "../x"`},
		{"ociboot.insecure_registry=http://r:5000", "", `ociboot.insecure_registry="http://r:5000": "http://r:5000" has a scheme or a path, expected HOST[:PORT]`},
		{"ociboot.insecure_registry=r:0", "", `port "0" is not a number from 1 to 65535`},
		{"ociboot.insecure_registry=r:70000", "", `port "70000"`},
		{"ociboot.insecure_registry=r/ci", "", `"r/ci" has a scheme or a path`},
		{"ociboot.insecure_registry=r_1", "", `"r_1" is neither a host name nor an IP address (a registry is HOST[:PORT]`},
		{"ociboot.insecure_registry=fd00::1", "", `port ":1"`},
		{"ociboot.insecure_registry=[fd00::1", "", `no closing ']'`},
		{"ociboot.insecure_registry=[10.0.0.1]:5000", "", `"10.0.0.1" is not an IPv6 address`},
		{"ociboot.insecure_registry=[::1]5000", "", `unexpected "5000" after ']'`},
		{"ociboot.insecure_registry=-r-", "", `"-r-" is neither`},
		{"ociboot.insecure_registry", "", `ociboot.insecure_registry: needs a value`},
		{"ociboot.container=alpine", "ociboot.nope=1", `unknown baked-in parameter "ociboot.nope"`},
	}
	for _, tt := range tests {
		got, err := Parse(tt.kernel, Baked{Cmdline: tt.baked})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q, %q) = %+v, %v\nwant error containing %q", tt.kernel, tt.baked, got, err, tt.want)
		}
	}
}

func TestParseWithExtra(t *testing.T) {
	baked := Baked{Cmdline: "ociboot.container=a ociboot.poweroff_delay=1 ociboot.registry_mirror=docker.io=m1 ociboot.registry_mirror=quay.io=q1 ociboot.on_failure=reboot"}
	kernel := "ociboot.container=b ociboot.hostname=k ociboot.registry_mirror=docker.io=m2 ociboot.on_failure=poweroff"
	extra := "b2c.container=c ociboot.registry_mirror=quay.io=q2 b2c.pipefail\nociboot.on_failure=reboot\n"
	p, err := ParseWithExtra(kernel, baked, extra)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Containers) != 2 || p.Containers[0].Image != "b" || p.Containers[1].Image != "c" || p.Containers[1].Dialect != DialectB2C {
		t.Errorf("containers %+v: want the kernel's, then the extra args' b2c container", p.Containers)
	}
	if p.Hostname != "k" || p.PoweroffDelay != 1 || !p.Pipefail || p.OnFailure != FailReboot {
		t.Errorf("hostname %q, poweroff delay %d, pipefail %v, on failure %s: want k (kernel), 1 (baked), true and reboot (extra)", p.Hostname, p.PoweroffDelay, p.Pipefail, p.OnFailure)
	}
	got := fmt.Sprint(p.Registry.Mirrors)
	if want := "[docker.io=m2 quay.io=q2]"; got != want {
		t.Errorf("mirrors %s, want %s: each layer replaces a registry's mirrors", got, want)
	}
	if _, err := ParseWithExtra(kernel, baked, "ociboot.nope=1"); err == nil || !strings.Contains(err.Error(), `unknown extra_args_url parameter "ociboot.nope"`) {
		t.Errorf("unknown extra parameter: %v", err)
	}
	for _, early := range []string{"b2c.ntp_peer=auto", "ociboot.modules=e1000", "b2c.extra_args_url=http://x/y", "b2c.hostname=h"} {
		_, err := ParseWithExtra(kernel, baked, early)
		if err == nil || !strings.Contains(err.Error(), "comes too late") {
			t.Errorf("%s in the extra args: %v, want an error saying it comes too late", early, err)
		}
	}
	p, err = Parse("b2c.ntp_peer=10.0.2.100:123 b2c.extra_args_url=https://boot.lan/args", Baked{})
	if err != nil || p.NTPPeer.String() != "10.0.2.100:123" || p.ExtraArgsURL != "https://boot.lan/args" {
		t.Errorf("ntp_peer and extra_args_url: %+v, %v", p, err)
	}
	for _, bad := range []string{"b2c.extra_args_url=ftp://x/y", "b2c.extra_args_url=/args", "b2c.ntp_peer=", "b2c.ntp_peer=a:b:c"} {
		if _, err := Parse(bad, Baked{}); err == nil || !strings.Contains(err.Error(), strings.Split(bad, "=")[0]) {
			t.Errorf("%s: %v, want an error naming the parameter", bad, err)
		}
	}
}

// TestDocumentedParameters checks that docs/cmdline.md documents every
// parameter the parser knows, and no other.
func TestDocumentedParameters(t *testing.T) {
	data, err := os.ReadFile("../../docs/cmdline.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	name := regexp.MustCompile("`((?:ociboot|b2c)\\.[a-z0-9_]+|rd\\.[a-z.]+|modprobe\\.[a-z]+|ip|init|selinux|enforcing)`")
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		for _, m := range name.FindAllStringSubmatch(first, -1) {
			documented[m[1]] = true
		}
	}
	known := map[string]bool{}
	for _, n := range allNames(knownParams()) {
		known[n] = true
		if !documented[n] {
			t.Errorf("parameter %s is not documented in docs/cmdline.md", n)
		}
	}
	for n := range documented {
		if !known[n] {
			t.Errorf("docs/cmdline.md documents %s, which the parser does not know", n)
		}
	}
}

// FuzzParse feeds arbitrary command lines to Parse: it must not panic,
// and a Plan it returns holds only containers with an image.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`b2c.container="-ti docker://alpine:latest" b2c.pipefail ociboot.service=redis`,
		`ociboot.registry_auth=r,u,p ociboot.registry_mirror=docker.io=m|n ociboot.pull_timeout=90s`,
		`b2c.shutdown_cmd="/bin/poweroff -f" b2c.insmods=a.ko ociboot.on_failure=reboot -- ociboot.x`,
		`ociboot.hostname=x ociboot.platform=linux/arm/v7 ociboot.modules=a,b b2c.poweroff_delay=3`,
	} {
		f.Add(s, "ociboot.container=alpine")
	}
	f.Fuzz(func(t *testing.T, kernel, baked string) {
		p, err := ParseWithExtra(kernel, Baked{Cmdline: baked}, kernel)
		if err != nil {
			return
		}
		for _, list := range [][]Container{p.Containers, p.Services, p.PostContainers} {
			for _, c := range list {
				if c.Image == "" {
					t.Fatalf("container %q without an image", c.Spec)
				}
			}
		}
	})
}

func TestOnFailureShell(t *testing.T) {
	if _, err := Parse("ociboot.on_failure=shell", Baked{}); err == nil || !strings.Contains(err.Error(), "ociboot build --shell") {
		t.Errorf("shell without one: %v", err)
	}
	p, err := Parse("ociboot.on_failure=shell", Baked{Shell: "/bin/sh"})
	if err != nil || p.OnFailure != FailShell || p.Shell() != "/bin/sh" {
		t.Errorf("shell with one: %+v, %v", p, err)
	}
	// A refused command line still says what to do on the failure, as far
	// as it can be read.
	p, err = Parse("ociboot.bogus=1 ociboot.on_failure=reboot b2c.poweroff_delay=x ociboot.poweroff_delay=2 ociboot.container=alpine", Baked{Cmdline: "ociboot.on_failure=shell"})
	if err == nil || p == nil || p.OnFailure != FailReboot || p.PoweroffDelay != 2 || len(p.Containers) != 0 {
		t.Errorf("refused command line: %+v, %v; want an error, reboot, 2 and nothing else", p, err)
	}
	if p, err := Parse("ociboot.on_failure=shell", Baked{}); err == nil || p.OnFailure != "" {
		t.Errorf("refused on_failure=shell without a shell: %q, %v; want none", p.OnFailure, err)
	}
	if p, err := Parse("rd.shell ociboot.nope", Baked{Shell: "/bin/sh"}); err == nil || p.OnFailure != FailShell || p.Shell() != "/bin/sh" {
		t.Errorf("refused command line with rd.shell: %q, %v; want the shell", p.OnFailure, err)
	}
}

func TestNetworkParameters(t *testing.T) {
	p, err := Parse(`ip=10.0.2.15::10.0.2.2:255.255.255.0:box:eth0:off b2c.iface=eth1,address=192.168.7.2/24,gateway=192.168.7.1 ociboot.iface=eth2,dhcp`, Baked{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Ifaces) != 2 || p.Ifaces[0].Name != "eth1" || !p.Ifaces[1].DHCP || p.KernelIP == nil || p.KernelIP.Hostname != "box" {
		t.Errorf("ifaces %+v, ip= %+v", p.Ifaces, p.KernelIP)
	}
	for _, bad := range []string{"ip=10.0.2.15:x", "b2c.iface=eth0,address=10.0.0.1", "b2c.iface", "ip"} {
		_, err := Parse(bad, Baked{})
		key, _, _ := strings.Cut(bad, "=")
		if err == nil || !strings.Contains(err.Error(), "kernel parameter "+key) {
			t.Errorf("%s: %v, want an error naming %s", bad, err, key)
		}
	}
	if _, err := ParseWithExtra("", Baked{}, "b2c.iface=eth0,dhcp"); err == nil || !strings.Contains(err.Error(), "comes too late") {
		t.Errorf("iface in extra args: %v", err)
	}
}

func kernelIP(t *testing.T, s string) *netconf.KernelIP {
	t.Helper()
	k, err := netconf.ParseKernelIP(s)
	if err != nil {
		t.Fatal(err)
	}
	return &k
}

func TestKeymap(t *testing.T) {
	p, err := Parse("b2c.keymap=fr-latin1", Baked{Keymaps: []string{"us", "fr-latin1"}})
	if err != nil || p.Keymap != "fr-latin1" {
		t.Errorf("keymap in the initramfs: %q, %v", p.Keymap, err)
	}
	if _, err := Parse("b2c.keymap=de-latin1", Baked{Keymaps: []string{"us", "fr-latin1"}}); err == nil || !strings.Contains(err.Error(), "which has us, fr-latin1") {
		t.Errorf("keymap not in the initramfs: %v", err)
	}
	if _, err := Parse("b2c.keymap=us", Baked{}); err == nil || !strings.Contains(err.Error(), "ociboot build --keymaps common") {
		t.Errorf("no keymaps at all: %v", err)
	}
}

func TestColdplugParameters(t *testing.T) {
	p, err := Parse("ociboot.coldplug=0 modprobe.blacklist=e1000,nouveau rd.driver.blacklist=snd-hda-intel modprobe.blacklist=e1000", Baked{})
	if err != nil || !p.NoColdplug || !slices.Equal(p.Blacklist, []string{"e1000", "nouveau", "snd_hda_intel"}) {
		t.Errorf("Parse: coldplug off %v, blacklist %q, %v", p.NoColdplug, p.Blacklist, err)
	}
	if p, err := Parse("", Baked{}); err != nil || p.NoColdplug {
		t.Errorf("coldplug is off by default: %v", err)
	}
	if _, err := Parse("modprobe.blacklist=e1000,../x", Baked{}); err == nil || !strings.Contains(err.Error(), `module name "../x"`) {
		t.Errorf("a bad module name: %v", err)
	}
}

func TestLinkWait(t *testing.T) {
	for in, want := range map[string]time.Duration{"": netconf.DefaultLinkWait, "ociboot.link_wait=0": 0, "ociboot.link_wait=10": 10 * time.Second, "ociboot.link_wait=500ms": 500 * time.Millisecond} {
		if p, err := Parse(in, Baked{}); err != nil || p.LinkWait != want {
			t.Errorf("Parse(%q): LinkWait %v, %v; want %v", in, p.LinkWait, err, want)
		}
	}
	if _, err := Parse("ociboot.link_wait=soon", Baked{}); err == nil || !strings.Contains(err.Error(), "ociboot.link_wait") || !strings.Contains(err.Error(), "a duration") {
		t.Errorf("a bad link_wait: %v", err)
	}
}

func TestReportParameters(t *testing.T) {
	cmdline := `ociboot.report=https://fleet:s3cret@lab.example:8443/v1/events?token=abc ociboot.console_sections=gitlab ociboot.registry_auth=r.example,ci,pw1 ociboot.container="--creds u:pw2 alpine"`
	p, err := Parse(cmdline, Baked{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Report != "https://fleet:s3cret@lab.example:8443/v1/events?token=abc" || p.ConsoleSections != "gitlab" {
		t.Errorf("report %q, sections %q", p.Report, p.ConsoleSections)
	}
	secrets := p.Secrets()
	slices.Sort(secrets)
	if want := []string{"pw1", "pw2", "s3cret", "token=abc"}; !slices.Equal(secrets, want) {
		t.Errorf("Secrets() = %q, want %q", secrets, want)
	}
	masked := MaskSecrets(cmdline)
	for _, s := range []string{"s3cret", "token=abc", "pw1"} {
		if strings.Contains(masked, s) {
			t.Errorf("MaskSecrets left %s: %s", s, masked)
		}
	}
	if !strings.Contains(masked, `ociboot.report="https://fleet:***@lab.example:8443/v1/events?***"`) {
		t.Errorf("MaskSecrets: %s", masked)
	}
	if p, err := Parse("ociboot.console_sections=none", Baked{}); err != nil || p.ConsoleSections != "" {
		t.Errorf("console_sections=none: %q, %v", p.ConsoleSections, err)
	}
	for _, tt := range []struct{ cmdline, want string }{
		{"ociboot.report=ftp://x/", `ociboot.report="ftp://x/": got "ftp://x/", expected an http:// or https:// URL`},
		{"ociboot.report=http://u:pw@/x", `got "http://u:***@/x"`},
		{"ociboot.report", `ociboot.report: needs a value`},
		{"ociboot.console_sections=github", `ociboot.console_sections="github": got "github", expected gitlab (GitLab CI's collapsible sections) or none`},
	} {
		if _, err := Parse(tt.cmdline, Baked{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q): %v, want %q", tt.cmdline, err, tt.want)
		}
	}
}

package bootcfg

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/internal/image"
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
					c("-ti docker://alpine:latest"), c("alpine sh -c 'echo hi; exit 3'"),
					c("busybox"), c("--entrypoint=/bin/true busybox"),
				},
				PoweroffDelay: 15,
			},
		},
		{
			"baked defaults",
			"console=ttyS0",
			`ociboot.container=alpine ociboot.modules=virtio_net,e1000 ociboot.insecure_registry=10.0.2.100:5000 ociboot.poweroff_delay=0`,
			Plan{
				Containers:         []Container{c("alpine")},
				Modules:            []string{"virtio_net", "e1000"},
				InsecureRegistries: []string{"10.0.2.100:5000"},
				PoweroffDelay:      0,
			},
		},
		{
			"kernel replaces baked lists as a whole, under any spelling",
			`b2c.run=busybox ociboot.insecure_registry=[fd00::1]:5000 ociboot.insecure_registry=registry.lan`,
			`ociboot.container=alpine ociboot.container=debian ociboot.insecure_registry=10.0.2.100:5000 ociboot.poweroff_delay=3 ociboot.modules=a`,
			Plan{
				Containers:         []Container{c("busybox")},
				Modules:            []string{"a"},
				InsecureRegistries: []string{"[fd00::1]:5000", "registry.lan"},
				PoweroffDelay:      3,
			},
		},
		{"last value wins", "b2c.poweroff_delay=1 ociboot.poweroff_delay=2 ociboot.modules=a ociboot.modules=b", "", Plan{Modules: []string{"b"}, PoweroffDelay: 2}},
		{"arguments for init after --", "ociboot.container=alpine -- ociboot.container=debian ociboot.foo", "", Plan{Containers: []Container{c("alpine")}, PoweroffDelay: -1}},
		{"other namespaces are left alone", "rd.container.rootfs=x ociboot2.foo b2cx=1 OCIBOOT.foo", "", Plan{PoweroffDelay: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.kernel, Baked{Cmdline: tt.baked})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tt.want.PullTimeout == 0 {
				tt.want.PullTimeout = image.DefaultPullTimeout
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("Parse\n got %#v\nwant %#v", *got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ kernel, baked, want string }{
		{"ociboot.foo=1", "", `unknown kernel parameter "ociboot.foo": expected one of ociboot.container, ociboot.run, b2c.container, b2c.run, ociboot.modules, ociboot.insecure_registry, ociboot.registry_mirror, ociboot.registry_auth, ociboot.platform, ociboot.pull_timeout, ociboot.poweroff_delay, b2c.poweroff_delay`},
		{"b2c.volume=job", "", `unknown kernel parameter "b2c.volume"`},
		{"", "ociboot.bar", `unknown baked-in parameter "ociboot.bar"`},
		{"ociboot.container", "", `kernel parameter ociboot.container: needs a value: [OPTIONS] IMAGE`},
		{`b2c.container="-v /a:/b alpine"`, "", `kernel parameter b2c.container="-v /a:/b alpine": unknown container option -v`},
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

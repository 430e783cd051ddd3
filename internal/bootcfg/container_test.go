package bootcfg

import (
	"math"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestParseContainer(t *testing.T) {
	tests := []struct {
		spec string
		want Container
	}{
		{"alpine", Container{Image: "alpine"}},
		{"-ti docker://alpine:latest", Container{Image: "alpine:latest", TTY: true, Interactive: true}},
		{
			"--rm --privileged --network=host --pull=always alpine sh -c 'echo hi; exit 3'",
			Container{Image: "alpine", Pull: "always", Command: []string{"sh", "-c", "echo hi; exit 3"}, Privileged: true},
		},
		{
			`-e A=1 --env B=2 -eC=3 -e=D=4 --env=E="x y" -it registry.lan:5000/ci/runner:v1 run --verbose -e`,
			Container{
				Image:       "registry.lan:5000/ci/runner:v1",
				Env:         []string{"A=1", "B=2", "C=3", "D=4", "E=x y"},
				Command:     []string{"run", "--verbose", "-e"},
				TTY:         true,
				Interactive: true,
			},
		},
		{
			"-tie K=V --net host alpine",
			Container{Image: "alpine", Env: []string{"K=V"}, TTY: true, Interactive: true},
		},
		{
			"-w /work --workdir=/tmp -u 1000:1000 --user=nobody --name job-1 -h runner --hostname=ci alpine",
			Container{Image: "alpine", Workdir: "/tmp", User: "nobody", Name: "job-1", Hostname: "ci"},
		},
		{`--entrypoint /bin/sh alpine -c true`, Container{Image: "alpine", Entrypoint: []string{"/bin/sh"}, Command: []string{"-c", "true"}}},
		{`--entrypoint '["/bin/sh", "-c"]' alpine true`, Container{Image: "alpine", Entrypoint: []string{"/bin/sh", "-c"}, Command: []string{"true"}}},
		{`--entrypoint "/bin/sh -c" alpine`, Container{Image: "alpine", Entrypoint: []string{"/bin/sh -c"}}},
		{`--entrypoint= alpine`, Container{Image: "alpine", Entrypoint: []string{}}},
		{`--entrypoint '' alpine`, Container{Image: "alpine", Entrypoint: []string{}}},
		{`--entrypoint '[]' alpine`, Container{Image: "alpine", Entrypoint: []string{}}},
		{`--entrypoint '[bad' alpine`, Container{Image: "alpine", Entrypoint: []string{"[bad"}}},
		{"--pull missing --rm=true -- alpine --not-an-option", Container{Image: "alpine", Pull: "missing", Command: []string{"--not-an-option"}}},
		{"--pull=never alpine", Container{Image: "alpine", Pull: "never"}},
		{"docker://ghcr.io/o/i@sha256:" + strings.Repeat("a", 64), Container{Image: "ghcr.io/o/i@sha256:" + strings.Repeat("a", 64)}},
		{"job:v1@sha256:" + strings.Repeat("b", 64), Container{Image: "job:v1@sha256:" + strings.Repeat("b", 64)}},
		{"--platform linux/arm/v7 alpine", Container{Image: "alpine", Platform: v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}}},
		{"--platform=aarch64 alpine", Container{Image: "alpine", Platform: v1.Platform{OS: "linux", Architecture: "arm64"}}},
	}
	for _, tt := range tests {
		got, err := ParseContainer(tt.spec)
		if err != nil {
			t.Errorf("ParseContainer(%q): %v", tt.spec, err)
			continue
		}
		tt.want.Spec = tt.spec
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseContainer(%q)\n got %#v\nwant %#v", tt.spec, got, tt.want)
		}
	}
}

func TestParseContainerErrors(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"", "no image"},
		{"-ti --rm", "no image"},
		{"-e", "option -e needs a value"},
		{"--env", "option --env needs a value"},
		{"-X alpine", "unknown container option -X: not an option of podman run"},
		{"--volumes=/a:/b alpine", "unknown container option --volumes: not an option of podman run"},
		{"-tx alpine", "unknown container option -x"},
		{"-e 'F OO' alpine", `option -e: got "F OO", expected KEY=VALUE, KEY or KEY*`},
		{"-e =x alpine", `expected KEY=VALUE`},
		{"-e '*' alpine", `expected KEY=VALUE`},
		{"--network bridge alpine", `option --network: got "bridge", expected host or none`},
		{"--net=slirp4netns alpine", `option --net: got "slirp4netns"`},
		{"--pull sometimes alpine", `option --pull: got "sometimes", expected always, missing or never`},
		{"--pull= alpine", `option --pull: got "", expected always, missing or never`},
		{"-w work alpine", `option -w: got "work", expected an absolute path`},
		{"-u :0 alpine", `option -u: got ":0", expected USER[:GROUP]`},
		{"-u root: alpine", `expected USER[:GROUP]`},
		{"--name -x alpine", `option --name: got "-x"`},
		{"--name '' alpine", `option --name: got an empty name`},
		{"--hostname " + strings.Repeat("h", 65) + " alpine", "expected a host name of 1 to 64 characters"},
		{"--rm=maybe alpine", `option --rm: got "maybe", expected true or false`},
		{"Alpine", `invalid image reference "Alpine"`},
		{"docker://", `invalid image reference "docker://"`},
		{"oci-archive://x.tar", `transport "oci-archive" is not supported`},
		{"--platform linux alpine", `option --platform: platform "linux": an operating system is only allowed first`},
		{"alpine sh -c 'echo", "unterminated single quote"},
	}
	for _, tt := range tests {
		got, err := ParseContainer(tt.spec)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseContainer(%q) = %#v, %v; want error containing %q", tt.spec, got, err, tt.want)
		}
	}
}

func FuzzParseContainer(f *testing.F) {
	for _, s := range []string{
		"alpine", "-ti docker://alpine:latest echo hi", "-e A=1 -eB=2 --env=C=3 alpine",
		`--entrypoint '["sh","-c"]' alpine 'exit 3'`, "-- alpine", "-tie K=V alpine", "--rm=true alpine",
		"-w /x -u 1:2 --name n -h h --pull=missing --network host alpine",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		c, err := ParseContainer(spec)
		if err != nil {
			return
		}
		if c.Image == "" || c.Spec != maskCreds(spec) || strings.HasPrefix(c.Image, "docker://") {
			t.Fatalf("ParseContainer(%q) = %#v: bad image or spec", spec, c)
		}
		words, _ := ShellSplit(spec)
		if n := len(c.Command); n > 0 && !reflect.DeepEqual(words[len(words)-n:], c.Command) {
			t.Fatalf("ParseContainer(%q): command %q is not the tail of %q", spec, c.Command, words)
		}
		// Adding an option that changes nothing gives the same container.
		again, err := ParseContainer("--rm " + spec)
		again.Spec = c.Spec
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("ParseContainer(%q) = %#v, %v; without --rm it was %#v", "--rm "+spec, again, err, c)
		}
	})
}

func TestParseContainerMountsAndLimits(t *testing.T) {
	c, err := ParseContainer(`-v /run/data:/data -v /etc/ci:/ci:ro -v job:/job --mount type=volume,src=cache.1,dst=/c,ro --mount type=tmpfs,target=/scratch,tmpfs-size=64m,tmpfs-mode=1777 ` +
		`--mount type=bind,source=/srv,target=/srv,readonly --tmpfs /cache:size=1g,mode=700 --device /dev/kvm --device /dev/ttyS1:/dev/ttyS9:rw ` +
		`--env-file /etc/ci.env --network none --shm-size 128m --ulimit nofile=1024:4096 --ulimit core=-1 ` +
		`--security-opt seccomp=unconfined --security-opt no-new-privileges alpine`)
	if err != nil {
		t.Fatal(err)
	}
	want := Container{
		Image: "alpine",
		Mounts: []Mount{
			{Type: "bind", Source: "/run/data", Target: "/data"},
			{Type: "bind", Source: "/etc/ci", Target: "/ci", ReadOnly: true},
			{Type: "volume", Source: "job", Target: "/job"},
			{Type: "volume", Source: "cache.1", Target: "/c", ReadOnly: true},
			{Type: "tmpfs", Target: "/scratch", Options: []string{"size=67108864", "mode=1777"}},
			{Type: "bind", Source: "/srv", Target: "/srv", ReadOnly: true},
			{Type: "tmpfs", Target: "/cache", Options: []string{"size=1073741824", "mode=700"}},
		},
		Devices:           []Device{{Host: "/dev/kvm", Container: "/dev/kvm", Access: "rwm"}, {Host: "/dev/ttyS1", Container: "/dev/ttyS9", Access: "rw"}},
		EnvFiles:          []string{"/etc/ci.env"},
		NoNetwork:         true,
		ShmSize:           128 << 20,
		Ulimits:           []Ulimit{{Name: "nofile", Soft: 1024, Hard: 4096}, {Name: "core", Soft: math.MaxUint64, Hard: math.MaxUint64}},
		SeccompUnconfined: true,
		NoNewPrivileges:   true,
	}
	c.Spec = ""
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	for _, tc := range []struct{ spec, want string }{
		{"-v -data:/data alpine", `got "-data": expected a host path such as /run/data or a volume name`},
		{"-v /a:/b:U alpine", `volume option "U": expected ro, rw, z or Z`},
		{"-v /a/../b:/b alpine", `host path "/a/../b": expected an absolute, clean path`},
		{"-v /a alpine", "expected HOST-PATH:CONTAINER-PATH"},
		{"--mount type=volume,target=/x alpine", `a volume mount needs source=NAME`},
		{"--mount type=nfs,target=/x alpine", `type "nfs": expected bind, volume or tmpfs`},
		{"--mount type=bind,target=/x alpine", "a bind mount needs source="},
		{"--mount target=/x alpine", "expected type=bind, type=volume or type=tmpfs"},
		{"--tmpfs tmp alpine", `tmpfs path "tmp"`},
		{"--tmpfs /t:size=lots alpine", `got "lots", expected a size`},
		{"--device /dev/kvm:xyz alpine", `permissions "xyz"`},
		{"--shm-size 0 alpine", `got "0", expected a size`},
		{"--ulimit files=1 alpine", `expected NAME=SOFT[:HARD] with NAME one of`},
		{"--ulimit nofile=10:5 alpine", "soft at most hard"},
		{"--security-opt seccomp=/x.json alpine", `got "seccomp=/x.json"`},
		{"--network bridge alpine", `got "bridge", expected host or none`},
	} {
		if _, err := ParseContainer(tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseContainer(%q) = %v, want an error containing %q", tc.spec, err, tc.want)
		}
	}
}

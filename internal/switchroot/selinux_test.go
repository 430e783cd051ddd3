package switchroot

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

// fakeRunner records the commands it is given instead of running them
// (runInRoot chroots them into the test's tree) and ends each with the
// next of its exit codes (0 when none is left), after writing out to its
// output.
type fakeRunner struct {
	dir   string
	codes []int
	out   string
	err   error
	ran   [][]string
	bad   []string // what was wrong with a command
}

func (r *fakeRunner) Start(cmd *exec.Cmd) (func() int, error) {
	if r.err != nil {
		return nil, r.err
	}
	r.ran = append(r.ran, append([]string{cmd.Path}, cmd.Args[1:]...))
	if cmd.SysProcAttr == nil || cmd.SysProcAttr.Chroot != r.dir {
		r.bad = append(r.bad, cmd.Path+": not chroot'ed into the tree")
	}
	if cmd.Dir != "/" {
		r.bad = append(r.bad, cmd.Path+": not run in /")
	}
	if cmd.Stdout == nil || cmd.Stdout != cmd.Stderr {
		r.bad = append(r.bad, cmd.Path+": stdout and stderr are not the same pipe")
	} else if _, err := io.WriteString(cmd.Stdout, r.out); err != nil {
		return nil, err
	}
	code := 0
	if len(r.codes) > 0 {
		code, r.codes = r.codes[0], r.codes[1:]
	}
	return func() int { return code }, nil
}

func TestLoadSELinuxPolicy(t *testing.T) {
	const (
		loadPolicy = "/usr/sbin/load_policy"
		restorecon = "/usr/sbin/restorecon"
	)
	tools := tree{"usr/sbin/load_policy": file(elfHead, 0o755), "usr/sbin/restorecon": file(elfHead, 0o755)}
	config := func(body string, more ...tree) tree {
		tr := tree{"etc/selinux/config": file(body, 0o644)}
		for _, m := range more {
			for k, v := range m {
				tr[k] = v
			}
		}
		return tr
	}
	enforcing := "# This file controls the state of SELinux on the system.\n#SELINUX=disabled\nSELINUX=enforcing\nSELINUXTYPE=targeted\n"
	permissive := "SELINUX=permissive\nSELINUXTYPE=targeted\n"
	full := [][]string{{loadPolicy, "-i"}, {restorecon, "-R", "-x", "/"}, {restorecon, "-R", "/dev", "/run"}}
	loadOnly := full[:1]

	tests := []struct {
		name        string
		tree        tree
		s           SELinux // without its Runner
		codes       []int
		ran         [][]string
		loaded      bool
		errs        []string // parts of the error, when one is wanted
		log         string   // part of the log
		startFailed bool
	}{
		{name: "selinux=0", tree: config(enforcing, tools), s: SELinux{Disabled: true}},
		{name: "no config", tree: tools},
		{name: "SELINUX=disabled", tree: config("SELINUX=disabled\nSELINUXTYPE=targeted\n", tools)},
		{name: "SELINUX=Disabled, quoted", tree: config(`SELINUX="Disabled"`+"\n", tools)},
		{
			name: "enforcing without load_policy", tree: config(enforcing),
			errs: []string{"/etc/selinux/config says enforcing but the image has no load_policy", "selinux=0", "enforcing=0"},
		},
		{
			name: "no SELINUX= line means enforcing", tree: config("SELINUXTYPE=targeted\n"),
			errs: []string{"says enforcing but the image has no load_policy"},
		},
		{name: "permissive without load_policy", tree: config(permissive), log: "says permissive but the image has no load_policy: going on without a policy"},
		{name: "enforcing=0 without load_policy", tree: config(enforcing), s: SELinux{Permissive: true}, log: "going on without a policy"},
		{name: "policy loaded and root relabelled", tree: config(enforcing, tools), ran: full, loaded: true, log: "selinux: root relabelled"},
		{
			name: "permissive without restorecon", tree: config(permissive, tree{"sbin": symlink("usr/sbin"), "usr/sbin/load_policy": file(elfHead, 0o755)}),
			ran: loadOnly, loaded: true, log: "the image has no restorecon",
		},
		{
			name: "tools in /sbin only", tree: config(enforcing, tree{"sbin/load_policy": file(elfHead, 0o755), "sbin/restorecon": file(elfHead, 0o755)}),
			ran: [][]string{{"/sbin/load_policy", "-i"}, {"/sbin/restorecon", "-R", "-x", "/"}, {"/sbin/restorecon", "-R", "/dev", "/run"}}, loaded: true,
		},
		{name: "exit 2: SELinux disabled in the kernel", tree: config(enforcing, tools), codes: []int{2}, ran: loadOnly, log: "the kernel has SELinux disabled"},
		{
			name: "exit 1, enforcing", tree: config(enforcing, tools), codes: []int{1}, ran: loadOnly,
			errs: []string{"selinux: /usr/sbin/load_policy -i failed with status 1 in enforcing mode: tool output"},
		},
		{name: "exit 1, SELINUX=permissive", tree: config(permissive, tools), codes: []int{1}, ran: loadOnly, log: "failed with status 1 (tool output): going on, permissive"},
		{name: "exit 1, enforcing=0", tree: config(enforcing, tools), s: SELinux{Permissive: true}, codes: []int{1}, ran: loadOnly, log: "going on, permissive"},
		{
			// load_policy's 3: the policy, or the kernel, asked for
			// enforcing mode.
			name: "exit 3, permissive", tree: config(permissive, tools), codes: []int{3}, ran: loadOnly,
			errs: []string{"failed with status 3 in enforcing mode"},
		},
		{
			name: "enforcing without restorecon", tree: config(enforcing, tree{"usr/sbin/load_policy": file(elfHead, 0o755)}), ran: loadOnly, loaded: true,
			errs: []string{"the image has no restorecon to label its files, in enforcing mode"},
		},
		{
			name: "relabel fails, enforcing", tree: config(enforcing, tools), codes: []int{0, 1}, ran: full[:2], loaded: true,
			errs: []string{"selinux: relabelling with /usr/sbin/restorecon -R -x /: exit status 1: tool output"},
		},
		{name: "relabel fails, permissive", tree: config(permissive, tools), codes: []int{0, 1, 255}, ran: full, loaded: true, log: "restorecon -R /dev /run: exit status 255: tool output (going on, permissive)"},
		{name: "start fails", tree: config(enforcing, tools), startFailed: true, errs: []string{"selinux: /usr/sbin/load_policy -i: no process"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.tree.build(t, dir)
			r := &fakeRunner{dir: dir, codes: tt.codes, out: "tool output\n"}
			if tt.startFailed {
				r.err = errors.New("no process")
			}
			s := tt.s
			s.Runner = r
			var log strings.Builder
			loaded, err := LoadSELinuxPolicy(context.Background(), dir, s, &log)
			if loaded != tt.loaded {
				t.Errorf("loaded %v, want %v", loaded, tt.loaded)
			}
			if !reflect.DeepEqual(r.ran, tt.ran) {
				t.Errorf("ran %q, want %q", r.ran, tt.ran)
			}
			for _, bad := range r.bad {
				t.Error(bad)
			}
			if tt.errs == nil && err != nil {
				t.Errorf("LoadSELinuxPolicy: %v", err)
			}
			if tt.errs != nil && err == nil {
				t.Error("LoadSELinuxPolicy: no error, want one")
			}
			for _, want := range tt.errs {
				if err != nil && !strings.Contains(err.Error(), want) {
					t.Errorf("LoadSELinuxPolicy: %v\nwant an error containing %q", err, want)
				}
			}
			if !strings.Contains(log.String(), tt.log) {
				t.Errorf("log %q, want %q", log.String(), tt.log)
			}
		})
	}
}

func TestSELinuxMode(t *testing.T) {
	tests := []struct{ config, want string }{
		{"SELINUX=enforcing\n", "enforcing"},
		{"  SELINUX = permissive\n", "enforcing"}, // not SELINUX=: the default
		{"SELINUX=Permissive\n", "permissive"},
		{"SELINUX='disabled'  \n", "disabled"},
		{"SELINUX=disabled\nSELINUX=permissive\n", "permissive"}, // the last one wins
		{"#SELINUX=disabled\nSELINUXTYPE=targeted\n", "enforcing"},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		tree{"etc/selinux/config": file(tt.config, 0o644)}.build(t, dir)
		_, err := LoadSELinuxPolicy(context.Background(), dir, SELinux{Runner: &fakeRunner{dir: dir}}, io.Discard)
		// Without load_policy, only enforcing mode fails.
		if got := err != nil; got != (tt.want == "enforcing") {
			t.Errorf("config %q: %v; want mode %s", tt.config, err, tt.want)
		}
	}
}

package switchroot

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// elfHead starts an x86-64 ELF executable: FindInit reads no more.
const elfHead = "\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00"

// tree builds a directory tree under dir from a compact description.
type tree map[string]entry

// entry is a file (body and mode), a directory (dir), a symbolic link
// (link) or a FIFO (fifo).
type entry struct {
	body string
	mode os.FileMode
	dir  bool
	link string
	fifo bool
}

func file(body string, mode os.FileMode) entry { return entry{body: body, mode: mode} }
func symlink(target string) entry              { return entry{link: target} }

var directory = entry{dir: true}

func (tr tree) build(t *testing.T, dir string) {
	t.Helper()
	for name, e := range tr {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case e.dir:
			err = os.MkdirAll(p, 0o755)
		case e.link != "":
			err = os.Symlink(e.link, p)
		case e.fifo:
			err = unix.Mkfifo(p, 0o755)
		default:
			if err = os.WriteFile(p, []byte(e.body), e.mode); err == nil {
				err = os.Chmod(p, e.mode) // whatever the umask
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestFindInit(t *testing.T) {
	// The escape cases below mean something only when the host has an
	// init that a link leading out of the tree would find.
	if head, err := os.ReadFile("/bin/true"); err != nil || !bytes.HasPrefix(head, []byte("\x7fELF")) {
		t.Fatalf("the host's /bin/true, which the escape cases need, is not an ELF binary: %v", err)
	}
	elf := file(elfHead, 0o755)
	mergedUsr := tree{
		"usr/lib/systemd/systemd": elf,
		"lib":                     symlink("usr/lib"),
		"usr/sbin":                directory,
		"sbin":                    symlink("usr/sbin"),
		"usr/sbin/init":           symlink("/lib/systemd/systemd"),
	}
	tests := []struct {
		name string
		tree tree
		init string // ociboot.init=
		want string
		errs []string // parts of the error, when one is wanted
	}{
		{name: "ELF /sbin/init", tree: tree{"sbin/init": elf}, want: "/sbin/init"},
		{name: "script", tree: tree{"sbin/init": file("#!/bin/sh\nexec /bin/sh\n", 0o700)}, want: "/sbin/init"},
		{name: "merged /usr: absolute link through /lib -> usr/lib", tree: mergedUsr, want: "/sbin/init"},
		{name: "systemd only, through /lib -> usr/lib", tree: tree{"usr/lib/systemd/systemd": elf, "lib": symlink("usr/lib")}, want: "/lib/systemd/systemd"},
		{name: "a bad /sbin/init falls back to systemd", tree: tree{"sbin/init": file("#!/bin/sh\n", 0o644), "lib/systemd/systemd": elf}, want: "/lib/systemd/systemd"},
		{name: "group-executable only", tree: tree{"sbin/init": file(elfHead, 0o010)}, want: "/sbin/init"},
		{
			// The host's /lib/systemd/systemd, if any, is executable: this
			// fails only when the link is resolved in the tree.
			name: "link resolved in the tree, not on the host",
			tree: tree{"sbin/init": symlink("/lib/systemd/systemd"), "usr/lib/systemd/systemd": file(elfHead, 0o644), "lib": symlink("usr/lib")},
			errs: []string{"/sbin/init (not executable (mode 0644))", "/lib/systemd/systemd (not executable (mode 0644))"},
		},
		{name: "not executable", tree: tree{"sbin/init": file(elfHead, 0o644)}, errs: []string{"/sbin/init (not executable (mode 0644))", "/lib/systemd/systemd (missing)", "name it with ociboot.init="}},
		{name: "directory", tree: tree{"sbin/init": directory}, errs: []string{"/sbin/init (not a regular file)"}},
		{name: "FIFO", tree: tree{"sbin/init": {fifo: true}}, errs: []string{"/sbin/init (not a regular file)"}},
		{name: "other content", tree: tree{"sbin/init": file("hello world", 0o755)}, errs: []string{`/sbin/init (neither an ELF binary nor a script (starts with "hell"))`}},
		{name: "short file", tree: tree{"sbin/init": file("\x7fE", 0o755)}, errs: []string{`neither an ELF binary nor a script (starts with "\x7fE")`}},
		{name: "empty file", tree: tree{"sbin/init": file("", 0o755)}, errs: []string{`neither an ELF binary nor a script (starts with "")`}},
		{name: "no init", tree: tree{"etc/os-release": file("ID=test\n", 0o644)}, errs: []string{"the image has no init: looked for /sbin/init (missing), /lib/systemd/systemd (missing); name it with ociboot.init="}},
		{name: "dangling link", tree: tree{"sbin/init": symlink("/lib/systemd/systemd")}, errs: []string{"/sbin/init (missing)"}},
		{name: "link loop", tree: tree{"sbin/init": symlink("init")}, errs: []string{"/sbin/init (open /sbin/init in the new root: too many levels of symbolic links)"}},
		{name: "absolute link to the host's /bin/true", tree: tree{"sbin/init": symlink("/bin/true")}, errs: []string{"/sbin/init (missing)"}},
		{name: "relative link out of the tree", tree: tree{"sbin/init": symlink("../../../../../../../../bin/true")}, errs: []string{"/sbin/init (missing)"}},
		{name: "link out of the tree via a directory link", tree: tree{"lib": symlink("../../../../../../../../usr/lib"), "sbin/init": symlink("/lib/systemd/systemd")}, errs: []string{"/sbin/init (missing)", "/lib/systemd/systemd (missing)"}},

		{name: "ociboot.init", tree: tree{"sbin/init": elf, "usr/bin/myinit": file("#!/bin/sh\n", 0o755)}, init: "/usr/bin/myinit", want: "/usr/bin/myinit"},
		{name: "ociboot.init through links", tree: mergedUsr, init: "/lib/systemd/systemd", want: "/lib/systemd/systemd"},
		{name: "ociboot.init missing: no fallback", tree: tree{"sbin/init": elf}, init: "/usr/bin/myinit", errs: []string{"ociboot.init=/usr/bin/myinit: missing"}},
		{name: "ociboot.init not executable", tree: tree{"usr/bin/myinit": file("#!/bin/sh\n", 0o600)}, init: "/usr/bin/myinit", errs: []string{"ociboot.init=/usr/bin/myinit: not executable (mode 0600)"}},
		{name: "ociboot.init relative", tree: tree{"sbin/init": elf}, init: "sbin/init", errs: []string{"ociboot.init=sbin/init: not an absolute path"}},
		{name: "ociboot.init on the host only", tree: tree{"sbin/init": elf}, init: "/bin/true", errs: []string{"ociboot.init=/bin/true: missing"}},
		{name: "ociboot.init escaping with ..", tree: tree{"sbin/init": elf}, init: "/../../../../../../bin/true", errs: []string{"missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.tree.build(t, dir)
			got, err := FindInit(dir, tt.init)
			if tt.errs == nil {
				if err != nil || got != tt.want {
					t.Errorf("FindInit = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("FindInit = %q, want an error", got)
			}
			if got != "" {
				t.Errorf("FindInit returned %q with its error", got)
			}
			for _, want := range tt.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("FindInit: %v\nwant an error containing %q", err, want)
				}
			}
		})
	}
	if _, err := FindInit(filepath.Join(t.TempDir(), "none"), ""); err == nil || !strings.Contains(err.Error(), "opening the new root") {
		t.Errorf("FindInit on a missing directory: %v", err)
	}
}

// Package hosttest finds and runs host tools in tests: the ones
// scripts/install-deps.sh installs, so that a missing one fails the test
// and says so, rather than skipping it.
package hosttest

import (
	"go/build"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Path returns where the host tool name is: on PATH, else in /usr/sbin or
// /sbin, which a user's PATH may lack, or in GOPATH/bin, where `go
// install` puts Go tools. It fails the test when there is none.
func Path(t testing.TB, name string) string {
	t.Helper()
	for _, dir := range []string{"", "/usr/sbin/", "/sbin/", filepath.Join(build.Default.GOPATH, "bin") + "/"} {
		if p, err := exec.LookPath(dir + name); err == nil {
			return p
		}
	}
	t.Fatalf("%s is missing: install it (scripts/install-deps.sh does)", name)
	return ""
}

// Run runs the host tool name with args and returns its output, stdout
// and stderr together. It fails the test, with the output, when the tool
// fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(Path(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

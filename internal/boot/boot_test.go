package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadBaked(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `{"cmdline":"ociboot.container=busybox","runtime":"/usr/bin/crun","modules":["virtio_net"]}`)
	b, err := readBaked(good)
	if err != nil || b.Runtime != "/usr/bin/crun" || b.Cmdline != "ociboot.container=busybox" || len(b.Modules) != 1 {
		t.Errorf("readBaked(good) = %+v, %v", b, err)
	}
	for _, tc := range []struct {
		path string
		want string
	}{
		{filepath.Join(dir, "missing.json"), "ociboot build"},
		{write("bad.json", `{"runtime":`), "bad.json"},
		{write("noruntime.json", `{"cmdline":"x"}`), "names no OCI runtime"},
	} {
		_, err := readBaked(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("readBaked(%s) error = %v, want it to mention %q", filepath.Base(tc.path), err, tc.want)
		}
	}
}

func TestStageError(t *testing.T) {
	if stage("network", nil) != nil {
		t.Error("stage with a nil error is not nil")
	}
	err := stage("network", os.ErrDeadlineExceeded)
	if !strings.HasPrefix(err.Error(), "network: ") {
		t.Errorf("stage error %q does not start with the stage name", err)
	}
}

package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/ociboot/ociboot/internal/atomicfile"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// WriteBundle writes spec as dir/config.json, creating dir if needed. The
// file is replaced atomically: a runtime never sees a partial config.
func WriteBundle(dir string, spec *specs.Spec) error {
	data, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return fmt.Errorf("encoding the runtime spec: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bundle directory: %w", err)
	}
	name := filepath.Join(dir, "config.json")
	if err := atomicfile.WriteFile(name, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// Runtime is an OCI runtime binary with crun's command line (runc's is the
// same for what ociboot uses).
type Runtime struct {
	// Path is the runtime binary, such as /usr/bin/crun.
	Path string
}

// Command returns, not started, `RUNTIME run --bundle bundleDir id`, which
// creates and runs the container and exits with the container's exit status.
// Its stdin, stdout and stderr, which the container inherits, are left to
// the caller.
func (r Runtime) Command(bundleDir, id string) *exec.Cmd {
	return exec.Command(r.Path, "run", "--bundle", bundleDir, id)
}

// Delete runs `RUNTIME delete -f id`, which kills the container's processes
// if any are left and removes the container. It succeeds when the container
// is gone, even if it went by itself meanwhile (`RUNTIME run` removes its
// container when it exits). It is cleanup: callers may log the error and go
// on.
func (r Runtime) Delete(ctx context.Context, id string) error {
	out, err := exec.CommandContext(ctx, r.Path, "delete", "-f", id).CombinedOutput()
	if err == nil {
		return nil
	}
	var exit *exec.ExitError
	if errors.As(exec.CommandContext(ctx, r.Path, "state", id).Run(), &exit) && ctx.Err() == nil {
		return nil // the runtime does not know the container: already gone
	}
	return fmt.Errorf("%s delete -f %s: %w: %s", r.Path, id, err, bytes.TrimSpace(out))
}

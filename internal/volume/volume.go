// Package volume keeps a boot's named volumes: directories that
// containers mount with -v NAME:/path, on the cache disk, on a named
// filesystem or in RAM, created when first used, and deleted at the end
// of the pipeline when their expiration says so (or at the next boot,
// when that end was never reached).
//
// Layout under a volumes directory:
//
//	NAME/data     what containers see
//	NAME/expire   present when the volume expires at the pipeline's end
//
// On a named filesystem, volumes are under its ociboot-volumes/.
package volume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/ociboot/ociboot/internal/bootcfg"
)

// Options are what Open needs besides the volumes.
type Options struct {
	// Endpoints are the S3 endpoints volumes are mirrored with.
	Endpoints []bootcfg.S3
	// Transport makes the S3 requests (nil: http.DefaultTransport).
	Transport http.RoundTripper
	// Log gets a line per pull and push.
	Log io.Writer
}

// onFilesystem is where volumes live on a named filesystem, apart from
// what else it holds.
const onFilesystem = "ociboot-volumes"

// Set is the volumes of a boot.
type Set struct {
	dir     string // where volumes live by default
	roots   map[string]string
	defs    map[string]bootcfg.Volume
	mirrors map[string][2]*Mirror // by volume: the pull side, the push side
	opts    Options

	mu   sync.Mutex
	made map[string]string // name → data directory, once made
}

// Open opens the volumes kept in dir (created when missing), with the
// definitions of the boot's volume= parameters; roots gives the mount
// point of each filesystem= a volume names. A volume a previous boot
// should have deleted (its pipeline never ended) is deleted first. Not
// built yet, so refused with an error naming the volume and option:
// mirroring to S3 and fscrypt.
func Open(dir string, defs []bootcfg.Volume, roots map[string]string, o Options) (*Set, error) {
	s := &Set{dir: dir, roots: roots, defs: map[string]bootcfg.Volume{}, mirrors: map[string][2]*Mirror{}, opts: o, made: map[string]string{}}
	if s.opts.Log == nil {
		s.opts.Log = io.Discard
	}
	for _, d := range defs {
		switch {
		case slices.Contains(d.PushOn, bootcfg.Changes):
			return nil, fmt.Errorf("volume %s: push_on=changes is not built yet", d.Name)
		case d.FscryptKey != nil || d.FscryptResetKey:
			return nil, fmt.Errorf("volume %s: fscrypt_key= is not built yet", d.Name)
		case d.EncryptKey != "":
			return nil, fmt.Errorf("volume %s: encrypt_key= is not built yet", d.Name)
		case d.Filesystem != "" && roots[d.Filesystem] == "":
			return nil, fmt.Errorf("volume %s: filesystem %s is not mounted", d.Name, d.Filesystem)
		}
		s.defs[d.Name] = d
		var sides [2]*Mirror
		for side, b := range []bootcfg.Bucket{d.PullFrom, d.PushTo} {
			if b.IsZero() {
				continue
			}
			e := slices.IndexFunc(o.Endpoints, func(e bootcfg.S3) bool { return e.Alias == b.Alias })
			if e < 0 {
				return nil, fmt.Errorf("volume %s: no endpoint called %s", d.Name, b.Alias)
			}
			m, err := NewMirror(o.Endpoints[e], b, o.Transport)
			if err != nil {
				return nil, fmt.Errorf("volume %s: %w", d.Name, err)
			}
			sides[side] = m
		}
		s.mirrors[d.Name] = sides
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("volumes: %w", err)
	}
	bases := []string{dir}
	for _, r := range roots {
		bases = append(bases, filepath.Join(r, onFilesystem))
	}
	for _, base := range bases {
		if err := removeExpired(base); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// base is the directory the volume called name lives in.
func (s *Set) base(name string) string {
	if d, ok := s.defs[name]; ok && d.Filesystem != "" {
		return filepath.Join(s.roots[d.Filesystem], onFilesystem, name)
	}
	return filepath.Join(s.dir, name)
}

// Dir returns the data directory of the volume called name, making the
// volume when it is new. A name no volume= defines is a plain volume,
// kept, as podman makes one.
func (s *Set) Dir(name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.made[name]; ok {
		return d, nil
	}
	base := s.base(name)
	data := filepath.Join(base, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return "", fmt.Errorf("volume %s: %w", name, err)
	}
	marker := filepath.Join(base, "expire")
	if s.defs[name].ExpireAtPipelineEnd {
		// Written before anything is put in the volume: a boot that
		// never reaches the end leaves it to the next to delete.
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			return "", fmt.Errorf("volume %s: %w", name, err)
		}
	} else if err := os.Remove(marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("volume %s: %w", name, err)
	}
	s.made[name] = data
	return data, nil
}

// Expire deletes the volumes that expire at the pipeline's end, and
// returns their names.
func (s *Set) Expire() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gone []string
	for _, name := range slices.Sorted(maps.Keys(s.defs)) {
		if !s.defs[name].ExpireAtPipelineEnd {
			continue
		}
		if err := os.RemoveAll(s.base(name)); err != nil {
			return gone, fmt.Errorf("volume %s: %w", name, err)
		}
		delete(s.made, name)
		gone = append(gone, name)
	}
	return gone, nil
}

// At pulls and pushes the volumes whose pull_on and push_on name point
// (pipeline_start, container_start, container_end, pipeline_end), in
// name order, pulls first; it goes on past a failure and returns them
// all.
func (s *Set) At(ctx context.Context, point string) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(s.defs)) {
		d := s.defs[name]
		opts := SyncOptions{Overwrite: d.Overwrite, Remove: d.Remove, Preserve: d.Preserve, Exclude: d.Exclude}
		for side, events := range [][]bootcfg.VolumeEvent{d.PullOn, d.PushOn} {
			if !slices.Contains(events, bootcfg.VolumeEvent(point)) {
				continue
			}
			dir, err := s.Dir(name)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			m, verb, where, toFrom := s.mirrors[name][side], "pull", d.PullFrom, "from"
			sync := m.Pull
			if side == 1 {
				sync, verb, where, toFrom = m.Push, "push", d.PushTo, "to"
			}
			start := time.Now()
			r, err := sync(ctx, dir, opts)
			if err != nil {
				errs = append(errs, fmt.Errorf("volume %s: %s %s: %w", name, verb, where, err))
				continue
			}
			fmt.Fprintf(s.opts.Log, "%sed %s %s %s at %s: %d files copied (%d bytes), %d the same, %d left alone, %d removed, in %.2fs\n",
				verb, name, toFrom, where, point, r.Copied, r.Bytes, r.Same, r.LeftAlone, r.Removed, time.Since(start).Seconds())
		}
	}
	return errors.Join(errs...)
}

// removeExpired deletes the volumes under base marked to expire.
func removeExpired(base string) error {
	marks, err := filepath.Glob(filepath.Join(base, "*", "expire"))
	if err != nil {
		return err
	}
	for _, m := range marks {
		if err := os.RemoveAll(filepath.Dir(m)); err != nil {
			return fmt.Errorf("volume %s, left to expire: %w", filepath.Base(filepath.Dir(m)), err)
		}
	}
	return nil
}

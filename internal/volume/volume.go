// Package volume keeps a boot's named volumes: directories that
// containers mount with -v NAME:/path, on the cache disk, on a named
// filesystem or in RAM, created when first used, and deleted at the end
// of the pipeline when their expiration says so (or at the next boot,
// when that end was never reached).
//
// Layout under a volumes directory:
//
//	NAME/data              what containers see
//	NAME/expire            present when the volume expires at the pipeline's end
//	NAME/dirty             the journal entry of a volume not pushed since written
//	NAME/state/sync-ID.json  what the syncs with a bucket prefix saw (syncState)
//
// With fscrypt_key=, data and state are encrypted (see makeDirs).
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
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/fetch"
)

// Options are what Open needs besides the volumes.
type Options struct {
	// Endpoints are the S3 endpoints volumes are mirrored with.
	Endpoints []bootcfg.S3
	// Transport makes the S3 requests (nil: http.DefaultTransport).
	Transport http.RoundTripper
	// Log gets a line per pull and push.
	Log io.Writer
	// InRAM says the volumes directory is in RAM, lost at power-off: a
	// push of a volume there that fails is tried again, waiting longer
	// each time, until PushTimeout is over. On a disk (the cache, a
	// named filesystem) the journal keeps what a push could not send for
	// the next boot instead.
	InRAM bool
	// PushTimeout bounds each pull, and each push, tries again included
	// (0: bootcfg.DefaultPushTimeout).
	PushTimeout time.Duration
	// Clock dates journal entries and times the tries again (nil: the
	// wall clock).
	Clock fetch.Clock
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

	syncing map[string]*sync.Mutex // by volume: held during a pull or push

	mu      sync.Mutex
	made    map[string]string       // name → data directory, once made
	dirty   map[string]*dirtyVolume // by the volume's directory
	watches map[string]*changeWatch // by volume, from pipeline_start to pipeline_end
}

// Open opens the volumes kept in dir (created when missing), with the
// definitions of the boot's volume= parameters; roots gives the mount
// point of each filesystem= a volume names. It reads the journal of the
// volumes earlier boots could not push (PushEarlier pushes them), and
// deletes the volumes an earlier boot should have deleted (its pipeline
// never ended) unless they are dirty.
func Open(dir string, defs []bootcfg.Volume, roots map[string]string, o Options) (*Set, error) {
	s := &Set{dir: dir, roots: roots, defs: map[string]bootcfg.Volume{}, mirrors: map[string][2]*Mirror{}, opts: o,
		syncing: map[string]*sync.Mutex{}, made: map[string]string{}, dirty: map[string]*dirtyVolume{}, watches: map[string]*changeWatch{}}
	if s.opts.Log == nil {
		s.opts.Log = io.Discard
	}
	if s.opts.PushTimeout <= 0 {
		s.opts.PushTimeout = bootcfg.DefaultPushTimeout
	}
	if s.opts.Clock == nil {
		s.opts.Clock = fetch.RealClock{}
	}
	for _, d := range defs {
		switch {
		case d.Filesystem != "" && roots[d.Filesystem] == "":
			return nil, fmt.Errorf("volume %s: filesystem %s is not mounted", d.Name, d.Filesystem)
		}
		s.defs[d.Name] = d
		s.syncing[d.Name] = &sync.Mutex{}
		var sides [2]*Mirror
		for side, b := range []bootcfg.Bucket{d.PullFrom, d.PushTo} {
			if b.IsZero() {
				continue
			}
			m, err := s.mirror(b)
			if err == nil && d.EncryptKey != "" {
				err = m.Encrypt([]byte(d.EncryptKey))
			}
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
		dirty, err := readJournal(base)
		if err != nil {
			return nil, err
		}
		for _, d := range dirty {
			s.dirty[d.base] = d
		}
		if err := removeExpired(base); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// mirror connects to the bucket b names, through the endpoint its alias
// names.
func (s *Set) mirror(b bootcfg.Bucket) (*Mirror, error) {
	e := slices.IndexFunc(s.opts.Endpoints, func(e bootcfg.S3) bool { return e.Alias == b.Alias })
	if e < 0 {
		return nil, fmt.Errorf("no endpoint called %s", b.Alias)
	}
	m, err := NewMirror(s.opts.Endpoints[e], b, s.opts.Transport)
	if err == nil {
		m.Retry.Clock = s.opts.Clock
	}
	return m, err
}

// base is the directory the volume called name lives in.
func (s *Set) base(name string) string {
	if d, ok := s.defs[name]; ok && d.Filesystem != "" {
		return filepath.Join(s.roots[d.Filesystem], onFilesystem, name)
	}
	return filepath.Join(s.dir, name)
}

// Dir returns the data directory of the volume called name for a
// container, making the volume when it is new. A name no volume= defines
// is a plain volume, kept, as podman makes one. A volume with a push
// destination is marked dirty in the journal first. A volume holding
// what an earlier boot could not push is refused: it is kept as it is
// until a boot pushes it.
func (s *Set) Dir(name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dir, err := s.open(name)
	if err != nil {
		return "", err
	}
	base, def := s.base(name), s.defs[name]
	if def.PushTo.IsZero() || s.dirty[base] != nil {
		return dir, nil
	}
	d := &dirtyVolume{base: base, entry: entry{Volume: name, PushTo: def.PushTo, Options: syncOptions(def), Since: s.opts.Clock.Now(),
		Encrypted: def.EncryptKey != ""}}
	if err := d.write(); err != nil {
		return "", err
	}
	s.dirty[base] = d
	return dir, nil
}

// open returns the data directory of the volume called name, making it
// when new; s.mu is held.
func (s *Set) open(name string) (string, error) {
	base := s.base(name)
	if d := s.dirty[base]; d != nil && d.earlier {
		return "", fmt.Errorf("volume %s holds %s: it is kept as it is until a boot pushes it", name, d.pending())
	}
	if d, ok := s.made[name]; ok {
		return d, nil
	}
	data := filepath.Join(base, "data")
	if err := s.makeDirs(name, base); err != nil {
		return "", err
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

// syncOptions are the mirror options of a volume's definition.
func syncOptions(d bootcfg.Volume) SyncOptions {
	return SyncOptions{Overwrite: d.Overwrite, Remove: d.Remove, Preserve: d.Preserve, Exclude: d.Exclude}
}

// Expire deletes the volumes that expire at the pipeline's end, and
// returns their names; a dirty volume is kept, and named in kept, for
// the boot that pushes it to delete.
func (s *Set) Expire() (gone, kept []string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(s.defs)) {
		if !s.defs[name].ExpireAtPipelineEnd {
			continue
		}
		if s.dirty[s.base(name)] != nil {
			kept = append(kept, name)
			continue
		}
		if err := os.RemoveAll(s.base(name)); err != nil {
			return gone, kept, fmt.Errorf("volume %s: %w", name, err)
		}
		delete(s.made, name)
		gone = append(gone, name)
	}
	return gone, kept, nil
}

// inRAM says whether the volume in base is lost at power-off.
func (s *Set) inRAM(base string) bool {
	return s.opts.InRAM && filepath.Dir(base) == s.dir
}

// Unpushed describes the dirty volumes, one line each: what a push could
// not send, or has not sent yet, and what becomes of it.
func (s *Set) Unpushed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, base := range slices.Sorted(maps.Keys(s.dirty)) {
		fate := "kept on disk for the next boot to push"
		if s.inRAM(base) {
			fate = "LOST at power-off, as it is in RAM"
		}
		d := s.dirty[base]
		out = append(out, fmt.Sprintf("%s (%s): %s: %s", d.entry.Volume, base, d.pending(), fate))
	}
	return out
}

// PushEarlier pushes the volumes earlier boots left dirty, with the
// destination and options their journal entries give and the keys of
// this boot's endpoint of the same alias. A volume pushed is no longer
// dirty, and deleted if it was to expire. What cannot be pushed stays as
// it is, and the returned lines say which and why.
func (s *Set) PushEarlier(ctx context.Context) (failed []string) {
	s.mu.Lock()
	var earlier []*dirtyVolume
	for _, base := range slices.Sorted(maps.Keys(s.dirty)) {
		if d := s.dirty[base]; d.earlier {
			earlier = append(earlier, d)
		}
	}
	s.mu.Unlock()
	for _, d := range earlier {
		if err := s.pushEarlier(ctx, d); err != nil {
			failed = append(failed, fmt.Sprintf("volume %s (%s): %v; it is kept as it is, for a later boot to push", d.entry.Volume, d.base, err))
		}
	}
	return failed
}

// pushEarlier pushes one volume an earlier boot left dirty.
func (s *Set) pushEarlier(ctx context.Context, d *dirtyVolume) error {
	if d.unreadable != nil {
		return d.unreadable
	}
	if err := s.unlock(d); err != nil {
		return err
	}
	m, err := s.mirror(d.entry.PushTo)
	if err != nil {
		return fmt.Errorf("%s, and this boot has %w", d.pending(), err)
	}
	if d.entry.Encrypted {
		key := s.defs[d.entry.Volume].EncryptKey
		if key == "" {
			return fmt.Errorf("%s, encrypted with its encrypt_key=, which this boot does not give", d.pending())
		}
		if err := m.Encrypt([]byte(key)); err != nil {
			return err
		}
	}
	start := time.Now()
	e := d.entry
	e.Options.State = stateFile(d.base, m)
	r, err := s.push(ctx, m, filepath.Join(d.base, "data"), e, false)
	if err != nil {
		return fmt.Errorf("written from %s on, it is still not pushed to %s: %w", d.since(), d.where(), d.failed(err))
	}
	s.report("push", d.entry.Volume, "to", d.where(), "at boot, what an earlier boot could not push", r, start)
	if err := d.clear(); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.dirty, d.base)
	s.mu.Unlock()
	if _, err := os.Stat(filepath.Join(d.base, "expire")); err == nil {
		if err := os.RemoveAll(d.base); err != nil {
			return fmt.Errorf("pushed, but deleting it (expiration=pipeline_end): %w", err)
		}
		fmt.Fprintf(s.opts.Log, "deleted %s (expiration=pipeline_end)\n", d.entry.Volume)
	}
	return nil
}

// push pushes dir to m as e says, within the push timeout; retry says
// to try again while it fails.
func (s *Set) push(ctx context.Context, m *Mirror, dir string, e entry, retry bool) (Report, error) {
	ctx, cancel := context.WithDeadline(ctx, s.opts.Clock.Now().Add(s.opts.PushTimeout))
	defer cancel()
	b := fetch.Retry{Attempts: math.MaxInt32, Clock: s.opts.Clock}.Start(ctx)
	for {
		r, err := m.Push(ctx, dir, e.Options)
		if err == nil || !retry || !b.Again(0) {
			return r, err
		}
		fmt.Fprintf(s.opts.Log, "pushing %s to %s failed (try %d): %v; trying again in %s\n", e.Volume, e.PushTo, b.Attempt(), err, b.Delay().Round(time.Millisecond))
		if b.Wait() != nil {
			return r, err
		}
	}
}

// report logs what a pull or push did, and when ("at pipeline_end").
func (s *Set) report(verb, name, toFrom, where, when string, r Report, start time.Time) {
	fmt.Fprintf(s.opts.Log, "%sed %s %s %s %s: %d files copied (%d bytes), %d the same, %d left alone, %d removed, in %.2fs\n",
		verb, name, toFrom, where, when, r.Copied, r.Bytes, r.Same, r.LeftAlone, r.Removed, time.Since(start).Seconds())
}

// At pulls and pushes the volumes whose pull_on and push_on name point
// (pipeline_start, container_start, container_end, pipeline_end), in
// name order, pulls first; it goes on past a failure and returns them
// all. The volumes pushed on changes are watched from pipeline_start
// (once pulled) to pipeline_end. At pipeline_end, once every container
// has stopped, every dirty volume and every volume pushed on changes is
// pushed, whether or not its push_on names pipeline_end, and is no
// longer dirty once that push is complete.
func (s *Set) At(ctx context.Context, point string) error {
	var errs []error
	end := point == string(bootcfg.PipelineEnd)
	for _, name := range slices.Sorted(maps.Keys(s.defs)) {
		d := s.defs[name]
		onChanges := slices.Contains(d.PushOn, bootcfg.Changes)
		var pullErr error
		if slices.Contains(d.PullOn, bootcfg.VolumeEvent(point)) {
			pullErr = s.pull(ctx, name, point)
			errs = append(errs, pullErr)
		}
		// A failed pull at pipeline_start skips the pipeline: no watch.
		if onChanges && point == string(bootcfg.PipelineStart) && pullErr == nil {
			errs = append(errs, s.startWatch(ctx, name))
		}
		if end {
			errs = append(errs, s.stopWatch(name))
		}
		s.mu.Lock()
		dirty := s.dirty[s.base(name)]
		s.mu.Unlock()
		if slices.Contains(d.PushOn, bootcfg.VolumeEvent(point)) || end && (onChanges || dirty != nil && !dirty.earlier) {
			errs = append(errs, s.pushAt(ctx, name, "at "+point, end, nil))
		}
	}
	return errors.Join(errs...)
}

// pull pulls the volume called name at point.
func (s *Set) pull(ctx context.Context, name, point string) error {
	s.mu.Lock()
	dir, err := s.open(name)
	base, lock := s.base(name), s.syncing[name]
	s.mu.Unlock()
	if err != nil {
		return err
	}
	lock.Lock()
	defer lock.Unlock()
	d, m := s.defs[name], s.mirrors[name][0]
	o := syncOptions(d)
	o.State = stateFile(base, m)
	ctx, cancel := context.WithDeadline(ctx, s.opts.Clock.Now().Add(s.opts.PushTimeout))
	defer cancel()
	start := time.Now()
	r, err := m.Pull(ctx, dir, o)
	if err != nil {
		return fmt.Errorf("volume %s: pull from %s: %w", name, d.PullFrom, err)
	}
	s.report("pull", name, "from", d.PullFrom.String(), "at "+point, r, start)
	return nil
}

// stateFile is where the sync state of the volume in base with m is kept.
func stateFile(base string, m *Mirror) string {
	return filepath.Join(base, "state", "sync-"+m.ID+".json")
}

// pushAt pushes the volume called name (when says when, for the log),
// one push of it at a time; final says no container runs any more, so
// that a complete push leaves the volume clean. A dirty volume's failure
// is recorded in its journal entry. skip, when set, leaves out the files
// being written.
func (s *Set) pushAt(ctx context.Context, name, when string, final bool, skip func(string) bool) error {
	s.mu.Lock()
	dir, err := s.open(name)
	base := s.base(name)
	d := s.dirty[base]
	lock := s.syncing[name]
	s.mu.Unlock()
	if err != nil {
		return err
	}
	lock.Lock()
	defer lock.Unlock()
	def := s.defs[name]
	m := s.mirrors[name][1]
	e := entry{Volume: name, PushTo: def.PushTo, Options: syncOptions(def)}
	e.Options.skip, e.Options.State = skip, stateFile(base, m)
	start := time.Now()
	r, err := s.push(ctx, m, dir, e, s.inRAM(base) && final)
	if err != nil {
		if d != nil {
			err = d.failed(err)
		}
		return fmt.Errorf("volume %s: push to %s: %w", name, def.PushTo, err)
	}
	s.report("push", name, "to", def.PushTo.String(), when, r, start)
	if final && d != nil {
		if err := d.clear(); err != nil {
			return err
		}
		s.mu.Lock()
		delete(s.dirty, base)
		s.mu.Unlock()
	}
	return nil
}

// removeExpired deletes the volumes under base marked to expire, but
// not the dirty ones.
func removeExpired(base string) error {
	marks, err := filepath.Glob(filepath.Join(base, "*", "expire"))
	if err != nil {
		return err
	}
	for _, m := range marks {
		vol := filepath.Dir(m)
		if _, err := os.Stat(filepath.Join(vol, journalFile)); err == nil {
			continue
		}
		if err := os.RemoveAll(vol); err != nil {
			return fmt.Errorf("volume %s, left to expire: %w", filepath.Base(vol), err)
		}
	}
	return nil
}

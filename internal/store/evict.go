package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// entry is a blob or an unpacked layer, as eviction counts them.
type entry struct {
	layer bool
	d     v1.Hash
}

// Evict frees room, down to limit bytes of blobs and layers on the disk:
// first what no ref needs (left by a power cut or by an image pulled
// again), then the images the least recently used first, each with what
// no other ref needs. The images set or used since Open (this boot's)
// are kept, with all they need, whatever the limit. It returns the names
// of the images removed and the bytes the store takes after.
func (s *Store) Evict(limit int64) (evicted []string, used int64, err error) {
	sizes, err := s.sizes()
	if err != nil {
		return nil, 0, err
	}
	refs, err := s.Refs()
	if err != nil {
		return nil, 0, err
	}
	needs := make([][]entry, len(refs))
	count := map[entry]int{}
	for i, r := range refs {
		needs[i] = s.needs(r)
		for _, e := range needs[i] {
			count[e]++
		}
	}
	for e, size := range sizes {
		if count[e] == 0 {
			if err := s.remove(e); err != nil {
				return nil, 0, err
			}
			continue
		}
		used += size
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	order := make([]int, 0, len(refs))
	for i, r := range refs {
		if !s.inUse[r.Name] {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return refs[order[a]].lastUsed().Before(refs[order[b]].lastUsed()) })
	for _, i := range order {
		if used <= limit {
			break
		}
		if err := os.Remove(s.refPath(refs[i].Name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return evicted, used, fmt.Errorf("store: evicting %s: %w", refs[i].Name, err)
		}
		evicted = append(evicted, refs[i].Name)
		for _, e := range needs[i] {
			if count[e]--; count[e] > 0 {
				continue
			}
			if err := s.remove(e); err != nil {
				return evicted, used, err
			}
			used -= sizes[e]
		}
	}
	return evicted, used, nil
}

// remove deletes a blob or a layer.
func (s *Store) remove(e entry) error {
	if e.layer {
		return s.DeleteLayer(e.d)
	}
	return s.Delete(e.d)
}

// Refs reads every ref; unreadable ones are left out (and Evict removes
// what they alone needed).
func (s *Store) Refs() ([]Ref, error) {
	files, err := os.ReadDir(filepath.Join(s.dir, "refs"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store: %w", err)
	}
	var refs []Ref
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(s.dir, "refs", f.Name()))
		if err != nil {
			continue
		}
		var r Ref
		if json.Unmarshal(data, &r) != nil || filepath.Base(s.refPath(r.Name)) != f.Name() {
			continue // damaged, or filed under another name's hash
		}
		if _, err := check(r.Digest); err == nil {
			refs = append(refs, r)
		}
	}
	return refs, nil
}

// needs lists what the image of ref r needs: its signature, its
// manifest, its config, its layers' blobs and their unpacked trees. An
// image the store cannot read needs its signature and manifest only.
func (s *Store) needs(r Ref) []entry {
	out := []entry{{d: r.Digest}}
	if r.Signature != (v1.Hash{}) {
		out = append(out, entry{d: r.Signature})
	}
	raw, err := s.ReadBlob(r.Digest)
	if err != nil {
		return out
	}
	man, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return out
	}
	out = append(out, entry{d: man.Config.Digest})
	for _, l := range man.Layers {
		out = append(out, entry{d: l.Digest})
	}
	if raw, err = s.ReadBlob(man.Config.Digest); err != nil {
		return out
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return out
	}
	for _, d := range cf.RootFS.DiffIDs {
		out = append(out, entry{layer: true, d: d})
	}
	return out
}

// sizes is what every blob and layer takes on the disk.
func (s *Store) sizes() (map[entry]int64, error) {
	sizes := map[entry]int64{}
	for _, kind := range []struct {
		dir   string
		layer bool
	}{{"blobs", false}, {"layers", true}} {
		algs, err := os.ReadDir(filepath.Join(s.dir, kind.dir))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("store: %w", err)
		}
		for _, alg := range algs {
			names, err := os.ReadDir(filepath.Join(s.dir, kind.dir, alg.Name()))
			if err != nil {
				return nil, fmt.Errorf("store: %w", err)
			}
			for _, n := range names {
				d := v1.Hash{Algorithm: alg.Name(), Hex: n.Name()}
				if _, err := check(d); err != nil {
					continue
				}
				size, err := diskUsage(filepath.Join(s.dir, kind.dir, alg.Name(), n.Name()))
				if err != nil {
					return nil, err
				}
				sizes[entry{layer: kind.layer, d: d}] = size
			}
		}
	}
	return sizes, nil
}

// Usage is what the store's blobs and layers take on the disk.
func (s *Store) Usage() (int64, error) {
	sizes, err := s.sizes()
	var total int64
	for _, n := range sizes {
		total += n
	}
	return total, err
}

// diskUsage is what the file or tree at path takes on its disk, as du
// counts it (allocated blocks; hard links once).
func diskUsage(path string) (int64, error) {
	var total int64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		if st.Nlink > 1 && st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += st.Blocks * 512
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	return total, nil
}

// Forget removes the ref called name, then the blobs and layers no other
// ref needs.
func (s *Store) Forget(name string) error {
	if err := os.Remove(s.refPath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: forgetting %s: %w", name, err)
	}
	s.mu.Lock()
	delete(s.inUse, name)
	s.mu.Unlock()
	_, _, err := s.Evict(math.MaxInt64)
	return err
}

package volume

import (
	"encoding/json"
	"os"
	"sync"

	"github.com/ociboot/ociboot/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// syncState is what the last syncs of a directory with a bucket prefix
// saw of each file they left in sync: the file's identity (size,
// modification and change times, inode), its SHA-256, and the object's
// ETag. A file whose identity and object's ETag are unchanged since is
// in sync without being read or asked about, so a sync that changes
// nothing costs one walk and one listing. The state only saves work: a
// missing or damaged one is empty, and each sync writes it back whole.
type syncState struct {
	path string // "" keeps it in memory only

	mu    sync.Mutex
	files map[string]syncedFile
}

// syncedFile is one file's entry.
type syncedFile struct {
	Size   int64  `json:"size"`
	Mtime  int64  `json:"mtime"`
	Ctime  int64  `json:"ctime"`
	Ino    uint64 `json:"ino"`
	SHA256 string `json:"sha256"`
	ETag   string `json:"etag"`
}

// loadState reads the state at path ("" for none).
func loadState(path string) *syncState {
	s := &syncState{path: path, files: map[string]syncedFile{}}
	if path == "" {
		return s
	}
	if data, err := os.ReadFile(path); err == nil {
		if json.Unmarshal(data, &s.files) != nil || s.files == nil {
			s.files = map[string]syncedFile{}
		}
	}
	return s
}

// identity is an entry for a file as st shows it.
func identity(st unix.Stat_t) syncedFile {
	return syncedFile{Size: st.Size, Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(), Ino: st.Ino}
}

// sha returns the SHA-256 recorded for rel, if the file is as st shows
// it since.
func (s *syncState) sha(rel string, st unix.Stat_t) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.files[rel]
	id := identity(st)
	id.SHA256, id.ETag = e.SHA256, e.ETag
	return e.SHA256, ok && e == id
}

// inSync tells whether rel, as st shows it, and the object of ETag etag
// are as the last sync left them.
func (s *syncState) inSync(rel string, st unix.Stat_t, etag string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.files[rel]
	id := identity(st)
	id.SHA256, id.ETag = e.SHA256, etag
	return ok && e == id
}

// record notes that rel, as st shows it, holding content of SHA-256 sha,
// is in sync with the object of ETag etag.
func (s *syncState) record(rel string, st unix.Stat_t, sha, etag string) {
	e := identity(st)
	e.SHA256, e.ETag = sha, etag
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[rel] = e
}

// save writes the state back, keeping the entries of the files in keep
// alone.
func (s *syncState) save(keep func(rel string) bool) error {
	if s.path == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for rel := range s.files {
		if !keep(rel) {
			delete(s.files, rel)
		}
	}
	data, err := json.Marshal(s.files)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(s.path, data, 0o600)
}

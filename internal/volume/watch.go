package volume

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watchMask is what a watched directory reports: what changes the files
// it holds, and the closes that end a write.
const watchMask = unix.IN_CREATE | unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_ATTRIB |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE | unix.IN_EXCL_UNLINK

// watcher follows a directory tree through inotify: it signals each
// change on changed, and knows which files are being written (created or
// modified, and not yet closed), which a push leaves for later. A file
// whose first events came before its directory was watched is unsure:
// it is being written while a process holds it open for writing.
type watcher struct {
	root    string
	fd      int      // the inotify descriptor, non-blocking,
	f       *os.File // and as a file of Go's poller (its Fd would block it)
	changed chan struct{}
	done    chan struct{} // closed when the reader has stopped

	mu      sync.Mutex
	dirs    map[int32]string // watch descriptor → slash path under root ("" for root)
	writing map[string]bool  // slash paths of files being written
	unsure  map[string]bool  // slash paths of files whose first events were missed
	err     error            // why the reader stopped early
}

// watch starts following the tree under root.
func watch(root string) (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watching %s: inotify: %w", root, err)
	}
	w := &watcher{root: root, fd: fd, f: os.NewFile(uintptr(fd), "inotify"), changed: make(chan struct{}, 1),
		done: make(chan struct{}), dirs: map[int32]string{}, writing: map[string]bool{}, unsure: map[string]bool{}}
	if err := w.addTree("", false); err != nil {
		w.f.Close()
		return nil, err
	}
	go w.read()
	return w, nil
}

// addTree watches the directory rel and those under it. Files found in
// a directory that appeared while the tree was watched may be being
// written already, their first events missed: unsure marks them so.
func (w *watcher) addTree(rel string, unsure bool) error {
	return filepath.WalkDir(filepath.Join(w.root, filepath.FromSlash(rel)), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone since: its removal is an event too
			}
			return err
		}
		r, err := filepath.Rel(w.root, p)
		if err != nil {
			return err
		}
		r = filepath.ToSlash(r)
		if r == "." {
			r = ""
		}
		if !d.IsDir() {
			if unsure && d.Type().IsRegular() {
				w.mu.Lock()
				w.unsure[r] = true
				w.mu.Unlock()
			}
			return nil
		}
		wd, err := unix.InotifyAddWatch(w.fd, p, watchMask)
		if err != nil {
			return fmt.Errorf("watching %s: %w", p, err)
		}
		w.mu.Lock()
		w.dirs[int32(wd)] = r
		w.mu.Unlock()
		return nil
	})
}

// read turns the descriptor's events into signals on changed until the
// descriptor is closed.
func (w *watcher) read() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
			}
			return
		}
		if err := w.handle(buf[:n]); err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
		}
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
}

// handle applies a buffer of inotify events.
func (w *watcher) handle(buf []byte) error {
	var errs []error
	for len(buf) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(buf) {
			return errors.New("watching: a cut inotify event")
		}
		name := string(buf[unix.SizeofInotifyEvent:end])
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		errs = append(errs, w.apply(ev.Wd, ev.Mask, name))
		buf = buf[end:]
	}
	return errors.Join(errs...)
}

// apply applies one event.
func (w *watcher) apply(wd int32, mask uint32, name string) error {
	w.mu.Lock()
	dir, ok := w.dirs[wd]
	if mask&unix.IN_IGNORED != 0 {
		delete(w.dirs, wd)
	}
	w.mu.Unlock()
	if !ok || name == "" {
		return nil // the queue overflowed, or an event of the directory itself
	}
	rel := path.Join(dir, name)
	if mask&unix.IN_ISDIR != 0 {
		if mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0 {
			return w.addTree(rel, true)
		}
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case mask&(unix.IN_CREATE|unix.IN_MODIFY) != 0:
		w.writing[rel] = true
		delete(w.unsure, rel)
	case mask&(unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO|unix.IN_MOVED_FROM|unix.IN_DELETE) != 0:
		delete(w.writing, rel)
		delete(w.unsure, rel)
	}
	return nil
}

// writers returns a function telling whether the file at slash path rel
// is being written now, for one push: the unsure files are checked
// against the files processes hold open for writing, read from /proc
// once, when the first unsure file is asked about.
func (w *watcher) writers() func(rel string) bool {
	var open map[fileID]bool
	return func(rel string) bool {
		w.mu.Lock()
		writing, unsure := w.writing[rel], w.unsure[rel]
		w.mu.Unlock()
		if writing || !unsure {
			return writing
		}
		if open == nil {
			open = openForWriting("/proc")
		}
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(w.root, filepath.FromSlash(rel)), &st); err != nil {
			return false // gone: nothing to push
		}
		if open[fileID{st.Dev, st.Ino}] {
			return true
		}
		w.mu.Lock()
		delete(w.unsure, rel)
		w.mu.Unlock()
		return false
	}
}

// fileID is a file's device and inode.
type fileID struct{ dev, ino uint64 }

// openForWriting returns the files the processes under proc hold open
// for writing (in any mount namespace: they are compared by device and
// inode). Processes and descriptors that go away while read are passed
// over.
func openForWriting(proc string) map[fileID]bool {
	out := map[fileID]bool{}
	fds, _ := filepath.Glob(filepath.Join(proc, "[0-9]*", "fd", "[0-9]*"))
	for _, fd := range fds {
		info, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(fd)), "fdinfo", filepath.Base(fd)))
		if err != nil {
			continue
		}
		flags, ok := fdFlags(string(info))
		if !ok || flags&unix.O_ACCMODE == unix.O_RDONLY {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			out[fileID{st.Dev, st.Ino}] = true
		}
	}
	return out
}

// fdFlags reads the octal "flags:" line of a /proc fdinfo file.
func fdFlags(info string) (int, bool) {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			return int(n), err == nil
		}
	}
	return 0, false
}

// stop ends the watch, and returns why it ended early, if it did.
func (w *watcher) stop() error {
	w.f.Close()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

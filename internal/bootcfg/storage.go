package bootcfg

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ociboot/ociboot/internal/storage"
	"github.com/ociboot/ociboot/internal/switchroot"
)

// Storage is what a boot keeps on local storage, as boot2container's
// parameters say.
type Storage struct {
	// CacheDevice is cache_device=: auto, reset, /dev/NAME, or the name
	// of one of Filesystems; "" (none) for no cache.
	CacheDevice string
	// CacheWait bounds the wait for disks (ociboot.cache_wait=); 0 means
	// storage.DefaultWait.
	CacheWait time.Duration
	// Swap is the size of a swap file on the cache (swap=); 0 for none.
	Swap int64
	// Filesystems are the named mounts (filesystem=), in order.
	Filesystems []storage.Filesystem
}

// Filesystem returns the named mount called name.
func (s Storage) Filesystem(name string) (storage.Filesystem, bool) {
	for _, f := range s.Filesystems {
		if f.Name == name {
			return f, true
		}
	}
	return storage.Filesystem{}, false
}

func applyCacheDevice(p *Plan, v Param) error {
	const want = "none, auto, reset, /dev/NAME or the name of a filesystem= mount"
	s, err := value(v)
	if err != nil || s == "" {
		return fmt.Errorf("%w: %s", errNoValue, want)
	}
	if name, ok := strings.CutPrefix(s, "/dev/"); ok && (name == "" || strings.Contains(name, "/")) {
		return fmt.Errorf("got %q, expected %s (a device directly under /dev)", s, want)
	}
	if s == "none" {
		s = ""
	}
	p.Storage.CacheDevice = s
	return nil
}

func applyCacheWait(p *Plan, v Param) error {
	d, err := durationValue(v, 0, "a duration such as 10s or 1m, or a number of seconds")
	p.Storage.CacheWait = d
	return err
}

func applySwap(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: a size such as 4G or 512M", err)
	}
	n, err := switchroot.ParseBytes(s)
	if err != nil {
		return err
	}
	p.Storage.Swap = n
	return nil
}

func applyFilesystem(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: NAME,type=TYPE,src=SOURCE[,opts=OPTION|OPTION…]", err)
	}
	f, err := storage.ParseFilesystem(s)
	if err != nil {
		return err
	}
	if _, dup := p.Storage.Filesystem(f.Name); dup {
		return fmt.Errorf("a filesystem called %s is already defined", f.Name)
	}
	p.Storage.Filesystems = append(p.Storage.Filesystems, f)
	return nil
}

// checkStorage checks what the storage parameters say together: a cache
// device that is a name must be a filesystem's, and swap needs a cache.
func (p *Plan) checkStorage() error {
	st := p.Storage
	switch d := st.CacheDevice; {
	case d == "", d == "auto", d == "reset", strings.HasPrefix(d, "/dev/"):
	default:
		if _, ok := st.Filesystem(d); !ok {
			return fmt.Errorf("parameter cache_device=%s: no filesystem= is called %s: expected none, auto, reset, /dev/NAME or the name of a filesystem= mount", d, d)
		}
	}
	if st.Swap > 0 && st.CacheDevice == "" {
		return errors.New("parameter swap: the swap file lives on the cache: add cache_device=auto (or another cache device)")
	}
	return nil
}

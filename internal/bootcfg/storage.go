package bootcfg

import (
	"errors"
	"fmt"
	"strconv"
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
	// Quota is the most the image store may keep on the cache
	// (ociboot.cache_quota=): Quota.Bytes, or Quota.Percent of the
	// cache's size; the zero value means DefaultQuotaPercent.
	Quota Quota
	// Filesystems are the named mounts (filesystem=), in order.
	Filesystems []storage.Filesystem
}

// Quota is a size in bytes, or a share of a filesystem's size.
type Quota struct {
	Bytes   int64
	Percent int // 1 to 100, when Bytes is 0
}

// DefaultQuotaPercent is the share of the cache the image store may
// take when ociboot.cache_quota is not given.
const DefaultQuotaPercent = 80

// Of is the quota on a filesystem of size bytes.
func (q Quota) Of(size int64) int64 {
	switch {
	case q.Bytes > 0:
		return q.Bytes
	case q.Percent > 0:
		return size / 100 * int64(q.Percent)
	}
	return size / 100 * DefaultQuotaPercent
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

func applyCacheQuota(p *Plan, v Param) error {
	const want = "a size such as 20G or 512M (k, m, g, t suffixes, powers of 1024), or a share of the cache from 1% to 100%"
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: %s", err, want)
	}
	if n, ok := strings.CutSuffix(s, "%"); ok {
		pct, err := strconv.Atoi(n)
		if err != nil || pct < 1 || pct > 100 || n[0] == '+' {
			return fmt.Errorf("got %q, expected %s", s, want)
		}
		p.Storage.Quota = Quota{Percent: pct}
		return nil
	}
	b, err := switchroot.ParseBytes(s)
	if err != nil || b == 0 {
		return fmt.Errorf("got %q, expected %s", s, want)
	}
	p.Storage.Quota = Quota{Bytes: b}
	return nil
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
	f, err := parseFilesystem(s)
	if err != nil {
		return err
	}
	if _, dup := p.Storage.Filesystem(f.Name); dup {
		return fmt.Errorf("a filesystem called %s is already defined", f.Name)
	}
	p.Storage.Filesystems = append(p.Storage.Filesystems, f)
	return nil
}

// parseFilesystem reads NAME,type=T,src=S[,opts=a|b], where the options
// are separated by '|' (commas separate the fields).
func parseFilesystem(s string) (storage.Filesystem, error) {
	const want = "expected NAME,type=TYPE,src=SOURCE[,opts=OPTION|OPTION…], such as cache,type=ext4,src=/dev/sda2,opts=noatime"
	fields := strings.Split(s, ",")
	f := storage.Filesystem{Name: fields[0]}
	if !isName(f.Name) {
		return storage.Filesystem{}, fmt.Errorf("name %q: %s (a name is letters, digits, '_' and '-')", f.Name, want)
	}
	for _, field := range fields[1:] {
		k, v, ok := strings.Cut(field, "=")
		switch {
		case !ok || v == "":
			return storage.Filesystem{}, fmt.Errorf("%q: %s", field, want)
		case k == "type":
			f.Type = v
		case k == "src":
			f.Source = v
		case k == "opts":
			f.Options = strings.ReplaceAll(v, "|", ",")
		default:
			return storage.Filesystem{}, fmt.Errorf("unknown field %q: %s", k, want)
		}
	}
	if f.Type == "" || f.Source == "" {
		return storage.Filesystem{}, fmt.Errorf("%s has no type= or no src=: %s", f.Name, want)
	}
	return f, nil
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

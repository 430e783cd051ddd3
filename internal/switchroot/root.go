// Package switchroot boots an image as the operating system (switch-root
// mode, the dracut container-root model): Prepare unpacks an OCI image or
// a rootfs tarball, streamed, into a fresh tmpfs sized for it, refusing
// before anything is written an image that cannot fit; the hand-over
// steps make the running kernel's modules and firmware available there,
// leave the network configuration for the OS to take over, and load the
// image's SELinux policy; Exec moves the API filesystems into the new
// root, frees the initramfs, switches root and executes the image's init
// as PID 1. Nothing of ociboot keeps running.
package switchroot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ociboot/ociboot/internal/image"
	"golang.org/x/sys/unix"
)

// Unpacked sizes are estimated from compressed ones with these ratios
// (root filesystems usually shrink 2.5 to 4 times); the compressed size
// itself is the floor: a tree is not smaller than its compressed tar.
const (
	gzipRatio = 3
	xzRatio   = 4
)

// Head-room of the default tmpfs size and memory kept for the OS.
const (
	// defaultShare is the share of RAM the tmpfs may fill by default,
	// as for any tmpfs, unless the image needs more.
	defaultShare = 50
	// headroomShare is added to an image's estimate when that is more.
	headroomShare = 25
	// reserve is RAM left for the kernel and the OS's first processes:
	// an image needing more than what is available minus this is
	// refused.
	reserve = 64 << 20
)

// Options say what to boot and how.
type Options struct {
	// Source is an image reference, or an http://, https:// or file://
	// URL of a rootfs tarball (with an optional #sha256= pin).
	Source string
	// Size is the tmpfs size; the zero value means the default: half of
	// RAM, or the image's estimated size plus a quarter when that is
	// more.
	Size Size
	// SizeParam names the parameter Size came from, for messages (such
	// as "ociboot.root_size=1M").
	SizeParam string
	// Puller pulls an image (nil: one with the default settings);
	// Tarball tunes the download of a tarball.
	Puller  *image.Puller
	Tarball image.TarballOptions
	// Log receives the progress lines.
	Log io.Writer
	// MemInfo is /proc/meminfo, or a test's copy.
	MemInfo string
}

// Root is the unpacked tree.
type Root struct {
	// Dir is where the tmpfs is mounted.
	Dir string
	// Size is the tmpfs size in bytes; Used what the tree takes.
	Size, Used int64
	// Entries counts the tree's files, directories and links.
	Entries int64
	// MemoryRise is how much the memory in use (MemTotal - MemAvailable)
	// rose, at its peak during the unpack, above what it was before.
	MemoryRise int64
	// Took is the time from the start of the download to the tree.
	Took time.Duration
}

// IsURL reports whether source names a tarball rather than an image
// ("docker://", which image references may start with as containers'
// do, names an image).
func IsURL(source string) bool {
	return strings.Contains(source, "://") && !strings.HasPrefix(source, "docker://")
}

// CheckSource checks the form of an ociboot.root= value.
func CheckSource(source string) error {
	if IsURL(source) {
		if err := image.CheckTarballURL(source); err != nil {
			return fmt.Errorf("rootfs tarball URL: %w", err)
		}
		return nil
	}
	_, err := image.ParseReference(source)
	return err
}

// Prepare mounts a tmpfs on dir (which must exist) and unpacks the image
// or tarball o names into it. Before anything is written, it refuses an
// image whose compressed size alone exceeds the tmpfs size or the RAM
// available; it warns when its estimated unpacked size does. On error the
// tmpfs is unmounted again: nothing half-written is left.
func Prepare(ctx context.Context, dir string, o Options) (_ *Root, err error) {
	mem := cmp.Or(o.MemInfo, "/proc/meminfo")
	before, err := readMemInfo(mem)
	if err != nil {
		return nil, err
	}
	limit := o.Size.Of(before.total)
	if o.Size.IsZero() {
		limit = before.total / 100 * defaultShare
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("mode=0755,size=%d", limit)); err != nil {
		return nil, fmt.Errorf("mounting the root's tmpfs on %s (size %s): %w", dir, formatSize(limit), err)
	}
	defer func() {
		if err != nil {
			_ = unix.Unmount(dir, unix.MNT_DETACH)
		}
	}()
	f := fitter{o: o, dir: dir, limit: limit, mem: before}

	watch := startMemWatch(mem, before.inUse())
	start := time.Now()
	if IsURL(o.Source) {
		err = f.unpackTarball(ctx)
	} else {
		err = f.unpackImage(ctx)
	}
	peak := watch.stop()
	if errors.Is(err, unix.ENOSPC) {
		err = fmt.Errorf("%w: the root's tmpfs (%s) is full; %s", err, formatSize(f.limit), f.raise())
	}
	if err != nil {
		return nil, err
	}
	r := &Root{Dir: dir, Size: f.limit, MemoryRise: peak, Took: time.Since(start)}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil {
		r.Used = int64(st.Blocks-st.Bfree) * st.Bsize
		r.Entries = int64(st.Files - st.Ffree)
	}
	return r, nil
}

// fitter checks, once the sizes are known, that the tree can fit, and
// sizes the tmpfs.
type fitter struct {
	o     Options
	dir   string
	limit int64
	mem   memInfo
}

// raise says how to give the tree more room.
func (f *fitter) raise() string {
	if f.o.Size.IsZero() {
		return "give more RAM or set ociboot.root_size="
	}
	return "raise " + f.o.SizeParam
}

// fit checks the tree's size against the tmpfs and RAM, and grows the
// default tmpfs to it plus head-room when that is more than half of RAM.
// size is the compressed size (-1 unknown); unpacked is the tree's size:
// exact when how says where it was read ("its xz index"), else an
// estimate from size, of which only size itself is sure (the tree is not
// smaller than its compressed tar), so that a tree over it is only
// warned about.
func (f *fitter) fit(what string, size, unpacked int64, how string) error {
	if how == "" && size < 0 {
		fmt.Fprintf(f.o.Log, "%s: size unknown, unpacking into a tmpfs of %s\n", what, formatSize(f.limit))
		return nil
	}
	floor, sizes := size, fmt.Sprintf("it is %s compressed, so at least that unpacked (about %s)", formatSize(size), formatSize(unpacked))
	if how != "" {
		floor, sizes = unpacked, fmt.Sprintf("it is %s unpacked, as %s says", formatSize(unpacked), how)
	}
	avail := f.mem.available - reserve
	if floor > avail {
		return fmt.Errorf("%s cannot fit in RAM: %s, and only %s of RAM is available", what, sizes, formatSize(max(avail, 0)))
	}
	if f.o.Size.IsZero() {
		// Grown only (with less RAM available than half of RAM, the
		// default stays half of RAM), and before the check below: the
		// default is never smaller than the floor.
		want := min(unpacked+unpacked/100*headroomShare, avail)
		if want > f.limit {
			f.limit = want
			opts := fmt.Sprintf("size=%d", f.limit)
			if err := unix.Mount("", f.dir, "", unix.MS_REMOUNT, opts); err != nil {
				return fmt.Errorf("growing the root's tmpfs to %s: %w", formatSize(f.limit), err)
			}
		}
	}
	if floor > f.limit {
		return fmt.Errorf("%s cannot fit in the root's tmpfs of %s (%s): %s; %s",
			what, formatSize(f.limit), cmp.Or(f.o.SizeParam, "the default size"), sizes, f.raise())
	}
	switch {
	case how != "":
		fmt.Fprintf(f.o.Log, "%s: %s unpacked (as %s says), into a tmpfs of %s\n", what, formatSize(unpacked), how, formatSize(f.limit))
	case unpacked > f.limit:
		fmt.Fprintf(f.o.Log, "%s: %s compressed, about %s unpacked: it may not fit in the tmpfs of %s; %s if it does not\n",
			what, formatSize(size), formatSize(unpacked), formatSize(f.limit), f.raise())
	case unpacked > avail:
		fmt.Fprintf(f.o.Log, "%s: %s compressed, about %s unpacked: it may not fit in the %s of RAM available\n",
			what, formatSize(size), formatSize(unpacked), formatSize(avail))
	default:
		fmt.Fprintf(f.o.Log, "%s: %s compressed, about %s unpacked, into a tmpfs of %s\n",
			what, formatSize(size), formatSize(unpacked), formatSize(f.limit))
	}
	return nil
}

// unpackImage pulls the image and unpacks its layers.
func (f *fitter) unpackImage(ctx context.Context) error {
	puller := f.o.Puller
	if puller == nil {
		var err error
		if puller, err = image.NewPuller(image.PullOptions{}); err != nil {
			return err
		}
	}
	img, err := puller.Pull(ctx, f.o.Source, image.Request{Log: f.o.Log})
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("image %s: layers: %w", f.o.Source, err)
	}
	var size, estimate int64
	for i, l := range layers {
		n, err := l.Size()
		if err != nil {
			return fmt.Errorf("image %s: size of layer %d: %w", f.o.Source, i+1, err)
		}
		mt, err := l.MediaType()
		if err != nil {
			return fmt.Errorf("image %s: media type of layer %d: %w", f.o.Source, i+1, err)
		}
		size += n
		estimate += n * layerRatio(mt)
	}
	if err := f.fit("image "+f.o.Source, size, estimate, ""); err != nil {
		return err
	}
	return image.UnpackWith(ctx, img, f.dir, image.UnpackOptions{Log: f.o.Log, AllowDevices: true})
}

// layerRatio is the estimated unpacked-to-compressed ratio of a layer.
func layerRatio(mt types.MediaType) int64 {
	s := string(mt)
	switch {
	case strings.HasSuffix(s, "gzip"), strings.HasSuffix(s, "zstd"):
		return gzipRatio
	case strings.Contains(s, "tar"):
		return 1
	}
	return gzipRatio
}

// unpackTarball downloads and unpacks the tarball, checking the fit once
// the response says how big it is.
func (f *fitter) unpackTarball(ctx context.Context) error {
	to := f.o.Tarball
	to.Log = f.o.Log
	to.Check = func(ts image.TarballSize) error {
		if ts.Tar >= 0 {
			return f.fit("rootfs tarball", ts.File, ts.Tar, tarSizeSource[ts.Compression])
		}
		ratio := int64(gzipRatio)
		if ts.Compression == "xz" {
			ratio = xzRatio
		}
		return f.fit("rootfs tarball", ts.File, ts.File*ratio, "")
	}
	return image.UnpackTarball(ctx, f.o.Source, f.dir, to)
}

// tarSizeSource names where a tarball's exact tar size was read, by
// compression.
var tarSizeSource = map[string]string{
	"tar":  "the file's size",
	"xz":   "its xz index",
	"zstd": "its zstd frame header",
	"gzip": "its gzip trailer",
}

// memInfo is what Prepare reads of /proc/meminfo, in bytes.
type memInfo struct {
	total, available int64
}

func (m memInfo) inUse() int64 { return m.total - m.available }

// readMemInfo reads MemTotal and MemAvailable.
func readMemInfo(path string) (memInfo, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return memInfo{}, fmt.Errorf("reading the memory sizes: %w", err)
	}
	var m memInfo
	for _, line := range strings.Split(string(data), "\n") {
		var key string
		var kb int64
		if n, _ := fmt.Sscanf(line, "%s %d kB", &key, &kb); n != 2 {
			continue
		}
		switch key {
		case "MemTotal:":
			m.total = kb << 10
		case "MemAvailable:":
			m.available = kb << 10
		}
	}
	if m.total == 0 || m.available == 0 {
		return memInfo{}, fmt.Errorf("%s: no MemTotal or MemAvailable line", path)
	}
	return m, nil
}

// memWatch samples the memory in use while a tree is unpacked.
type memWatch struct {
	done chan struct{}
	wg   sync.WaitGroup
	peak int64
}

// watchEvery is how often memWatch samples.
const watchEvery = 50 * time.Millisecond

func startMemWatch(path string, base int64) *memWatch {
	w := &memWatch{done: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(watchEvery)
		defer t.Stop()
		for {
			if m, err := readMemInfo(path); err == nil {
				w.peak = max(w.peak, m.inUse()-base)
			}
			select {
			case <-w.done:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// stop ends the sampling (after one last sample) and returns the peak
// rise.
func (w *memWatch) stop() int64 {
	close(w.done)
	w.wg.Wait()
	return w.peak
}

// formatSize writes n bytes in binary units.
func formatSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

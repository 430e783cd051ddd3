package boot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ociboot/ociboot/internal/storage"
	"github.com/ociboot/ociboot/internal/store"
)

// Where the cache is mounted, as boot2container mounts it, and where the
// image store lives on it.
const (
	storageDir = "/storage"
	storeDir   = storageDir + "/ociboot/store"
	// scratchDir holds the containers' writable layers on the cache.
	scratchDir = storageDir + "/ociboot/scratch"
	// stateDir holds the containers' bundles; without a cache, the image
	// store of unpacked layers lives there too, in RAM.
	stateDir    = "/var/lib/ociboot"
	ramStoreDir = stateDir + "/store"
)

func noStorage(s *state) bool { return s.plan.Storage.CacheDevice == "" }

// devicesAdded is how a wait for disks hears of devices as they come;
// nil without hotplug.
func (s *state) devicesAdded() func() <-chan struct{} {
	if s.hotplug == nil {
		return nil
	}
	return s.hotplug.Added
}

// prepareStorage loads the storage drivers (or waits for coldplug's),
// finds (or makes) the cache and mounts it, adds the swap file, and puts
// the image store on the cache. Without a disk the boot goes on without a
// cache, warned.
func prepareStorage(ctx context.Context, s *state) error {
	st, log := s.plan.Storage, s.log("storage")
	fsMods, drivers, err := s.storageModules()
	if err != nil {
		return err
	}
	if s.fsModules != nil {
		err = s.fsModules() // started by the modules stage
	} else {
		err = s.loadModuleNames(fsMods)
	}
	if err != nil {
		return err
	}
	s.waitStorageDrivers()
	if s.hotplug == nil {
		// Nothing loads disk drivers as disks come: load them all.
		if err := s.loadModuleNames(drivers); err != nil {
			return err
		}
	}
	if fs, ok := st.Filesystem(st.CacheDevice); ok {
		if err := fs.Mount(ctx, storageDir); err != nil {
			return fmt.Errorf("cache_device=%s: %w", st.CacheDevice, err)
		}
		s.say("storage: filesystem %s (%s %s) mounted on %s", fs.Name, fs.Type, fs.Source, storageDir)
	} else {
		cache, err := storage.FindCache(ctx, storage.CacheOptions{
			Device: st.CacheDevice, Wait: st.CacheWait, Mkfs: s.input.baked.Mkfs, Runner: s.reaper, Log: log, Added: s.devicesAdded(),
		})
		if err != nil {
			return err
		}
		if cache == nil {
			if st.Swap > 0 {
				s.say("storage: WARNING: no cache, so no swap file (swap=%s)", mib(st.Swap))
			}
			return nil
		}
		if err := cache.Mount(storageDir); err != nil {
			return err
		}
		s.say("storage: %s (%s) mounted on %s", cache.Device, cache.FS, storageDir)
	}
	if st.Swap > 0 {
		swap := filepath.Join(storageDir, "swapfile")
		if err := storage.MakeSwap(swap, st.Swap); err != nil {
			return err
		}
		if err := storage.EnableSwap(swap); err != nil {
			return err
		}
		s.say("storage: swapping to %s (%s)", swap, mib(st.Swap))
	}
	images, err := store.Open(storeDir)
	if err != nil {
		return err
	}
	// What containers wrote before a power cut is of no use.
	if err := os.RemoveAll(scratchDir); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	s.plan.Registry.Store, s.layers, s.scratch = images, images, scratchDir
	return s.usePlan(s.plan)
}

// storageModules splits the initramfs's storage modules: those no device
// asks for (filesystems, overlay), which the stage loads, and the disk
// drivers, which coldplug loads for the disks present and hotplug for
// those that come later (the stage loads them all only without hotplug).
func (s *state) storageModules() (fsMods, drivers []string, err error) {
	mods := s.input.baked.StorageModules
	ix, err := s.moduleIndex()
	if err != nil || ix == nil || len(mods) == 0 {
		return mods, nil, err
	}
	for _, m := range mods {
		if ix.DeviceDriver(m) {
			drivers = append(drivers, m)
		} else {
			fsMods = append(fsMods, m)
		}
	}
	return fsMods, drivers, nil
}

// startFilesystemModules starts loading the filesystem modules the
// storage stage will want (with a cache), or the containers' layer store
// (overlay), while the stages before them run; those wait for them
// (s.fsModules).
func (s *state) startFilesystemModules() error {
	var mods []string
	switch {
	case !noStorage(s):
		fsMods, _, err := s.storageModules()
		if err != nil {
			return err
		}
		mods = fsMods
	case containerMode(s) && !hasFilesystem("overlay"):
		mods = []string{"overlay"}
	}
	if len(mods) == 0 {
		return nil
	}
	done := make(chan error, 1)
	s.fsModules = sync.OnceValue(func() error { return <-done })
	go func() { done <- s.loadModuleNames(mods) }()
	return nil
}

// evictImages brings the cache's image store down to its quota, keeping
// what this boot used. A failure is said, not fatal: the boot's work is
// done.
func (s *state) evictImages() {
	images := s.plan.Registry.Store
	if images == nil {
		return
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(storageDir, &fs); err != nil {
		s.say("storage: WARNING: %s: %v", storageDir, err)
		return
	}
	quota := s.plan.Storage.Quota.Of(int64(fs.Blocks) * fs.Bsize)
	evicted, used, err := images.Evict(quota)
	if err != nil {
		s.say("storage: WARNING: evicting images: %v", err)
	}
	if len(evicted) > 0 {
		s.say("storage: evicted the least recently used images: %s", strings.Join(evicted, ", "))
	}
	s.say("storage: the image store takes %s of its %s quota", mib(used), mib(quota))
}

// layerStore is where containers' layers are kept unpacked: the cache's
// store, or one in RAM for this boot, so that an image several
// containers use is unpacked once. It is nil, and every container's image
// is unpacked whole, when overlayfs is not there (its module is not in
// the initramfs).
func (s *state) layerStore() (*store.Store, error) {
	if s.layers != nil {
		return s.layers, nil
	}
	// A failure shows below.
	if s.fsModules != nil {
		_ = s.fsModules() // started by the modules stage
	} else if !hasFilesystem("overlay") {
		_ = s.loadModuleNames([]string{"overlay"})
	}
	if !hasFilesystem("overlay") {
		s.say("containers: no overlayfs (its module is not in this initramfs): every image is unpacked whole")
		return nil, nil
	}
	st, err := store.Open(ramStoreDir)
	if err != nil {
		return nil, err
	}
	s.layers = st
	return st, nil
}

// hasFilesystem tells whether the kernel knows the filesystem name.
func hasFilesystem(name string) bool {
	data, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == name {
			return true
		}
	}
	return false
}

package boot

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/ociboot/ociboot/internal/storage"
	"github.com/ociboot/ociboot/internal/store"
)

// Where the cache is mounted, as boot2container mounts it, and where the
// image store lives on it.
const (
	storageDir = "/storage"
	storeDir   = storageDir + "/ociboot/store"
)

func noStorage(s *state) bool { return s.plan.Storage.CacheDevice == "" }

// prepareStorage loads the storage drivers, finds (or makes) the cache
// and mounts it, adds the swap file, and puts the image store on the
// cache. Without a disk the boot goes on without a cache, warned.
func prepareStorage(ctx context.Context, s *state) error {
	st, log := s.plan.Storage, s.log("storage")
	if err := s.loadModuleNames(s.input.baked.StorageModules); err != nil {
		return err
	}
	if fs, ok := st.Filesystem(st.CacheDevice); ok {
		if err := fs.Mount(ctx, storageDir); err != nil {
			return fmt.Errorf("cache_device=%s: %w", st.CacheDevice, err)
		}
		s.say("storage: filesystem %s (%s %s) mounted on %s", fs.Name, fs.Type, fs.Source, storageDir)
	} else {
		cache, err := storage.FindCache(ctx, storage.CacheOptions{
			Device: st.CacheDevice, Wait: st.CacheWait, Mkfs: s.input.baked.Mkfs, Runner: s.reaper, Log: log,
		})
		if err != nil || cache == nil {
			return err
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
	s.plan.Registry.Store = images
	return s.usePlan(s.plan)
}

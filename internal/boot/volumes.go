package boot

import (
	"context"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/pipeline"
	"github.com/ociboot/ociboot/internal/volume"
)

// Where named filesystems that back volumes are mounted.
const filesystemsDir = "/run/ociboot/filesystems"

// noVolumes says whether the boot has no volume to keep: none defined,
// none mounted by a container, or an image booted as the OS.
func noVolumes(s *state) bool {
	if s.plan.Root != "" {
		return true
	}
	if len(s.plan.Volumes) > 0 {
		return false
	}
	for _, list := range [][]bootcfg.Container{s.plan.Containers, s.plan.Services, s.plan.PostContainers} {
		for _, c := range list {
			for _, m := range c.Mounts {
				if m.Type == "volume" {
					return false
				}
			}
		}
	}
	return true
}

// prepareVolumes opens the boot's volumes: on the cache, or in RAM
// without one; a volume on a named filesystem gets it mounted. What
// earlier boots could not push is pushed first.
func prepareVolumes(ctx context.Context, s *state) error {
	dir := filepath.Join(stateDir, "volumes")
	inRAM := s.plan.Registry.Store == nil
	if !inRAM {
		dir = filepath.Join(storageDir, "ociboot", "volumes")
	} else {
		s.say("volumes: no cache disk: the volumes live in RAM, and are lost at power-off")
	}
	roots := map[string]string{}
	for _, v := range s.plan.Volumes {
		name := v.Filesystem
		if name == "" || roots[name] != "" {
			continue
		}
		if name == s.plan.Storage.CacheDevice {
			roots[name] = storageDir
			continue
		}
		fs, _ := s.plan.Storage.Filesystem(name) // bootcfg checked it is there
		mnt := filepath.Join(filesystemsDir, name)
		if err := fs.Mount(ctx, mnt); err != nil {
			return err
		}
		roots[name] = mnt
		s.say("volumes: filesystem %s (%s %s) mounted on %s", fs.Name, fs.Type, fs.Source, mnt)
	}
	if !inRAM && slices.ContainsFunc(s.plan.Volumes, func(v bootcfg.Volume) bool { return v.FscryptKey != nil }) {
		if err := s.loadModuleNames(s.input.baked.FscryptModules); err != nil {
			return err
		}
	}
	base, err := fetch.NewTransport(fetch.TransportOptions{CACerts: s.plan.Registry.CACerts, MaxIdleConnsPerHost: volume.Transfers})
	if err != nil {
		return err
	}
	tr := &fetch.RetryTransport{Inner: base}
	set, err := volume.Open(dir, s.plan.Volumes, roots, volume.Options{Endpoints: s.plan.S3, Transport: tr, Log: s.log("volumes"),
		InRAM: inRAM, PushTimeout: s.plan.PushTimeout})
	if err != nil {
		return err
	}
	for _, line := range set.PushEarlier(ctx) {
		s.say("volumes: WARNING: %s", line)
	}
	s.volumes = set
	return nil
}

// volumeSet is the boot's volumes for the pipeline (nil: none).
func (s *state) volumeSet() pipeline.Volumes {
	if s.volumes == nil {
		return nil
	}
	return s.volumes
}

// volumeHooks pulls and pushes the boot's volumes at the pipeline's
// points (nil: no volumes).
func (s *state) volumeHooks() pipeline.Hooks {
	if s.volumes == nil {
		return nil
	}
	return s.volumes
}

// endVolumes deletes the volumes that expire at the pipeline's end, and
// lists those not pushed: kept for the next boot on a disk, lost in RAM.
func (s *state) endVolumes() {
	if s.volumes == nil {
		return
	}
	gone, kept, err := s.volumes.Expire()
	if len(gone) > 0 {
		s.say("volumes: deleted %s (expiration=pipeline_end)", strings.Join(gone, ", "))
	}
	if len(kept) > 0 {
		s.say("volumes: kept %s, which expire but are not pushed", strings.Join(kept, ", "))
	}
	if err != nil {
		s.say("volumes: WARNING: %v", err)
	}
	for _, line := range s.volumes.Unpushed() {
		s.say("volumes: NOT PUSHED: %s", line)
	}
}

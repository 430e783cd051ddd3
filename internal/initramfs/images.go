package initramfs

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ociboot/ociboot/internal/bootcfg"
)

// The whole module tree (ModulesAll) and the whole firmware directory go
// into the initramfs as squashfs images, which PID 1 mounts where the
// trees belong (bootcfg.Baked.Images): the kernel copies an image into
// the initramfs as it is, where a cpio of the trees would be decompressed
// into RAM whole at every boot, and the OS booted from an image keeps
// them compressed.
const (
	// imageDir holds the images in the initramfs.
	imageDir = "/lib/ociboot"
	// imageFSType is the images' filesystem, a module of every
	// distribution kernel.
	imageFSType = "squashfs"
	// squashfsBlock is the images' block size: xz over 1 MiB blocks is
	// the smallest of mksquashfs's choices for a module tree (67.3 MB for
	// Debian 12's 396 MiB, against 73.2 MB with 256 KiB blocks, 75.6 MB
	// with zstd at level 22 and 103.6 MB with gzip).
	squashfsBlock = "1M"
)

// imageModules are what mounting the images needs: the loop driver and
// the images' filesystem.
func imageModules() []string { return []string{"loop", imageFSType} }

// plannedImage is an image to make: the host tree it holds, and where
// the image goes and is mounted.
type plannedImage struct {
	src     string   // host directory
	from    string   // what asked for it, for messages
	exclude []string // directories of src left out, relative to it
	image   bootcfg.Image
}

// ImageReport says what an image of the second segment holds.
type ImageReport struct {
	bootcfg.Image
	Source   string   // the host directory
	Excluded []string // its directories left out, relative to it
	Files    int      // regular files in it, those left out aside
	TreeSize int64    // their total size
	Size     int64    // the image's
}

// planImages lists the images opts asks for: the module tree with
// ModulesAll, the firmware directory whole with FirmwareAll or
// ModulesAll; none without them.
func planImages(opts Options) ([]plannedImage, error) {
	var imgs []plannedImage
	if opts.ModulesAll {
		kver, dir, err := moduleSource(opts)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, plannedImage{src: dir, from: "--modules-all " + dir, image: bootcfg.Image{
			File: path.Join(imageDir, "modules."+imageFSType), Dir: path.Join(modulesRoot, kver), FSType: imageFSType,
		}})
	}
	if firmwareWhole(opts) {
		imgs = append(imgs, plannedImage{src: opts.Firmware, from: "--firmware " + opts.Firmware, exclude: earlyMicrocodeDirs(opts),
			image: bootcfg.Image{File: path.Join(imageDir, "firmware."+imageFSType), Dir: firmwareRoot, FSType: imageFSType}})
	}
	for _, img := range imgs {
		if st, err := os.Stat(img.src); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("initramfs: %s: want a directory", img.from)
		}
	}
	return imgs, nil
}

// earlyMicrocodeDirs are the vendor directories of the firmware
// directory that the early microcode archive is made of (the same
// directories: Debian's microcode packages install into /lib/firmware).
// They stay out of the whole firmware's image: the kernel applied them
// before anything else ran, and Intel's alone is 21 MiB, 14.5 MB of xz
// that a netbooting machine would download twice.
func earlyMicrocodeDirs(opts Options) []string {
	if opts.Microcode == "" {
		return nil
	}
	var dirs []string
	for _, v := range microcodeVendors {
		a, errA := os.Stat(filepath.Join(opts.Microcode, v.dir))
		b, errB := os.Stat(filepath.Join(opts.Firmware, v.dir))
		if errA == nil && errB == nil && a.IsDir() && os.SameFile(a, b) {
			dirs = append(dirs, v.dir)
		}
	}
	return dirs
}

// makeImages writes the planned images into tmp with the host's
// mksquashfs, every timestamp at mtime, and returns the second segment:
// an archive holding them, nil with no image. The archive goes
// uncompressed: the images are. Its paths follow the symlinks of the
// first segment, first (such as /lib -> usr/lib): the kernel would
// replace a symlink with a directory of the same name.
func makeImages(imgs []plannedImage, first *tree, tmp string, mtime int64, rep *Report) (*tree, []string, error) {
	if len(imgs) == 0 {
		return nil, nil, nil
	}
	mksquashfs, err := lookSystemProgram("mksquashfs")
	if err != nil {
		return nil, nil, fmt.Errorf("initramfs: %s: %w (install squashfs-tools: the tree goes in as a squashfs image)", imgs[0].from, err)
	}
	t := newTree()
	for i, img := range imgs {
		out := filepath.Join(tmp, strconv.Itoa(i)+"."+imageFSType)
		epoch := strconv.FormatInt(mtime, 10)
		args := []string{img.src, out, "-noappend", "-quiet", "-no-progress",
			"-comp", "xz", "-b", squashfsBlock, "-all-root", "-no-xattrs", "-mkfs-time", epoch, "-all-time", epoch}
		if len(img.exclude) > 0 {
			args = append(append(args, "-e"), img.exclude...) // last: the rest are paths
		}
		cmd := exec.Command(mksquashfs, args...)
		if msg, err := cmd.CombinedOutput(); err != nil {
			return nil, nil, fmt.Errorf("initramfs: %s: %s: %w: %s", img.from, mksquashfs, err, strings.TrimSpace(string(msg)))
		}
		dir, err := first.resolveDir(clean(path.Dir(img.image.File)))
		if err != nil {
			return nil, nil, fmt.Errorf("initramfs: %s: %w", img.from, err)
		}
		name := path.Join(dir, path.Base(img.image.File))
		if err := t.addFile(name, out, 0o444, img.from); err != nil {
			return nil, nil, fmt.Errorf("initramfs: %s: %w", img.from, err)
		}
		ir := ImageReport{Image: img.image, Source: img.src, Excluded: img.exclude, Size: t.entries[name].size}
		ir.Files, ir.TreeSize = treeSize(img.src, img.exclude)
		rep.Images = append(rep.Images, ir)
	}
	names, err := t.finish()
	if err != nil {
		return nil, nil, fmt.Errorf("initramfs: %w", err)
	}
	return t, names, nil
}

// bakedImages are the images as PID 1 reads them.
func bakedImages(imgs []plannedImage) []bootcfg.Image {
	var out []bootcfg.Image
	for _, img := range imgs {
		out = append(out, img.image)
	}
	return out
}

// treeSize counts the regular files under dir, but those under the
// directories exclude names, and their size, for the report.
func treeSize(dir string, exclude []string) (files int, size int64) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if rel, _ := filepath.Rel(dir, p); err == nil && d.IsDir() && slices.Contains(exclude, rel) {
			return filepath.SkipDir
		}
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				files++
				size += info.Size()
			}
		}
		return nil
	})
	return files, size
}

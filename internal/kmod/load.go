package kmod

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ociboot/ociboot/internal/xz"
	"golang.org/x/sys/unix"
)

// ReadFile returns what the module (or firmware) file at path holds,
// decompressed in Go when the name ends in .xz, .zst or .gz, so loading
// does not depend on the kernel's CONFIG_MODULE_DECOMPRESS.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kmod: reading: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(path, ".xz"):
		xr, err := xz.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("kmod: decompressing %s: %w", path, err)
		}
		r = xr
	case strings.HasSuffix(path, ".zst"):
		zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, fmt.Errorf("kmod: decompressing %s as zstd: %w", path, err)
		}
		defer zr.Close()
		r = zr
	case strings.HasSuffix(path, ".gz"):
		gr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("kmod: decompressing %s as gzip: %w", path, err)
		}
		r = gr
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("kmod: reading %s: %w", path, err)
	}
	return data, nil
}

// LoadOptions adjusts Load. The zero value suits PID 1.
type LoadOptions struct {
	// SysModuleDir is where the kernel lists loaded modules; a module with
	// a directory there is skipped. Default "/sys/module".
	SysModuleDir string
	// Params holds module parameters ("key=value key2=value2") by module
	// name.
	Params map[string]string
	// Loaded, when set, is called after each module the kernel accepted.
	Loaded func(Module)

	// insert gives a module file to the kernel (nil: the kernel's
	// finit_module); tests stand in for the kernel with it.
	insert func(file, params string) (bool, error)
}

// Load loads the modules names stand for, with their dependencies, into the
// running kernel, in Closure order. Builtin modules and modules already
// present in SysModuleDir are skipped, and EEXIST from the kernel counts as
// already loaded; a module that is only a soft dependency (Optional) and
// fails to load is left out. It returns the modules it loaded. Errors
// name the module and its file.
func (ix *Index) Load(names []string, opts LoadOptions) ([]Module, error) {
	mods, err := ix.Closure(names)
	if err != nil {
		return nil, err
	}
	sysDir := opts.SysModuleDir
	if sysDir == "" {
		sysDir = "/sys/module"
	}
	var loaded []Module
	for _, m := range mods {
		if m.Builtin {
			continue
		}
		if _, err := os.Stat(filepath.Join(sysDir, m.Name)); err == nil {
			continue
		}
		ins := opts.insert
		if ins == nil {
			ins = insert
		}
		added, err := ins(filepath.Join(ix.dir, m.Path), opts.Params[m.Name])
		if err != nil && m.Optional {
			continue // as modprobe does for soft dependencies
		}
		if err != nil {
			return loaded, fmt.Errorf("kmod: loading module %s: %w", m.Name, err)
		}
		if !added {
			continue
		}
		loaded = append(loaded, m)
		if opts.Loaded != nil {
			opts.Loaded(m)
		}
	}
	return loaded, nil
}

// InsertFile inserts the module in file (compressed or not) as it is,
// without dependencies; a module already loaded (EEXIST) is no error.
func InsertFile(file string) error {
	if _, err := insert(file, ""); err != nil {
		return fmt.Errorf("kmod: inserting %s: %w", file, err)
	}
	return nil
}

// insert reads the module in file and gives it to the kernel with params;
// it reports false for a module already loaded (EEXIST).
func insert(file, params string) (bool, error) {
	image, err := ReadFile(file)
	if err != nil {
		return false, err
	}
	err = unix.InitModule(image, params)
	if errors.Is(err, unix.EEXIST) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: init_module: %w", file, err)
	}
	return true, nil
}

package image_test

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/registrytest"
	"golang.org/x/sys/unix"
)

// makeTree builds a small tree with every kind FromDir takes.
func makeTree(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	for p, mode := range map[string]os.FileMode{"bin": 0o755, "etc": 0o750, "tmp": 0o777 | os.ModeSticky, "empty": 0o700} {
		if err := os.Mkdir(filepath.Join(src, p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(src, p), mode); err != nil {
			t.Fatal(err)
		}
	}
	for p, c := range map[string]struct {
		body string
		mode os.FileMode
	}{
		"bin/tool":       {"#!/bin/sh\necho tool\n", 0o755 | os.ModeSetuid},
		"etc/config":     {"key=value\n", 0o640},
		"etc/os-release": {"ID=test\n", 0o644},
	} {
		if err := os.WriteFile(filepath.Join(src, p), []byte(c.body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(src, p), c.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(src, p), 1234, 5678); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("tool", filepath.Join(src, "bin/alias")); err != nil {
		t.Fatal(err)
	}
	return src
}

func TestFromDirRoundTrip(t *testing.T) {
	src := makeTree(t)
	cfg := v1.Config{Cmd: []string{"/bin/tool"}, Env: []string{"PATH=/bin"}, WorkingDir: "/etc"}
	img, err := image.FromDir(src, cfg)
	if err != nil {
		t.Fatalf("FromDir: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH || !slices.Equal(cf.Config.Cmd, cfg.Cmd) || !slices.Equal(cf.Config.Env, cfg.Env) || cf.Config.WorkingDir != "/etc" {
		t.Errorf("config %s/%s %+v, want linux/%s %+v", cf.OS, cf.Architecture, cf.Config, runtime.GOARCH, cfg)
	}
	if layers, err := img.Layers(); err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v; want 1", len(layers), err)
	}

	// Deterministic: same tree with other mtimes gives the same digest.
	d1, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(src, "etc/config"), time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	img2, err := image.FromDir(src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d2, _ := img2.Digest(); d2 != d1 {
		t.Errorf("digest changed with mtimes only: %s then %s", d1, d2)
	}

	// Through a real registry and back, then unpacked.
	reg := registrytest.Start(t)
	ref := registrytest.Push(t, reg, "test/fromdir:1", img)
	ctx := testContext(t)
	pulled, err := image.Pull(ctx, ref, image.PullOptions{Insecure: []string{reg.Addr}})
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if d, _ := pulled.Digest(); d != d1 {
		t.Errorf("pulled digest %s, want %s", d, d1)
	}
	dst := t.TempDir()
	if err := image.Unpack(ctx, pulled, dst, nil); err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if got, want := treeListing(t, dst), treeListing(t, src); !slices.Equal(got, want) {
		t.Errorf("unpacked tree differs:\ngot  %q\nwant %q", got, want)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dst, "bin/tool"), &st); err != nil || st.Uid != 0 || st.Gid != 0 || st.Mtim.Sec != 0 {
		t.Errorf("bin/tool owner %d:%d mtime %d (%v), want 0:0 and 0", st.Uid, st.Gid, st.Mtim.Sec, err)
	}
}

// treeListing lists paths with type, permission bits and content or link target.
func treeListing(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		line := rel + " " + info.Mode().String()
		switch {
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += " " + string(b)
		case info.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFromDirRejectsSpecialFiles(t *testing.T) {
	src := t.TempDir()
	fifo := filepath.Join(src, "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := image.FromDir(src, v1.Config{})
	if err == nil || !strings.Contains(err.Error(), fifo) {
		t.Errorf("FromDir with a fifo: error %v, want one naming %s", err, fifo)
	}
	if _, err := image.FromDir(filepath.Join(src, "missing"), v1.Config{}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("FromDir of a missing directory: error %v, want one naming it", err)
	}
}

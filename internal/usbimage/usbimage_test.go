package usbimage

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/ociboot/ociboot/internal/hosttest"
	"github.com/ociboot/ociboot/internal/storage"
)

// TestWrite writes an image with a cache and reads it back with
// util-linux and go-diskfs: a GPT with the EFI system partition and the
// B2C_CACHE partition where the layout says; the ESP a FAT filesystem
// holding the UKI as \EFI\BOOT\BOOTX64.EFI; the cache an ext4 labelled
// B2C_CACHE.
func TestWrite(t *testing.T) {
	uki := bytes.Repeat([]byte("MZ a unified kernel image "), 400000) // 10 MiB
	path := filepath.Join(t.TempDir(), "stick.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := Write(f, Options{UKI: uki, CacheSize: 80 << 20, Mkfs: "mke2fs"})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := f.Stat(); err != nil || st.Size() != l.Size {
		t.Fatalf("the image has %v bytes, its layout says %d (%v)", st.Size(), l.Size, err)
	}
	parts := hosttest.Run(t, "partx", "-g", "-b", "-o", "NR,START,SIZE,TYPE,NAME", path)
	want := []string{
		"1 " + strconv.FormatInt(l.ESPStart/512, 10) + " " + strconv.FormatInt(l.ESPSize, 10) + " c12a7328-f81f-11d2-ba4b-00a0c93ec93b EFI system partition",
		"2 " + strconv.FormatInt(l.CacheStart/512, 10) + " " + strconv.FormatInt(l.CacheSize, 10) + " 0fc63daf-8483-4772-8e79-3d69d8477de4 B2C_CACHE",
	}
	if got := strings.Fields(strings.ReplaceAll(parts, "\n", " ")); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("partx:\n%s\nwant\n%s", parts, strings.Join(want, "\n"))
	}
	if out := hosttest.Run(t, "blkid", "-p", "-O", strconv.FormatInt(l.CacheStart, 10), "-o", "export", path); !strings.Contains(out, "LABEL="+storage.CacheLabel) || !strings.Contains(out, "TYPE=ext4") {
		t.Errorf("blkid of the cache partition: %s", out)
	}
	// Formatted as ociboot formats a cache at boot: fscrypt volumes need
	// the encrypt feature.
	if out := hosttest.Run(t, "dumpe2fs", "-h", path+"?offset="+strconv.FormatInt(l.CacheStart, 10)); !strings.Contains(out, " encrypt") {
		t.Errorf("the cache lacks the encrypt feature:\n%s", out)
	}
	if out := hosttest.Run(t, "blkid", "-p", "-O", strconv.FormatInt(l.ESPStart, 10), "-o", "export", path); !strings.Contains(out, "TYPE=vfat") {
		t.Errorf("blkid of the EFI system partition: %s", out)
	}
	fs, err := fat32.Read(file.New(f, true), l.ESPSize, l.ESPStart, 512)
	if err != nil {
		t.Fatal(err)
	}
	boot, err := fs.OpenFile("/EFI/BOOT/BOOTX64.EFI", os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(boot)
	if err != nil || !bytes.Equal(got, uki) {
		t.Errorf(`\EFI\BOOT\BOOTX64.EFI holds %d bytes (%v), want the %d of the UKI`, len(got), err, len(uki))
	}
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		o    Options
		want string
	}{
		{"too small", Options{UKI: []byte("x"), Size: 8 << 20}, "8 MiB is too small: the partitions need 66 MiB"},
		{"small cache", Options{UKI: []byte("x"), CacheSize: 1 << 20}, "a cache of 1 MiB is too small"},
		{"no mke2fs", Options{UKI: []byte("x"), CacheSize: 64 << 20}, "needs mke2fs"},
	} {
		f, err := os.Create(filepath.Join(dir, tt.name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Write(f, tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error saying %q", tt.name, err, tt.want)
		}
		f.Close()
	}
}

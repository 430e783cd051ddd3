package volume

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/internal/bootcfg"
)

// TestSet checks volumes through two boots: made when first used, kept
// or expired at the pipeline's end, on a named filesystem apart from
// what it holds, and deleted at the next boot when the first never
// reached its end.
func TestSet(t *testing.T) {
	dir, fsRoot := t.TempDir(), t.TempDir()
	mine := filepath.Join(fsRoot, "not-a-volume")
	if err := os.MkdirAll(mine, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mine, "expire"), []byte("a file of the filesystem's own"), 0o644); err != nil {
		t.Fatal(err)
	}
	defs := []bootcfg.Volume{{Name: "job", ExpireAtPipelineEnd: true}, {Name: "keep"}, {Name: "ondisk", Filesystem: "disk", ExpireAtPipelineEnd: true}}
	roots := map[string]string{"disk": fsRoot}
	s, err := Open(dir, defs, roots, Options{})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string) string {
		t.Helper()
		d, err := s.Dir(name)
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := s.Dir(name); again != d {
			t.Fatalf("Dir(%s) = %s, then %s", name, d, again)
		}
		if err := os.WriteFile(filepath.Join(d, "f"), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	job, keep, plain, ondisk := write("job"), write("keep"), write("plain"), write("ondisk")
	if !strings.HasPrefix(ondisk, filepath.Join(fsRoot, "ociboot-volumes")) || !strings.HasPrefix(job, dir) {
		t.Errorf("volume directories: ondisk %s, job %s", ondisk, job)
	}
	gone, kept, err := s.Expire()
	if err != nil || !slices.Equal(gone, []string{"job", "ondisk"}) || kept != nil {
		t.Fatalf("Expire = %q, %q, %v; want job and ondisk gone", gone, kept, err)
	}
	for d, want := range map[string]bool{job: false, ondisk: false, keep: true, plain: true} {
		if _, err := os.Stat(filepath.Join(d, "f")); (err == nil) != want {
			t.Errorf("%s after Expire: %v, want kept %v", d, err, want)
		}
	}

	// A boot that never reaches the pipeline's end: the next deletes its
	// expiring volumes, and leaves what the filesystem held.
	s, err = Open(dir, defs, roots, Options{})
	if err != nil {
		t.Fatal(err)
	}
	job = write("job")
	ondisk = write("ondisk")
	if _, err := Open(dir, nil, roots, Options{}); err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]bool{job: false, ondisk: false, keep: true, plain: true, mine: true} {
		_, err := os.Stat(d)
		if (err == nil) != want {
			t.Errorf("%s at the next boot: %v, want kept %v", d, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(mine, "expire")); err != nil {
		t.Errorf("the filesystem's own files were touched: %v", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	for _, tc := range []struct {
		def  bootcfg.Volume
		want string
	}{
		{bootcfg.Volume{Name: "a", PushTo: bootcfg.Bucket{Alias: "gw", Bucket: "b"}}, "volume a: no endpoint called gw"},
		{bootcfg.Volume{Name: "d", Filesystem: "nfs"}, "volume d: filesystem nfs is not mounted"},
	} {
		if _, err := Open(t.TempDir(), []bootcfg.Volume{tc.def}, nil, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v): %v, want an error with %q", tc.def, err, tc.want)
		}
	}
}

// TestFscryptInRAM checks that a volume with fscrypt_key= in RAM, on no
// disk, is made all the same, unencrypted, and the log says so.
func TestFscryptInRAM(t *testing.T) {
	var log bytes.Buffer
	s, err := Open(t.TempDir(), []bootcfg.Volume{{Name: "sec", FscryptKey: make([]byte, 32)}}, nil, Options{InRAM: true, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Dir("sec"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "volume sec: fscrypt_key=: the volume is in RAM, on no disk: it is not encrypted") {
		t.Errorf("log: %q", log.String())
	}
}

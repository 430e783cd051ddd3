package store_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ociboot/ociboot/internal/store"
)

func digestOf(b []byte) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(b))}
}

func open(t *testing.T, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tmpEntries lists what is being written, or was left by a cut write.
func tmpEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestPutOpen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	blob := bytes.Repeat([]byte("layer data "), 100000)
	d := digestOf(blob)
	if s.Has(d) {
		t.Fatal("an empty store has the blob")
	}
	n, err := s.Put(d, int64(len(blob)), bytes.NewReader(blob))
	if err != nil || n != int64(len(blob)) || !s.Has(d) {
		t.Fatalf("Put: %d bytes, %v; Has %v", n, err, s.Has(d))
	}
	rc, size, err := s.Open(d)
	if err != nil || size != int64(len(blob)) {
		t.Fatalf("Open: size %d, %v", size, err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, blob) {
		t.Errorf("read back %d bytes, %v", len(got), err)
	}
	st, err := os.Stat(filepath.Join(dir, "blobs", "sha256", d.Hex))
	if err != nil || st.Mode().Perm() != 0o400 {
		t.Errorf("the stored blob: %v, %v; want a read-only file", st, err)
	}
	// Putting it again keeps the one there.
	if _, err := s.Put(d, -1, bytes.NewReader(blob)); err != nil {
		t.Errorf("Put again: %v", err)
	}
	if left := tmpEntries(t, dir); len(left) != 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

func TestPutRefusesWrongContent(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	blob := []byte("the real content")
	d := digestOf(blob)
	for _, tc := range []struct {
		name string
		size int64
		r    io.Reader
		want string
	}{
		{"other bytes", -1, strings.NewReader("other content"), "have digest sha256:"},
		{"short", -1, bytes.NewReader(blob[:5]), "have digest sha256:"},
		{"wrong size", 99, bytes.NewReader(blob), "want 99"},
		{"read error", -1, iotest.TimeoutReader(bytes.NewReader(blob)), "after"},
	} {
		_, err := s.Put(d, tc.size, tc.r)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), d.String()) {
			t.Errorf("%s: error %v, want one naming the blob and containing %q", tc.name, err, tc.want)
		}
		if s.Has(d) {
			t.Fatalf("%s: the blob was stored", tc.name)
		}
	}
	if left := tmpEntries(t, dir); len(left) != 0 {
		t.Errorf("temporary files left: %q", left)
	}
	for _, bad := range []v1.Hash{{Algorithm: "md5", Hex: "00"}, {Algorithm: "sha256", Hex: "../../etc"}, {Algorithm: "sha256", Hex: strings.Repeat("A", 64)}} {
		if _, err := s.Put(bad, -1, strings.NewReader("x")); err == nil {
			t.Errorf("Put(%s) accepted", bad)
		}
		if _, _, err := s.Open(bad); err == nil {
			t.Errorf("Open(%s) accepted", bad)
		}
	}
}

// A blob damaged on the disk is caught when read, and deleted so that it
// is fetched again.
func TestOpenCatchesCorruption(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	blob := bytes.Repeat([]byte{7}, 1<<16)
	d := digestOf(blob)
	if _, err := s.Put(d, -1, bytes.NewReader(blob)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "blobs", "sha256", d.Hex)
	damaged := append([]byte(nil), blob...)
	damaged[1000] ^= 1
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, damaged, 0o400); err != nil {
		t.Fatal(err)
	}
	rc, _, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), d.String()) {
		t.Errorf("reading a damaged blob: %v, want ErrCorrupt naming it", err)
	}
	if s.Has(d) {
		t.Error("the damaged blob is still in the store")
	}
	if _, _, err := s.Open(d); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open after the deletion: %v, want not found", err)
	}
}

// What a power cut leaves while a blob is written (a partial temporary
// file) is discarded when the store is opened again, and was never
// visible as a blob.
func TestOpenDiscardsCutWrites(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	blob := bytes.Repeat([]byte("x"), 1<<20)
	d := digestOf(blob)
	// A write stopped half-way: its reader fails, as a process killed
	// mid-download would stop; the partial file is made by hand as a
	// crash would leave it.
	partial := filepath.Join(dir, "tmp", "sha256-"+d.Hex+"-123")
	if err := os.WriteFile(partial, blob[:len(blob)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if s.Has(d) {
		t.Fatal("a partial write is visible as a blob")
	}
	s = open(t, dir)
	if left := tmpEntries(t, dir); len(left) != 0 || s.Has(d) {
		t.Errorf("after reopening: tmp holds %q, blob there %v; want neither", left, s.Has(d))
	}
	if _, err := s.Put(d, int64(len(blob)), bytes.NewReader(blob)); err != nil || !s.Has(d) {
		t.Errorf("Put after a cut write: %v", err)
	}
}

func TestConcurrentPuts(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	blob := bytes.Repeat([]byte("concurrent"), 50000)
	d := digestOf(blob)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Put(d, int64(len(blob)), bytes.NewReader(blob))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Put: %v", err)
		}
	}
	rc, _, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, blob) {
		t.Errorf("read back %d bytes, %v", len(got), err)
	}
	if left := tmpEntries(t, dir); len(left) != 0 {
		t.Errorf("temporary files left: %q", left)
	}
	if err := s.Delete(d); err != nil || s.Has(d) {
		t.Errorf("Delete: %v, still there %v", err, s.Has(d))
	}
	if err := s.Delete(d); err != nil {
		t.Errorf("Delete of a blob not there: %v", err)
	}
}

// OpenVerified refuses a damaged blob before any byte is used, and
// serves a good one whole.
func TestOpenVerified(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	blob := bytes.Repeat([]byte("v"), 1<<16)
	d := digestOf(blob)
	if _, err := s.Put(d, -1, bytes.NewReader(blob)); err != nil {
		t.Fatal(err)
	}
	rc, size, err := s.OpenVerified(d)
	if err != nil || size != int64(len(blob)) {
		t.Fatalf("OpenVerified: %d, %v", size, err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, blob) {
		t.Errorf("read %d bytes, %v", len(got), err)
	}
	p := filepath.Join(dir, "blobs", "sha256", d.Hex)
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, blob[:100], 0o400); err != nil {
		t.Fatal(err)
	}
	if rc, _, err := s.OpenVerified(d); !errors.Is(err, store.ErrCorrupt) || rc != nil || s.Has(d) {
		t.Errorf("OpenVerified of a truncated blob: %v; want ErrCorrupt, no reader, the blob deleted", err)
	}
}

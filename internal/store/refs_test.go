package store_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/store"
)

// TestRefs checks what names stand for: recorded, replaced, found again
// after the store is reopened, and a damaged or foreign ref file read as
// no ref rather than trusted.
func TestRefs(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if _, err := s.Ref("r.lan/a:1 linux/amd64"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Ref of an unknown name: %v, want fs.ErrNotExist", err)
	}
	at := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	one, two := digestOf([]byte("one")), digestOf([]byte("two"))
	for _, r := range []store.Ref{
		{Name: "r.lan/a:1 linux/amd64", Digest: one, Pulled: at},
		{Name: "r.lan/a:1 linux/amd64", Digest: two, Pulled: at}, // replaces the first
		{Name: "r.lan/a:1 linux/arm64", Digest: one, Pulled: at},
	} {
		if err := s.SetRef(r); err != nil {
			t.Fatal(err)
		}
	}
	s = open(t, dir)
	for name, want := range map[string]string{"r.lan/a:1 linux/amd64": two.String(), "r.lan/a:1 linux/arm64": one.String()} {
		got, err := s.Ref(name)
		if err != nil || got.Digest.String() != want || !got.Pulled.Equal(at) || got.Name != name {
			t.Errorf("Ref(%q) = %+v, %v; want %s pulled at %s", name, got, err, want, at)
		}
	}
	if left := tmpEntries(t, dir); len(left) != 0 {
		t.Errorf("SetRef left %q in tmp/", left)
	}
	if err := s.SetRef(store.Ref{Name: "x", Digest: one}); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "refs", "*"))
	for _, f := range files {
		if err := os.WriteFile(f, []byte(`{"name":"x","digest":"sha256:`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"x", "r.lan/a:1 linux/amd64"} {
		if _, err := s.Ref(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Ref(%q) of a damaged file: %v, want fs.ErrNotExist", name, err)
		}
	}
	for _, f := range files {
		if err := os.WriteFile(f, []byte(`{"name":"someone else","digest":"`+one.String()+`"}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Ref("x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Ref of a file holding another name: %v, want fs.ErrNotExist", err)
	}
	if err := s.SetRef(store.Ref{Name: "z"}); err == nil {
		t.Error("SetRef without a digest succeeded")
	}
}

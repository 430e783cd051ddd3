package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestWrite checks that a write replaces the file whole with its mode,
// and that a failed write leaves the old content and no temporary file.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "entry")
	if err := WriteFile(name, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(name, []byte("new"), 0o640); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(name)
	if got, _ := os.ReadFile(name); string(got) != "new" || err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("after the second write: %q, mode %v, %v", got, st.Mode(), err)
	}
	cut := errors.New("cut")
	err = Write(name, 0o600, func(w io.Writer) error {
		if _, err := w.Write([]byte("half")); err != nil {
			return err
		}
		return cut
	})
	if !errors.Is(err, cut) {
		t.Errorf("a failed write: %v, want its error", err)
	}
	if got, _ := os.ReadFile(name); string(got) != "new" {
		t.Errorf("after a failed write: %q, want the old content", got)
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Errorf("%d files in the directory, want the entry alone", len(left))
	}
	if err := WriteFile(filepath.Join(dir, "missing", "x"), nil, 0o600); err == nil {
		t.Error("a write into a missing directory succeeded")
	}
}

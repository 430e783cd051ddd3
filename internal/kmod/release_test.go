package kmod

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCompareReleases(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int // sign
	}{
		{"6.1.0-56-amd64", "6.1.0-9-amd64", 1},
		{"6.10", "6.9", 1},
		{"6.10.1", "6.9.12", 1},
		{"6.1", "6.1.0", -1},
		{"6.01", "6.1", 0},
		{"6.1-rc1", "6.1-rc2", -1},
		{"vmlinuz-6.10.1-amd64", "vmlinuz-6.9.12-amd64", 1},
		{"a", "b", -1},
	} {
		got := CompareReleases(tc.a, tc.b)
		if (got > 0) != (tc.want > 0) || (got < 0) != (tc.want < 0) {
			t.Errorf("CompareReleases(%q, %q) = %d, want sign %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestNewestRelease(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"6.1.0-9-amd64", "6.1.0-56-amd64", "6.1.0-10-amd64", "5.19.0-1-amd64"} {
		if err := os.Mkdir(filepath.Join(root, v), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "7.0-not-a-dir"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if v, err := NewestRelease(root); err != nil || v != "6.1.0-56-amd64" {
		t.Errorf("NewestRelease = %q, %v; want 6.1.0-56-amd64", v, err)
	}
	if _, err := NewestRelease(t.TempDir()); err == nil {
		t.Error("NewestRelease of an empty directory succeeded")
	}
	if r, err := RunningRelease(); err != nil || r == "" {
		t.Errorf("RunningRelease = %q, %v", r, err)
	}
}

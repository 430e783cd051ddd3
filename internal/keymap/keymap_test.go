package keymap

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// The test makes real binary keymaps with kbd's loadkeys -b (it changes
// nothing on the console) and checks what Parse reads: the key at the
// Q position (16) types a with fr-latin1 (AZERTY), q with us.
func TestParse(t *testing.T) {
	for _, tc := range []struct {
		file string
		want uint16
	}{
		{"/usr/share/keymaps/i386/azerty/fr-latin1.kmap.gz", 0x0b61},
		{"/usr/share/keymaps/i386/qwerty/us.kmap.gz", 0x0b71},
	} {
		data, err := exec.Command("loadkeys", "-b", tc.file).Output()
		if err != nil {
			t.Fatalf("loadkeys -b %s (packages kbd, console-data): %v", tc.file, err)
		}
		m, err := Parse(data)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if m.Tables[0] == nil || m.Tables[0][16] != tc.want {
			t.Errorf("%s: plain table, key 16 = %#x, want %#x", tc.file, m.Tables[0][16], tc.want)
		}
		if _, err := Parse(data[:len(data)-1]); err == nil || !strings.Contains(err.Error(), "cut short") {
			t.Errorf("truncated: %v", err)
		}
		if _, err := Parse(append(bytes.Clone(data), 0)); err == nil || !strings.Contains(err.Error(), "after its tables") {
			t.Errorf("trailing byte: %v", err)
		}
	}
	if _, err := Parse([]byte("not a keymap")); err == nil || !strings.Contains(err.Error(), "no \"bkeymap\" magic") {
		t.Errorf("bad magic: %v", err)
	}
}

// FuzzParse checks that any input parses or fails without panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte("bkeymap"))
	f.Fuzz(func(t *testing.T, data []byte) { _, _ = Parse(data) })
}

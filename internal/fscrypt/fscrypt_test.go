package fscrypt

import (
	"bytes"
	"strings"
	"testing"
)

// TestMasterKey checks that a 64-byte key is used as it is, that shorter
// ones are stretched to 64 bytes, each to its own, and that sizes out of
// range are refused.
func TestMasterKey(t *testing.T) {
	full := bytes.Repeat([]byte{7}, KeySize)
	if m, err := MasterKey(full); err != nil || !bytes.Equal(m, full) {
		t.Errorf("MasterKey of 64 bytes: %x, %v; want the key", m, err)
	}
	a, errA := MasterKey(bytes.Repeat([]byte{1}, 32))
	b, errB := MasterKey(bytes.Repeat([]byte{2}, 32))
	if errA != nil || errB != nil || len(a) != KeySize || bytes.Equal(a, b) || bytes.HasPrefix(a, bytes.Repeat([]byte{1}, 32)) {
		t.Errorf("MasterKey of 32 bytes: %x (%v), %x (%v)", a, errA, b, errB)
	}
	for _, n := range []int{0, 15, 65} {
		if _, err := MasterKey(make([]byte, n)); err == nil || !strings.Contains(err.Error(), "expected 16 to 64") {
			t.Errorf("MasterKey of %d bytes: %v", n, err)
		}
	}
}

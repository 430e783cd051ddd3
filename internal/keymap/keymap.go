// Package keymap loads a console keymap into the kernel's keyboard driver,
// for b2c.keymap on machines with a keyboard and screen. Keymaps come in
// the binary form `loadkeys -b` writes (busybox's loadkmap format), made
// at build time from kbd's text keymaps (see internal/initramfs).
package keymap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The binary format: the magic, one flag byte per keymap (table), then,
// for each flagged table in order, its NR_KEYS 16-bit entries (host byte
// order, as loadkeys writes them).
const (
	magic       = "bkeymap"
	maxKeymaps  = 256 // MAX_NR_KEYMAPS
	keysPerMap  = 128 // NR_KEYS
	kdskbent    = 0x4B47
	flagsOffset = len(magic)
)

// Map is a parsed binary keymap: Tables[t] is nil for a table the map
// does not set.
type Map struct {
	Tables [maxKeymaps]*[keysPerMap]uint16
}

// Parse reads a binary keymap.
func Parse(data []byte) (*Map, error) {
	if !bytes.HasPrefix(data, []byte(magic)) {
		return nil, errors.New("not a binary keymap (no \"bkeymap\" magic): make it with loadkeys -b")
	}
	if len(data) < flagsOffset+maxKeymaps {
		return nil, fmt.Errorf("binary keymap of %d bytes: too short for its table flags", len(data))
	}
	m := &Map{}
	off := flagsOffset + maxKeymaps
	for t := 0; t < maxKeymaps; t++ {
		if data[flagsOffset+t] == 0 {
			continue
		}
		if len(data) < off+2*keysPerMap {
			return nil, fmt.Errorf("binary keymap of %d bytes: table %d is cut short", len(data), t)
		}
		var table [keysPerMap]uint16
		for k := range table {
			table[k] = binary.NativeEndian.Uint16(data[off+2*k:])
		}
		m.Tables[t] = &table
		off += 2 * keysPerMap
	}
	if off != len(data) {
		return nil, fmt.Errorf("binary keymap of %d bytes: %d bytes after its tables", len(data), len(data)-off)
	}
	return m, nil
}

// kbentry is the kernel's struct kbentry.
type kbentry struct {
	table, index uint8
	value        uint16
}

// Load sets every entry of m on the console device console (such as
// /dev/tty0), as busybox's loadkmap does.
func Load(console string, m *Map) error {
	fd, err := unix.Open(console, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("keymap: %w", &os.PathError{Op: "open", Path: console, Err: err})
	}
	defer unix.Close(fd)
	for t, table := range m.Tables {
		if table == nil {
			continue
		}
		for k, v := range table {
			e := kbentry{table: uint8(t), index: uint8(k), value: v}
			if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), kdskbent, uintptr(unsafe.Pointer(&e))); errno != 0 {
				return fmt.Errorf("keymap: setting key %d of table %d on %s: %w", k, t, console, errno)
			}
		}
	}
	return nil
}

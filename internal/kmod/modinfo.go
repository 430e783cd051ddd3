package kmod

import (
	"bytes"
	"debug/elf"
	"fmt"
)

// Modinfo returns the values of key in the .modinfo section of a module's
// ELF image, in order, as `modinfo -F KEY` lists them: "firmware" gives
// the firmware files the module may ask the kernel for.
func Modinfo(image []byte, key string) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(image))
	if err != nil {
		return nil, fmt.Errorf("kmod: reading the module's ELF headers: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("kmod: the module has no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("kmod: reading the module's .modinfo: %w", err)
	}
	var values []string
	for field := range bytes.SplitSeq(data, []byte{0}) {
		if k, v, ok := bytes.Cut(field, []byte("=")); ok && string(k) == key {
			values = append(values, string(v))
		}
	}
	return values, nil
}

// Package fscrypt encrypts directories with the kernel's filesystem
// encryption (fscrypt, policy v2) through its ioctls, without an external
// tool: a master key is added to the filesystem, and an empty directory
// is given a policy naming it, after which everything created under it
// is encrypted (contents with AES-256-XTS, names with AES-256-CTS).
// ext4 needs the encrypt feature (mke2fs -O encrypt).
package fscrypt

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha512"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// KeySize is the size of the master keys added: AES-256-XTS's, which the
// kernel wants a master key at least as long as.
const KeySize = 64

// ID is a master key's identifier, which the kernel derives from it.
type ID [unix.FSCRYPT_KEY_IDENTIFIER_SIZE]byte

func (id ID) String() string { return fmt.Sprintf("%x", id[:]) }

// MasterKey makes a master key of a key of 16 to 64 bytes: a 64-byte key
// is used as it is (as fscryptctl would); a shorter one is stretched to
// 64 bytes with HKDF-SHA512.
func MasterKey(key []byte) ([]byte, error) {
	switch {
	case len(key) == KeySize:
		return bytes.Clone(key), nil
	case len(key) < 16 || len(key) > KeySize:
		return nil, fmt.Errorf("a key of %d bytes: expected 16 to %d", len(key), KeySize)
	}
	return hkdf.Key(sha512.New, key, nil, "ociboot fscrypt master key", KeySize)
}

// AddKey adds master key to the filesystem that holds dir, and returns
// its identifier. Adding a key already there is no error.
func AddKey(dir string, master []byte) (ID, error) {
	var id ID
	if len(master) != KeySize {
		return id, fmt.Errorf("fscrypt: a master key of %d bytes, want %d", len(master), KeySize)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return id, fmt.Errorf("fscrypt: %w", err)
	}
	defer unix.Close(fd)
	// struct fscrypt_add_key_arg, then the raw key.
	buf := make([]byte, unsafe.Sizeof(unix.FscryptAddKeyArg{})+uintptr(len(master)))
	arg := (*unix.FscryptAddKeyArg)(unsafe.Pointer(&buf[0]))
	arg.Key_spec.Type = unix.FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER
	arg.Raw_size = uint32(len(master))
	copy(buf[unsafe.Sizeof(*arg):], master)
	defer clear(buf)
	if err := ioctl(fd, unix.FS_IOC_ADD_ENCRYPTION_KEY, unsafe.Pointer(&buf[0])); err != nil {
		return id, fmt.Errorf("fscrypt: adding the key to the filesystem of %s: %w", dir, explain(err))
	}
	copy(id[:], arg.Key_spec.U[:len(id)])
	return id, nil
}

// Policy returns the identifier of the key dir is encrypted with, and
// false when it is not encrypted (its filesystem may not support
// encryption).
func Policy(dir string) (ID, bool, error) {
	var id ID
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return id, false, fmt.Errorf("fscrypt: %w", err)
	}
	defer unix.Close(fd)
	arg := unix.FscryptGetPolicyExArg{Size: uint64(len(unix.FscryptGetPolicyExArg{}.Policy))}
	err = ioctl(fd, unix.FS_IOC_GET_ENCRYPTION_POLICY_EX, unsafe.Pointer(&arg))
	switch {
	case errors.Is(err, unix.ENODATA), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOTTY):
		// Not encrypted, or on a filesystem without encryption.
		return id, false, nil
	case err != nil:
		return id, false, fmt.Errorf("fscrypt: the policy of %s: %w", dir, explain(err))
	}
	p := (*unix.FscryptPolicyV2)(unsafe.Pointer(&arg.Policy[0]))
	if p.Version != unix.FSCRYPT_POLICY_V2 {
		return id, true, fmt.Errorf("fscrypt: %s has a policy of version %d, not 2", dir, p.Version)
	}
	return ID(p.Master_key_identifier), true, nil
}

// SetPolicy encrypts the empty directory dir with the key of id, which
// must have been added.
func SetPolicy(dir string, id ID) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fscrypt: %w", err)
	}
	defer unix.Close(fd)
	p := unix.FscryptPolicyV2{
		Version:                   unix.FSCRYPT_POLICY_V2,
		Contents_encryption_mode:  unix.FSCRYPT_MODE_AES_256_XTS,
		Filenames_encryption_mode: unix.FSCRYPT_MODE_AES_256_CTS,
		Flags:                     unix.FSCRYPT_POLICY_FLAGS_PAD_32,
		Master_key_identifier:     id,
	}
	if err := ioctl(fd, unix.FS_IOC_SET_ENCRYPTION_POLICY, unsafe.Pointer(&p)); err != nil {
		return fmt.Errorf("fscrypt: encrypting %s: %w", dir, explain(err))
	}
	return nil
}

// ioctl calls the ioctl req on fd with arg.
func ioctl(fd int, req uint, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}

// explain adds what the errors of missing support mean.
func explain(err error) error {
	switch {
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOTTY):
		return fmt.Errorf("%w: the filesystem does not support encryption (ext4 needs its encrypt feature: mke2fs -O encrypt, or tune2fs -O encrypt)", err)
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("%w: it is encrypted already, with another policy", err)
	case errors.Is(err, unix.ENOTEMPTY):
		return fmt.Errorf("%w: it is not empty", err)
	}
	return err
}

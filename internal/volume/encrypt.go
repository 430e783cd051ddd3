package volume

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ociboot/ociboot/internal/fscrypt"
)

// The directories of a volume encrypted with fscrypt_key=: what
// containers see, and the sync state, which names the files.
var encryptedDirs = []string{"data", "state"}

// makeDirs makes the volume's directories in base, encrypted with its
// fscrypt_key= if it has one; s.mu is held.
func (s *Set) makeDirs(name, base string) error {
	def := s.defs[name]
	if def.FscryptKey == nil {
		for _, d := range encryptedDirs {
			if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
				return fmt.Errorf("volume %s: %w", name, err)
			}
		}
		return nil
	}
	if s.inRAM(base) {
		fmt.Fprintf(s.opts.Log, "volume %s: fscrypt_key=: the volume is in RAM, on no disk: it is not encrypted\n", name)
		def.FscryptKey = nil
		s.defs[name] = def
		return s.makeDirs(name, base)
	}
	id, err := s.addKey(name, base)
	if err != nil {
		return err
	}
	for _, d := range encryptedDirs {
		dir := filepath.Join(base, d)
		if err := s.encryptDir(name, dir, id, def.FscryptResetKey); err != nil {
			return fmt.Errorf("volume %s: fscrypt_key=: %w", name, err)
		}
	}
	return nil
}

// addKey adds the key of the volume called name to the filesystem of
// base (made when missing), and returns its identifier.
func (s *Set) addKey(name, base string) (fscrypt.ID, error) {
	master, err := fscrypt.MasterKey(s.defs[name].FscryptKey)
	if err != nil {
		return fscrypt.ID{}, fmt.Errorf("volume %s: fscrypt_key=: %w", name, err)
	}
	defer clear(master)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return fscrypt.ID{}, fmt.Errorf("volume %s: %w", name, err)
	}
	id, err := fscrypt.AddKey(base, master)
	if err != nil {
		return id, fmt.Errorf("volume %s: fscrypt_key=: %w", name, err)
	}
	return id, nil
}

// encryptDir makes dir encrypted with the key of id: a new or empty
// directory is given the policy; one encrypted with another key, or
// holding files not encrypted, is refused, or emptied first with reset.
func (s *Set) encryptDir(name, dir string, id fscrypt.ID, reset bool) error {
	err := os.Mkdir(dir, 0o755)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err != nil {
		have, encrypted, err := fscrypt.Policy(dir)
		if err != nil {
			return err
		}
		if encrypted && have == id {
			return nil
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		switch {
		case !reset && encrypted:
			return fmt.Errorf("%s is encrypted with another key (%s, not the given key's %s); fscrypt_reset_key empties it for the new key", dir, have, id)
		case !reset && len(entries) > 0:
			return fmt.Errorf("%s holds files that are not encrypted; fscrypt_reset_key empties it to encrypt it", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		if len(entries) > 0 {
			fmt.Fprintf(s.opts.Log, "volume %s: fscrypt_reset_key: %s emptied, to be encrypted with the given key\n", name, dir)
		}
	}
	return fscrypt.SetPolicy(dir, id)
}

// unlock adds the key that an earlier boot's dirty volume in base is
// encrypted with, from this boot's fscrypt_key= of the same volume.
func (s *Set) unlock(d *dirtyVolume) error {
	_, encrypted, err := fscrypt.Policy(filepath.Join(d.base, "data"))
	if err != nil || !encrypted {
		return err
	}
	if s.defs[d.entry.Volume].FscryptKey == nil {
		return fmt.Errorf("%s, encrypted on the disk with its fscrypt_key=, which this boot does not give", d.pending())
	}
	_, err = s.addKey(d.entry.Volume, d.base)
	return err
}

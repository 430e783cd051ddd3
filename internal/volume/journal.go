package volume

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ociboot/ociboot/internal/atomicfile"
	"github.com/ociboot/ociboot/internal/bootcfg"
)

// The dirty journal. A volume with a push destination carries NAME/dirty
// from before a container may write to it until a push that started once
// every container had stopped has completed: where it is to be pushed,
// with which options, since when, and why its last push failed. The
// entry is replaced atomically, so a power cut leaves the old one or the
// new one. The next boot pushes a dirty volume before anything else, and
// expiration never deletes one.

// journalFile is the entry's name in a volume's directory.
const journalFile = "dirty"

// entry is a dirty volume's journal entry.
type entry struct {
	// Volume is the volume's name.
	Volume string `json:"volume"`
	// PushTo is where the volume goes; its alias names an endpoint of the
	// boot that pushes it (its keys are never written down).
	PushTo bootcfg.Bucket `json:"push_to"`
	// Options are the push's options.
	Options SyncOptions `json:"options"`
	// Encrypted says the objects are encrypted with the volume's
	// encrypt_key= (SSE-C), which is never written down: the boot that
	// pushes the volume must give it again.
	Encrypted bool `json:"encrypted,omitempty"`
	// Since is when the volume was first handed to a container after its
	// last complete push.
	Since time.Time `json:"since"`
	// Error is why the last push failed ("": none has failed).
	Error string `json:"error,omitempty"`
}

// dirtyVolume is a volume with a journal entry.
type dirtyVolume struct {
	base  string // the volume's directory
	entry entry
	// earlier says the entry was there at Open: a previous boot left it.
	earlier bool
	// unreadable says why the entry could not be read (nil: it was).
	unreadable error
}

// where says where the volume goes, for messages.
func (d *dirtyVolume) where() string { return d.entry.PushTo.String() }

// since says since when it is dirty, for messages.
func (d *dirtyVolume) since() string { return d.entry.Since.UTC().Format(time.RFC3339) }

// pending says what a dirty volume holds, for messages.
func (d *dirtyVolume) pending() string {
	if d.unreadable != nil {
		return fmt.Sprintf("what an earlier boot did not push, but %v", d.unreadable)
	}
	what := fmt.Sprintf("what was written from %s on, not pushed to %s", d.since(), d.where())
	if d.entry.Error != "" {
		what += " (" + d.entry.Error + ")"
	}
	return what
}

// failed records why a push failed in the entry, and returns err (with
// the journal's own error, if it could not be written).
func (d *dirtyVolume) failed(err error) error {
	d.entry.Error = err.Error()
	if werr := d.write(); werr != nil {
		return errors.Join(err, werr)
	}
	return err
}

// write records the entry.
func (d *dirtyVolume) write() error {
	data, err := json.Marshal(d.entry)
	if err != nil {
		return fmt.Errorf("volume %s: journal: %w", d.entry.Volume, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(d.base, journalFile), data, 0o600); err != nil {
		return fmt.Errorf("volume %s: journal: %w", d.entry.Volume, err)
	}
	return nil
}

// clear removes the entry: the volume is pushed.
func (d *dirtyVolume) clear() error {
	err := os.Remove(filepath.Join(d.base, journalFile))
	if err == nil {
		err = atomicfile.SyncDir(d.base)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("volume %s: journal: %w", d.entry.Volume, err)
	}
	return nil
}

// readJournal returns the dirty volumes under base, which earlier boots
// left. A volume whose entry cannot be read is among them, unreadable:
// no boot pushes it, deletes it or hands it to a container.
func readJournal(base string) ([]*dirtyVolume, error) {
	files, err := filepath.Glob(filepath.Join(base, "*", journalFile))
	if err != nil {
		return nil, fmt.Errorf("volumes: journal: %w", err)
	}
	var out []*dirtyVolume
	for _, f := range files {
		d := &dirtyVolume{base: filepath.Dir(f), earlier: true}
		data, err := os.ReadFile(f)
		if err == nil {
			err = json.Unmarshal(data, &d.entry)
		}
		if err == nil && (d.entry.Volume != filepath.Base(d.base) || d.entry.PushTo.IsZero()) {
			err = errors.New("it does not name this volume and where it goes")
		}
		if err != nil {
			d.entry = entry{Volume: filepath.Base(d.base)}
			d.unreadable = fmt.Errorf("its journal entry %s is unreadable (%v)", f, err)
		}
		out = append(out, d)
	}
	return out, nil
}

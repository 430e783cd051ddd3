package netboot

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ParseMAC reads a MAC address written with ':' or '-' between its bytes,
// or none, in either case, and returns it as iPXE's ${mac:hexhyp} and
// pxelinux write it: lower-case bytes joined by '-'.
func ParseMAC(s string) (string, error) {
	raw := strings.NewReplacer(":", "", "-", "").Replace(strings.ToLower(s))
	b, err := hex.DecodeString(raw)
	if err != nil || len(b) != 6 || len(s) != 12 && len(s) != 17 {
		return "", fmt.Errorf("%q is not a MAC address (expected 6 bytes in hex, such as 52:54:00:12:34:56 or 52-54-00-12-34-56)", s)
	}
	parts := make([]string, 6)
	for i := range b {
		parts[i] = hex.EncodeToString(b[i : i+1])
	}
	return strings.Join(parts, "-"), nil
}

// Machine is what one machine boots with.
type Machine struct {
	MAC string // as ParseMAC returns it
	// Source names where the settings came from: the machine's own files,
	// a group's, "default.cmdline" or the server's default.
	Source string
	// Cmdline is the kernel command line.
	Cmdline string
	// ExtraArgs is the file of command line fetched through
	// extra_args_url, "" when the machine has none.
	ExtraArgs string
}

// Config directory file names: MAC.cmdline, MAC.extra_args,
// GROUP.macs, GROUP.cmdline, GROUP.extra_args, default.cmdline.
const (
	cmdlineExt   = ".cmdline"
	extraArgsExt = ".extra_args"
	macsExt      = ".macs"
	defaultName  = "default"
)

// lookup finds the settings of the machine mac in the config directory
// dir (read now: edits apply to the next boot), falling back to
// fallback, the server's default command line. A machine's own files
// come first, then the group whose .macs file lists it, then
// default.cmdline. A MAC listed by two groups, or a .macs file that is
// not a list of MACs, is an error naming the files.
func lookup(dir, mac, fallback string) (Machine, error) {
	m := Machine{MAC: mac, Source: "the server's --cmdline", Cmdline: fallback}
	if dir == "" {
		return m, nil
	}
	group, err := groupOf(dir, mac)
	if err != nil {
		return m, err
	}
	for _, name := range []string{mac, group, defaultName} {
		if name == "" {
			continue
		}
		cmdline, err := readCmdline(filepath.Join(dir, name+cmdlineExt))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return m, err
		}
		m.Source, m.Cmdline = name+cmdlineExt, cmdline
		break
	}
	for _, name := range []string{mac, group} {
		if name == "" {
			continue
		}
		p := filepath.Join(dir, name+extraArgsExt)
		if _, err := os.Stat(p); err == nil {
			m.ExtraArgs = p
			break
		}
	}
	return m, nil
}

// groupOf returns the group whose .macs file lists mac, "" for none.
func groupOf(dir, mac string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*"+macsExt))
	if err != nil {
		return "", err
	}
	slices.Sort(files)
	var groups []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("machines: %w", err)
		}
		for n, line := range strings.Split(string(data), "\n") {
			line, _, _ = strings.Cut(line, "#")
			for _, word := range strings.Fields(line) {
				m, err := ParseMAC(word)
				if err != nil {
					return "", fmt.Errorf("machines: %s line %d: %w", f, n+1, err)
				}
				if m == mac {
					groups = append(groups, strings.TrimSuffix(filepath.Base(f), macsExt))
				}
			}
		}
	}
	switch len(groups) {
	case 0:
		return "", nil
	case 1:
		return groups[0], nil
	}
	return "", fmt.Errorf("machines: %s is listed by %d groups (%s): list it in one", mac, len(groups), strings.Join(groups, ", "))
}

// readCmdline reads a command line file: its lines joined by spaces,
// comments (from '#' at the start of a line) and blank lines left out.
func readCmdline(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var words []string
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		words = append(words, line)
	}
	return strings.Join(words, " "), nil
}

package trust

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ociboot/ociboot/internal/signature"
)

// Dir is where `ociboot build` writes the keys (each as its NAME) and the
// policy (PolicyFile) into the initramfs, and where PID 1 reads them.
const Dir = "/etc/ociboot/verify"

// PolicyFile is the policy's name in Dir.
const PolicyFile = "policy.json"

// Load reads the keys of keyFiles, each named by its base name, and the
// policy of policyFile ("": DefaultPolicy, when there are keys).
func Load(keyFiles []string, policyFile string) (*Trust, error) {
	var keys []signature.Key
	for _, f := range keyFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--verify-key: %w", err)
		}
		name := filepath.Base(f)
		if name == PolicyFile {
			return nil, fmt.Errorf("--verify-key %s: a key may not be named %s", f, PolicyFile)
		}
		k, err := signature.ParseKey(name, data)
		if err != nil {
			return nil, fmt.Errorf("--verify-key %s: %w", f, err)
		}
		keys = append(keys, k)
	}
	p := Policy{}
	switch {
	case policyFile != "":
		data, err := os.ReadFile(policyFile)
		if err != nil {
			return nil, fmt.Errorf("--verify-policy: %w", err)
		}
		if p, err = ParsePolicy(policyFile, data); err != nil {
			return nil, fmt.Errorf("--verify-policy: %w", err)
		}
	case len(keys) > 0:
		p = DefaultPolicy()
	}
	return New(keys, p)
}

// Files are the files of Dir that hold t: its keys by name, in PEM, and
// the policy; none when t checks nothing.
func (t *Trust) Files() (map[string][]byte, error) {
	if len(t.keys) == 0 {
		return nil, nil
	}
	files := map[string][]byte{}
	for _, k := range t.keys {
		files[k.Name] = k.PEM()
	}
	p, err := json.MarshalIndent(t.policy, "", "  ")
	if err != nil {
		return nil, err
	}
	files[PolicyFile] = append(p, '\n')
	return files, nil
}

// ReadDir reads the keys and policy Files wrote in dir; a dir that does
// not exist checks nothing, keys without a policy file require a
// signature everywhere. Errors name the file.
func ReadDir(dir string) (*Trust, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return New(nil, Policy{})
	}
	if err != nil {
		return nil, err
	}
	var keys []signature.Key
	p, havePolicy := Policy{}, false
	for _, e := range entries {
		file := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		if e.Name() == PolicyFile {
			if p, err = ParsePolicy(file, data); err != nil {
				return nil, err
			}
			havePolicy = true
			continue
		}
		k, err := signature.ParseKey(e.Name(), data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		keys = append(keys, k)
	}
	if !havePolicy && len(keys) > 0 {
		p = DefaultPolicy() // keys alone: as ociboot build --verify-key writes it
	}
	t, err := New(keys, p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return t, nil
}

// Describe says what t checks, a line each, for the build report.
func (t *Trust) Describe() []string {
	if len(t.keys) == 0 {
		return nil
	}
	var lines []string
	for _, k := range t.keys {
		lines = append(lines, "key "+k.String())
	}
	if d := t.policy.Default; d != nil {
		lines = append(lines, "default: "+describeRule(*d))
	} else {
		lines = append(lines, "default: accept")
	}
	for _, s := range slices.Sorted(maps.Keys(t.policy.Scopes)) {
		lines = append(lines, fmt.Sprintf("scope %s: %s", s, describeRule(t.policy.Scopes[s])))
	}
	if t.policy.CmdlineMayWarn {
		lines = append(lines, "ociboot.verify=warn may weaken require to warn")
	} else {
		lines = append(lines, "ociboot.verify=warn is refused")
	}
	return lines
}

func describeRule(r Rule) string {
	keys := "any key"
	if len(r.Keys) > 0 {
		keys = strings.Join(r.Keys, ", ")
	}
	if r.Mode == Accept {
		return string(r.Mode)
	}
	return fmt.Sprintf("%s (%s)", r.Mode, keys)
}

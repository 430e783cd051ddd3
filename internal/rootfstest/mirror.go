package rootfstest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// debianMirror returns the Debian archive apt uses here for suite (see
// mirrorFor), else DefaultMirror.
func debianMirror(suite string) string {
	var deb822, oneLine []string
	sources, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	lists, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	for _, f := range sources {
		if b, err := os.ReadFile(f); err == nil {
			deb822 = append(deb822, string(b))
		}
	}
	for _, f := range append([]string{"/etc/apt/sources.list"}, lists...) {
		if b, err := os.ReadFile(f); err == nil {
			oneLine = append(oneLine, string(b))
		}
	}
	if m := mirrorFor(suite, deb822, oneLine); m != "" {
		return m
	}
	return DefaultMirror
}

// aptSource is one "deb" source: its archive URIs and suites.
type aptSource struct {
	uris, suites []string
}

// mirrorFor picks, from apt source files in deb822 and one-line form, the
// first http(s) archive of a "deb" source that lists suite itself, else
// the first http(s) archive whose path ends in /debian (not
// debian-security, say), else "". The URI is returned without a trailing
// slash.
func mirrorFor(suite string, deb822, oneLine []string) string {
	var srcs []aptSource
	for _, text := range deb822 {
		srcs = append(srcs, parseDeb822(text)...)
	}
	for _, text := range oneLine {
		srcs = append(srcs, parseOneLine(text)...)
	}
	web := func(u string) bool {
		return strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")
	}
	for _, s := range srcs {
		if slices.Contains(s.suites, suite) {
			for _, u := range s.uris {
				if web(u) {
					return strings.TrimRight(u, "/")
				}
			}
		}
	}
	for _, s := range srcs {
		for _, u := range s.uris {
			if u = strings.TrimRight(u, "/"); web(u) && strings.HasSuffix(u, "/debian") {
				return u
			}
		}
	}
	return ""
}

// parseDeb822 reads the enabled "deb" stanzas of a .sources file.
func parseDeb822(text string) []aptSource {
	var out []aptSource
	for _, stanza := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n\n") {
		fields := map[string]string{}
		key := ""
		for _, line := range strings.Split(stanza, "\n") {
			switch {
			case strings.HasPrefix(line, "#"):
			case strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t"): // continuation
				if key != "" {
					fields[key] += " " + strings.TrimSpace(line)
				}
			default:
				k, v, ok := strings.Cut(line, ":")
				if !ok {
					continue
				}
				key = strings.ToLower(strings.TrimSpace(k))
				fields[key] = strings.TrimSpace(v)
			}
		}
		if !slices.Contains(strings.Fields(fields["types"]), "deb") || strings.EqualFold(fields["enabled"], "no") {
			continue
		}
		out = append(out, aptSource{uris: strings.Fields(fields["uris"]), suites: strings.Fields(fields["suites"])})
	}
	return out
}

// parseOneLine reads the "deb" lines of a sources.list file:
// "deb [OPTIONS] URI SUITE [COMPONENT...]".
func parseOneLine(text string) []aptSource {
	var out []aptSource
	for _, line := range strings.Split(text, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") { // options, which may hold spaces
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) < 2 {
			continue
		}
		out = append(out, aptSource{uris: f[:1], suites: f[1:2]})
	}
	return out
}

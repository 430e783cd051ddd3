package console

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Section is a GitLab CI section read from a console log.
type Section struct {
	Name       string
	Start, End int64 // Unix seconds, as the markers say
	Collapsed  bool
	Depth      int // 0 for the outermost
}

// gitlabMarker matches GitLab's section markers: ESC[0K, the marker,
// CR, ESC[0K. GitLab's names are letters, digits, '_', '.' and '-'.
var gitlabMarker = regexp.MustCompile(`\x1b\[0Ksection_(start|end):([0-9]+):([A-Za-z0-9_.-]+)(\[[^\]\r]*\])?\r\x1b\[0K`)

// ReadSections returns the sections of a console log, in the order they
// start, checking that the markers are well formed and balanced: every
// section ends, inner sections before outer ones, no earlier than it
// started.
func ReadSections(log string) ([]Section, error) {
	var out []Section
	var open []int // indexes into out
	for _, m := range gitlabMarker.FindAllStringSubmatch(log, -1) {
		kind, name, opts := m[1], m[3], m[4]
		ts, err := strconv.ParseInt(m[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("section %s: timestamp %q: %w", name, m[2], err)
		}
		if kind == "start" {
			if opts != "" && opts != "[collapsed=true]" {
				return nil, fmt.Errorf("section %s: options %s: GitLab knows [collapsed=true]", name, opts)
			}
			open = append(open, len(out))
			out = append(out, Section{Name: name, Start: ts, Collapsed: opts != "", Depth: len(open) - 1})
			continue
		}
		if opts != "" {
			return nil, fmt.Errorf("section %s: an end marker has no options", name)
		}
		if len(open) == 0 {
			return nil, fmt.Errorf("section %s ends but is not open", name)
		}
		inner := &out[open[len(open)-1]]
		if inner.Name != name {
			return nil, fmt.Errorf("section %s ends inside section %s, which is still open", name, inner.Name)
		}
		if ts < inner.Start {
			return nil, fmt.Errorf("section %s ends (%d) before it starts (%d)", name, ts, inner.Start)
		}
		inner.End = ts
		open = open[:len(open)-1]
	}
	if len(open) > 0 {
		return nil, fmt.Errorf("section %s never ends", out[open[len(open)-1]].Name)
	}
	// Well formed means no marker was left half-written.
	if n, m := countSubstr(log, "section_start:")+countSubstr(log, "section_end:"), len(gitlabMarker.FindAllStringIndex(log, -1)); n != m {
		return nil, fmt.Errorf("%d section markers, of which %d are well formed", n, m)
	}
	return out, nil
}

func countSubstr(s, sub string) int { return strings.Count(s, sub) }

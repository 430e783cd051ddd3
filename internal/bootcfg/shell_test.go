package bootcfg

import (
	"bytes"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

var shellSplitTests = []struct {
	in   string
	want []string
}{
	{"", nil},
	{"  \t\n ", nil},
	{"alpine sh -c 'echo hi; exit 3'", []string{"alpine", "sh", "-c", "echo hi; exit 3"}},
	{`a  b	c`, []string{"a", "b", "c"}},
	{`''`, []string{""}},
	{`a '' b`, []string{"a", "", "b"}},
	{`""`, []string{""}},
	{`'a'"b"c`, []string{"abc"}},
	{`'it'\''s'`, []string{"it's"}},
	{`'a\b'`, []string{`a\b`}},
	{`"a\\b"`, []string{`a\b`}},
	{`"a\"b"`, []string{`a"b`}},
	{`"\$HOME \` + "`x\\`" + `"`, []string{"$HOME `x`"}},
	{`"a\b\n"`, []string{`a\b\n`}},
	{"\"a\\\nb\"", []string{"ab"}},
	{"a\\\nb", []string{"ab"}},
	{`a\ b`, []string{"a b"}},
	{`\'a`, []string{"'a"}},
	{`\\`, []string{`\`}},
	{`a\`, []string{`a\`}},
	{`"it's"`, []string{"it's"}},
	{`'say "hi"'`, []string{`say "hi"`}},
	{"a#b #c ;d|e&", []string{"a#b", "#c", ";d|e&"}},
	{`-e "MSG=hello world" alpine`, []string{"-e", "MSG=hello world", "alpine"}},
}

func TestShellSplit(t *testing.T) {
	for _, tt := range shellSplitTests {
		got, err := ShellSplit(tt.in)
		if err != nil {
			t.Errorf("ShellSplit(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ShellSplit(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestShellSplitMatchesSh checks the table against the system's POSIX shell
// (dash on Debian), which splits the same text with eval.
func TestShellSplitMatchesSh(t *testing.T) {
	for _, tt := range shellSplitTests {
		if strings.ContainsAny(tt.in, "#;|&") { // sh treats these as syntax
			continue
		}
		out, err := exec.Command("/bin/sh", "-c", `eval "set -- $1"; for w in "$@"; do printf '%s\0' "$w"; done`, "sh", tt.in).Output()
		if err != nil {
			t.Fatalf("sh on %q: %v", tt.in, err)
		}
		var sh []string
		for _, w := range bytes.SplitAfter(out, []byte{0}) {
			if len(w) > 0 {
				sh = append(sh, string(w[:len(w)-1]))
			}
		}
		if !reflect.DeepEqual(sh, tt.want) {
			t.Errorf("sh splits %q into %q, the table says %q", tt.in, sh, tt.want)
		}
	}
}

func TestShellSplitErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{`alpine sh -c 'echo hi`, "unterminated single quote at byte 13"},
		{`a "b`, "unterminated double quote at byte 2"},
		{`"a\"`, "unterminated double quote at byte 0"},
		{`'a'"`, "unterminated double quote at byte 3"},
	}
	for _, tt := range tests {
		got, err := ShellSplit(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ShellSplit(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	words := []string{"sh", "-c", "echo it's; exit 3", "", "A=b", "a\nb", `\`}
	got := ShellQuote(words)
	want := `sh -c 'echo it'\''s; exit 3' '' A=b 'a` + "\n" + `b' '\'`
	if got != want {
		t.Errorf("ShellQuote = %q, want %q", got, want)
	}
}

func FuzzShellSplit(f *testing.F) {
	for _, tt := range shellSplitTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := ShellSplit(s)
		if err != nil {
			if !strings.Contains(err.Error(), "unterminated") {
				t.Fatalf("ShellSplit(%q): unexpected error %v", s, err)
			}
			return
		}
		again, err := ShellSplit(ShellQuote(words))
		if err != nil {
			t.Fatalf("ShellSplit(ShellQuote(%q)): %v", words, err)
		}
		if len(words) == 0 {
			words = nil
		}
		if !reflect.DeepEqual(again, words) {
			t.Fatalf("round trip of %q through %q gave %q", words, ShellQuote(words), again)
		}
	})
}

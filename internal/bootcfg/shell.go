package bootcfg

import (
	"fmt"
	"strings"
)

// ShellSplit splits s into words the way a POSIX shell does, without any
// expansion: words are separated by unquoted spaces, tabs and newlines;
// single quotes keep everything up to the next single quote; double quotes
// keep everything up to the next unescaped double quote, a backslash in them
// escaping only \ " $ ` and newline; outside quotes a backslash keeps the next
// character (backslash-newline joins lines, a final backslash stays as is).
// There are no comments and no operators: `#`, `;`, `|` and `&` are ordinary
// characters. An unterminated quote is an error.
func ShellSplit(s string) ([]string, error) {
	var (
		words  []string
		word   strings.Builder
		inWord bool // a word has started, even if it is still empty ('')
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case c == '\\':
			inWord = true
			switch {
			case i+1 == len(s):
				word.WriteByte(c)
			case s[i+1] == '\n':
				i++
			default:
				i++
				word.WriteByte(s[i])
			}
		case c == '\'':
			inWord = true
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated single quote at byte %d of %q", i, s)
			}
			word.WriteString(s[i+1 : i+1+end])
			i += end + 1
		case c == '"':
			inWord = true
			end, err := doubleQuoted(s, i, &word)
			if err != nil {
				return nil, err
			}
			i = end
		default:
			inWord = true
			word.WriteByte(c)
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}

// doubleQuoted writes to word the contents of the double-quoted string that
// opens at s[open] and returns the index of its closing quote.
func doubleQuoted(s string, open int, word *strings.Builder) (int, error) {
	for i := open + 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return i, nil
		case '\\':
			if i+1 < len(s) && strings.IndexByte("\\\"$`\n", s[i+1]) >= 0 {
				i++
				if s[i] != '\n' {
					word.WriteByte(s[i])
				}
				continue
			}
			word.WriteByte(c)
		default:
			word.WriteByte(c)
		}
	}
	return 0, fmt.Errorf("unterminated double quote at byte %d of %q", open, s)
}

// ShellQuote joins words with spaces, single-quoting those that need it, so
// that ShellSplit gives the words back. It is meant for showing commands in
// messages.
func ShellQuote(words []string) string {
	quoted := make([]string, len(words))
	for i, w := range words {
		if w != "" && strings.Trim(w, shellSafe) == "" {
			quoted[i] = w
			continue
		}
		quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(quoted, " ")
}

// shellSafe are the characters that never need quoting.
const shellSafe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-"

package bootcfg

import (
	"strconv"
	"strings"
)

// Param is one kernel command-line parameter: `key`, or `key=value`.
type Param struct {
	Key      string
	Value    string
	HasValue bool
}

// String writes the parameter for messages: key, or key="value" with the
// value quoted Go-style.
func (p Param) String() string {
	if !p.HasValue {
		return p.Key
	}
	return p.Key + "=" + strconv.Quote(p.Value)
}

// SplitKernelCmdline splits a kernel command line (such as the contents of
// /proc/cmdline) into parameters exactly as the kernel's next_arg() does:
// parameters are separated by whitespace outside double quotes, every `"`
// toggles quoting, a value that starts with `"` loses that quote and the
// parameter's last character if it is a `"`, and a parameter that starts
// with `"` loses that quote and its last character if it is a `"`. Like the
// kernel, it treats byte 0xA0 as whitespace and stops at a NUL byte.
func SplitKernelCmdline(s string) []Param {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	var params []Param
	s = skipSpaces(s)
	for s != "" {
		var p Param
		p, s = nextArg(s)
		params = append(params, p)
	}
	return params
}

// nextArg mirrors the kernel's next_arg() on a Go string: it returns the first
// parameter of args and what follows it with leading whitespace removed.
// Where the C code writes a NUL into the string, end records the new end of
// the parameter.
func nextArg(args string) (Param, string) {
	inQuote, quoted := false, false
	if args[0] == '"' {
		args = args[1:]
		inQuote, quoted = true, true
	}
	i, equals := 0, 0 // as in the kernel, 0 means "no '=' seen"
	for ; i < len(args); i++ {
		c := args[i]
		if isSpace(c) && !inQuote {
			break
		}
		if equals == 0 && c == '=' {
			equals = i
		}
		if c == '"' {
			inQuote = !inQuote
		}
	}
	rest := ""
	if i < len(args) {
		rest = skipSpaces(args[i+1:])
	}

	end := i
	valStart := 0
	if equals != 0 {
		valStart = equals + 1
		if valStart < i && args[valStart] == '"' {
			valStart++
			if args[i-1] == '"' {
				end = i - 1
			}
		}
	}
	if quoted && i > 0 && end == i && args[i-1] == '"' {
		end = i - 1
	}

	if equals == 0 {
		return Param{Key: args[:end]}, rest
	}
	return Param{Key: args[:equals], Value: args[valStart:max(valStart, end)], HasValue: true}, rest
}

// isSpace is the kernel's isspace(): its ctype table also counts 0xA0
// (Latin-1 no-break space) as whitespace.
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0xa0:
		return true
	}
	return false
}

func skipSpaces(s string) string {
	for s != "" && isSpace(s[0]) {
		s = s[1:]
	}
	return s
}

// MaskSecrets returns the kernel command line cmdline with the secret
// values of ociboot's parameters (the password of a registry_auth)
// replaced by "***", for processes that may read it but must not learn
// them (containers see it as /proc/cmdline). Parameters are separated by
// single spaces in the result; everything else is kept as written.
func MaskSecrets(cmdline string) string {
	if i := strings.IndexByte(cmdline, 0); i >= 0 {
		cmdline = cmdline[:i]
	}
	defs := knownParams()
	var out []string
	for _, tok := range rawArgs(cmdline) {
		p, _ := nextArg(tok)
		if i := findParam(defs, p.Key); i >= 0 && defs[i].mask != nil && p.HasValue && (defs[i].secret || defs[i].mask(p.Value) != p.Value) {
			// The kernel's quoting has no escapes: a value holding a
			// quote is masked whole.
			v := defs[i].mask(p.Value)
			if strings.Contains(v, `"`) {
				v = "***"
			}
			tok = p.Key + `="` + v + `"`
		}
		out = append(out, tok)
	}
	return strings.Join(out, " ")
}

// rawArgs splits s into its parameters as written, quotes included, with
// the kernel's rules for where one ends (whitespace outside quotes).
func rawArgs(s string) []string {
	var args []string
	s = skipSpaces(s)
	for s != "" {
		inQuote := false
		i := 0
		for ; i < len(s); i++ {
			if isSpace(s[i]) && !inQuote {
				break
			}
			if s[i] == '"' {
				inQuote = !inQuote
			}
		}
		args = append(args, s[:i])
		s = skipSpaces(s[i:])
	}
	return args
}

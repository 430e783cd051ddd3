package kmod

// globMatch reports whether name matches the shell pattern, as fnmatch(3)
// with no flags does (what modprobe uses for aliases): '*' matches any run
// of bytes, '/' included; '?' matches one byte; "[...]" matches a set, with
// ranges and '!' or '^' negation. A malformed bracket matches a literal '['.
func globMatch(pattern, name string) bool {
	p, n := 0, 0
	starP, starN := -1, 0
	for n < len(name) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				starP, starN = p, n
				p++
				continue
			case '?':
				p++
				n++
				continue
			case '[':
				if ok, width, valid := matchBracket(pattern[p:], name[n]); valid {
					if ok {
						p += width
						n++
						continue
					}
				} else if name[n] == '[' {
					p++
					n++
					continue
				}
			default:
				if c == name[n] {
					p++
					n++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		// Let the last '*' swallow one more byte and retry.
		starN++
		p, n = starP+1, starN
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchBracket matches c against the bracket expression at the start of
// pattern. It returns whether c matched, the expression's width, and
// whether the expression was well formed (closed by ']').
func matchBracket(pattern string, c byte) (matched bool, width int, valid bool) {
	i := 1
	negate := false
	if i < len(pattern) && (pattern[i] == '!' || pattern[i] == '^') {
		negate = true
		i++
	}
	first := true
	for i < len(pattern) {
		lo := pattern[i]
		if lo == ']' && !first {
			return matched != negate, i + 1, true
		}
		first = false
		hi := lo
		if i+2 < len(pattern) && pattern[i+1] == '-' && pattern[i+2] != ']' {
			hi = pattern[i+2]
			i += 2
		}
		if lo <= c && c <= hi {
			matched = true
		}
		i++
	}
	return false, 0, false
}

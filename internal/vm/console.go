package vm

import (
	"bytes"
	"io"
	"strconv"
	"strings"
)

// console passes the serial stream on to out as it comes and scans its
// lines for the status and shutdown lines.
type console struct {
	out     io.Writer
	res     *Result
	partial []byte
}

// Write never fails: a failing out must not stop the VM, so its errors are
// ignored.
func (c *console) Write(p []byte) (int, error) {
	if c.out != nil {
		_, _ = c.out.Write(p)
	}
	c.partial = append(c.partial, p...)
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		c.line(string(c.partial[:i]))
		c.partial = c.partial[i+1:]
	}
	// Keep a line that never ends from growing without bound.
	if len(c.partial) > 64<<10 {
		c.flush()
	}
	return len(p), nil
}

// flush scans what is left of an unfinished line.
func (c *console) flush() {
	if len(c.partial) > 0 {
		c.line(string(c.partial))
		c.partial = nil
	}
}

func (c *console) line(s string) {
	s = strings.TrimRight(s, "\r")
	if status, ok := parseStatus(s); ok {
		c.res.Status, c.res.StatusSeen = status, true
	}
	if strings.Contains(s, SafeLine) {
		c.res.SafeSeen = true
	}
	if strings.HasPrefix(s, HandoverPrefix) {
		c.res.HandedOver = true
	}
	c.res.Lines = append(c.res.Lines, s)
	if len(c.res.Lines) > maxLines {
		c.res.Lines = c.res.Lines[1:] // append reallocates, so memory stays bounded
	}
}

// parseStatus finds StatusPrefix in line and returns the number after it.
func parseStatus(line string) (int, bool) {
	i := strings.Index(line, StatusPrefix)
	if i < 0 {
		return 0, false
	}
	rest := line[i+len(StatusPrefix):]
	end := 0
	if strings.HasPrefix(rest, "-") {
		end = 1
	}
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	n, err := strconv.Atoi(rest[:end])
	if err != nil {
		return 0, false
	}
	return n, true
}

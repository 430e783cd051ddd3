package vm

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"time"
)

// monitorPrompt ends each answer of QEMU's human monitor.
const monitorPrompt = "(qemu) "

// MonitorCommand runs command (such as "sendkey ctrl-alt-delete") on the
// human monitor of a VM run with Config.Monitor set to socket, and returns
// what the monitor answered.
func MonitorCommand(ctx context.Context, socket, command string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return "", fmt.Errorf("vm: monitor: %w", err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	} else {
		conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	r := bufio.NewReader(conn)
	// The banner, then the first prompt.
	if _, err := readUntil(r, monitorPrompt); err != nil {
		return "", fmt.Errorf("vm: monitor: %w", err)
	}
	if _, err := fmt.Fprintf(conn, "%s\n", command); err != nil {
		return "", fmt.Errorf("vm: monitor: %w", err)
	}
	answer, err := readUntil(r, monitorPrompt)
	if err != nil {
		return "", fmt.Errorf("vm: monitor: %s: %w", command, err)
	}
	return answer, nil
}

// readUntil reads from r up to and including end, and returns what came
// before it.
func readUntil(r *bufio.Reader, end string) (string, error) {
	var b strings.Builder
	for !strings.HasSuffix(b.String(), end) {
		c, err := r.ReadByte()
		if err != nil {
			return b.String(), err
		}
		b.WriteByte(c)
	}
	return strings.TrimSuffix(b.String(), end), nil
}

package vm

import (
	"io"
	"net"
	"os"
	"strconv"
)

// relayEnv, set in QEMU's environment, marks the relay processes that QEMU
// starts (they inherit it) for guestfwd rules: "PROGRAM PORT", with the guest
// connection on standard input and output.
const relayEnv = "OCIBOOT_VM_RELAY"

// init turns this process into a relay when QEMU started it as one. Doing it
// here lets every program that uses Run (ociboot, test binaries) serve as
// its own relay without any wiring. Nothing may be written to standard error:
// it is the guest's connection too.
func init() {
	if os.Getenv(relayEnv) == "1" && len(os.Args) == 2 && os.Getpid() != 1 {
		os.Exit(relayMain(os.Args[1]))
	}
}

// relayMain relays the connection on standard input to 127.0.0.1:port and
// returns the process exit status.
func relayMain(port string) int {
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return 2
	}
	guest, err := net.FileConn(os.Stdin)
	if err != nil {
		return 1
	}
	host, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		guest.Close()
		return 1
	}
	relay(guest, host)
	return 0
}

// relay copies between a and b both ways, passing a half-close on, until
// both directions are done; then it closes both.
func relay(a, b net.Conn) {
	done := make(chan struct{})
	go func() {
		pipe(b, a)
		close(done)
	}()
	pipe(a, b)
	<-done
	a.Close()
	b.Close()
}

// pipe copies src to dst. At src's end it half-closes dst; on an error it
// closes both, so that the other direction ends too.
func pipe(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil && cw.CloseWrite() == nil {
		return
	}
	dst.Close()
	src.Close()
}

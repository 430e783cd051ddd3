package vm

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
)

// netbootFile is the script slirp's TFTP hands the firmware's iPXE, named
// as the DHCP boot file.
const netbootFile = "boot.ipxe"

// netbootPort checks that u is an http URL on this host's loopback, the
// only place a VM may reach, and returns its port.
func netbootPort(u string) (int, error) {
	p, err := url.Parse(u)
	if err != nil {
		return 0, fmt.Errorf("vm: netboot URL: %w", err)
	}
	port, _ := strconv.Atoi(p.Port())
	if p.Scheme != "http" || (p.Hostname() != "127.0.0.1" && p.Hostname() != "localhost") || port < 1 || port > 65535 {
		return 0, fmt.Errorf("vm: netboot URL %q: want http://127.0.0.1:PORT/PATH (the VM reaches only this host's forwarded ports)", u)
	}
	return port, nil
}

// netbootScript writes, in a new directory, the script that chains u as
// the guest reaches it (GuestHost:PORT), and returns the directory.
func netbootScript(u string) (string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("vm: netboot URL: %w", err)
	}
	p.Host = GuestHost + ":" + p.Port()
	dir, err := os.MkdirTemp("", "ociboot-netboot-")
	if err != nil {
		return "", fmt.Errorf("vm: netboot: %w", err)
	}
	script := "#!ipxe\n# ociboot vm: slirp's TFTP hands this to the firmware's iPXE.\nchain --autofree " + p.String() + "\n"
	if err := os.WriteFile(filepath.Join(dir, netbootFile), []byte(script), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("vm: netboot: %w", err)
	}
	return dir, nil
}

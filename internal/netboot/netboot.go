// Package netboot serves what machines netboot from over HTTP: iPXE
// scripts, the kernel, the initramfs and the unified kernel image, and
// each machine's command line and extra_args, read from a config
// directory on every boot (edits apply to the next boot, no restart).
//
// A machine's iPXE (the firmware's, or one a DHCP server chainloads) is
// pointed at /boot.ipxe; that script chains /boot/MAC.ipxe for the MAC
// of the NIC it booted from, which loads the kernel and initramfs with
// the machine's command line. A machine with an extra_args file gets
// ociboot.extra_args_url pointing at /extra_args/MAC, so that secrets
// travel there and not on the command line (which /proc/cmdline, the
// firmware's screen and the DHCP server's logs show).
//
// The config directory holds, for a machine MAC (52-54-00-12-34-56 or
// 52:54:00:12:34:56) and a group NAME:
//
//	MAC.cmdline       the machine's command line
//	MAC.extra_args    what its extra_args_url serves
//	NAME.macs         the MACs of group NAME, separated by spaces or lines
//	NAME.cmdline      the group's command line
//	NAME.extra_args   the group's extra_args
//	default.cmdline   the command line of machines without one
//
// A .cmdline file's lines are joined by spaces; lines starting with '#'
// are comments.
package netboot

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Paths of the files served, relative to the server's root.
const (
	KernelPath    = "kernel"
	InitramfsPath = "initramfs"
	UKIPath       = "uki.efi"
)

// Config says what a Server serves.
type Config struct {
	// Kernel, Initramfs and UKI are files served at /kernel,
	// /initramfs and /uki.efi; each is opened per request, so a file
	// replaced (renamed over) is served new at once. "" serves none.
	Kernel, Initramfs, UKI string
	// Machines is the config directory; "" gives every machine Cmdline.
	Machines string
	// Cmdline is the command line of machines the config directory says
	// nothing of.
	Cmdline string
	// BaseURL is the server's URL as machines reach it, for the
	// extra_args URL put on command lines (scripts use relative URLs);
	// "" takes it from each request's Host.
	BaseURL string
}

// Server serves netboot requests; see the package comment.
type Server struct {
	cfg Config
}

// New returns a server of cfg, checking that its files are there.
func New(cfg Config) (*Server, error) {
	for _, f := range []struct{ flag, path string }{{"kernel", cfg.Kernel}, {"initramfs", cfg.Initramfs}, {"uki", cfg.UKI}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return nil, fmt.Errorf("--%s: %w", f.flag, err)
		}
	}
	if cfg.Machines != "" {
		if st, err := os.Stat(cfg.Machines); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("--machines %s: not a directory", cfg.Machines)
		}
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	return &Server{cfg: cfg}, nil
}

// bootScript is what every machine starts with: it hands over to the
// script of the NIC it booted from (netX is iPXE's name for it).
const bootScript = `#!ipxe
# ociboot serve: every machine starts here, and goes on with its own script.
chain --autofree boot/${netX/mac:hexhyp}.ipxe
`

// ServeHTTP answers /boot.ipxe, /boot/MAC.ipxe, /extra_args/MAC and the
// files.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "only GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/boot.ipxe":
		serveText(w, r, bootScript)
	case strings.HasPrefix(p, "/boot/") && strings.HasSuffix(p, ".ipxe"):
		s.serveMachine(w, r, strings.TrimSuffix(strings.TrimPrefix(p, "/boot/"), ".ipxe"))
	case strings.HasPrefix(p, "/extra_args/"):
		s.serveExtraArgs(w, r, strings.TrimPrefix(p, "/extra_args/"))
	case p == "/"+KernelPath:
		serveFile(w, r, s.cfg.Kernel)
	case p == "/"+InitramfsPath:
		serveFile(w, r, s.cfg.Initramfs)
	case p == "/"+UKIPath:
		serveFile(w, r, s.cfg.UKI)
	default:
		http.NotFound(w, r)
	}
}

// Machine returns the settings machine mac boots with now.
func (s *Server) Machine(mac string) (Machine, error) {
	m, err := ParseMAC(mac)
	if err != nil {
		return Machine{}, err
	}
	return lookup(s.cfg.Machines, m, s.cfg.Cmdline)
}

// serveMachine answers a machine's boot script: kernel, initramfs and
// command line. When its settings cannot be read, the script says why
// on the machine's screen and retries in 30 s: the fix applies without
// a trip to the machine.
func (s *Server) serveMachine(w http.ResponseWriter, r *http.Request, mac string) {
	if _, err := ParseMAC(mac); err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	m, err := s.Machine(mac)
	if err != nil {
		w.Header().Set("X-Ociboot-Error", err.Error())
		serveText(w, r, fmt.Sprintf("#!ipxe\necho ociboot serve: %s\necho retrying in 30 s\nsleep 30\nchain --autofree %s.ipxe\n", echoSafe(err.Error()), echoSafe(mac)))
		return
	}
	if s.cfg.Kernel == "" || s.cfg.Initramfs == "" {
		serveText(w, r, "#!ipxe\necho ociboot serve: no --kernel and --initramfs to boot\nsleep 30\nchain --autofree "+m.MAC+".ipxe\n")
		return
	}
	cmdline := m.Cmdline
	if m.ExtraArgs != "" {
		cmdline = strings.TrimSpace(cmdline + " ociboot.extra_args_url=" + s.baseURL(r) + "/extra_args/" + m.MAC)
	}
	// initrd= names the initramfs for the kernel's EFI stub (UEFI
	// iPXE); a BIOS boot hands it over by the boot protocol. iPXE
	// expands ${...} settings in the command line (${net0/ip}, say).
	kernel := strings.TrimSpace(fmt.Sprintf("kernel ../%s initrd=%s %s", KernelPath, InitramfsPath, cmdline))
	serveText(w, r, fmt.Sprintf("#!ipxe\n# %s: %s\n%s\ninitrd --name %s ../%s\nboot\n",
		m.MAC, m.Source, kernel, InitramfsPath, InitramfsPath))
}

func (s *Server) serveExtraArgs(w http.ResponseWriter, r *http.Request, mac string) {
	m, err := s.Machine(mac)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if m.ExtraArgs == "" {
		http.Error(w, "no extra_args for "+m.MAC, http.StatusNotFound)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	serveFile(w, r, m.ExtraArgs)
}

// baseURL is the server's URL as the machine asking reached it.
func (s *Server) baseURL(r *http.Request) string {
	if s.cfg.BaseURL != "" {
		return s.cfg.BaseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// echoSafe makes a message safe to echo in an iPXE script: one line,
// with no ${...} for iPXE to expand.
func echoSafe(s string) string {
	return strings.NewReplacer("\n", " ", "$", "").Replace(s)
}

func serveText(w http.ResponseWriter, r *http.Request, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	http.ServeContent(w, r, "", time.Time{}, strings.NewReader(text))
}

// serveFile serves the file at path, with Range, opened now.
func serveFile(w http.ResponseWriter, r *http.Request, path string) {
	if path == "" {
		http.NotFound(w, r)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, "cannot open "+filepath.Base(path), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", st.ModTime(), f)
}

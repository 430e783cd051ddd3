package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/fleet"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/netboot"
	"github.com/ociboot/ociboot/internal/registry"
	"github.com/ociboot/ociboot/internal/vm"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

type serveOptions struct {
	listen  string
	images  []string
	stores  []string
	cmdArgs []string
	boot    netboot.Config
	logDir  string
	state   string
	tlsCert string
	tlsKey  string

	upstream     string
	upstreamDir  string
	upstreamAuth string
	upstreamCA   string
}

func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve what a lab netboots from: iPXE scripts, kernel, initramfs, command lines, and images",
		Long: `serve is the one process a lab needs besides DHCP (see docs/netboot.md):

  /boot.ipxe            the iPXE script every machine starts with
  /boot/MAC.ipxe        a machine's kernel, initramfs and command line
  /extra_args/MAC       a machine's extra_args (secrets stay off its command line)
  /kernel /initramfs /uki.efi   the files given
  /v2/                  a read-only registry of the images given (and --upstream's)
  /v1/events            where machines booted with ociboot.report=URL/v1/events
                        send their events; /v1/machines and /v1/boots/ID[/events]
                        say what they are doing (see docs/events.md)
  /fleet/               the fleet page: every machine, its stage and status, live

Each --image NAME[:TAG]=PATH serves PATH as repository NAME: an OCI image
layout (tags from its index.json), a docker-archive tarball (tags from its
manifest.json), or a root filesystem directory, packed into a one-layer
image (TAG defaults to latest; its command is --cmd). --store DIR serves the
images of an ociboot store (ociboot pull --store) under their own names.
Blobs are served from where they lie, never loaded into memory.

With --upstream URL, the registry is also a pull-through cache of that
registry for the repositories not served otherwise: each blob is fetched
from the upstream once, however many machines ask for it at the same time,
streamed to them as it comes, and kept in --upstream-dir. Machines reach it
with ociboot.registry_mirror=docker.io=THIS-HOST:PORT, or by its name.

Machines' command lines come from --machines DIR, read on each boot: see
` + "`docs/netboot.md`" + ` for its files. serve listens on 127.0.0.1 unless told
otherwise; ` + "`ociboot vm --netboot`" + ` boots a VM from it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, unix.SIGTERM)
			defer stop()
			return serve(ctx, cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:5000", "address to listen on")
	f.StringArrayVar(&o.images, "image", nil, "NAME[:TAG]=PATH: serve an OCI layout, a docker-archive or a root filesystem directory as NAME (repeatable)")
	f.StringArrayVar(&o.stores, "store", nil, "serve the images of this ociboot store directory (repeatable)")
	f.StringArrayVar(&o.cmdArgs, "cmd", nil, "default command of images packed from directories (repeat for each argument)")
	f.StringVar(&o.boot.Kernel, "kernel", "", "the kernel machines boot (default with --initramfs: the newest /boot/vmlinuz-*)")
	f.StringVar(&o.boot.Initramfs, "initramfs", "", "the initramfs machines boot (ociboot build)")
	f.StringVar(&o.boot.UKI, "uki", "", "a unified kernel image to serve as /uki.efi (ociboot build --uki)")
	f.StringVar(&o.boot.Machines, "machines", "", "directory of per-machine and per-group command lines and extra_args (read on each boot)")
	f.StringVar(&o.boot.Cmdline, "cmdline", "", "command line of machines --machines says nothing of")
	f.StringVar(&o.boot.BaseURL, "url", "", "this server's URL as machines reach it, for extra_args_url (default: from each request's Host)")
	f.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate (chain) file; with --tls-key")
	f.StringVar(&o.tlsKey, "tls-key", "", "the PEM private key of --tls-cert")
	f.StringVar(&o.state, "state", "", "keep each boot's events (ociboot.report) in DIR/BOOT.jsonl, and read them back on start")
	f.StringVar(&o.logDir, "access-log-dir", "", "also write each machine's requests to DIR/MAC.log (or DIR/ADDRESS.log)")
	f.StringVar(&o.upstream, "upstream", "", "also be a pull-through cache of this registry (https://HOST[:PORT], http:// without TLS)")
	f.StringVar(&o.upstreamDir, "upstream-dir", "", "where --upstream's blobs are kept (default: ociboot/upstream/HOST under the user's cache directory)")
	f.StringVar(&o.upstreamAuth, "upstream-auth", "", "a docker config.json (as docker or podman login write it) with --upstream's credentials")
	f.StringVar(&o.upstreamCA, "upstream-ca-cert", "", "PEM CA certificates --upstream's TLS certificate may chain to, besides the system's")
	return cmd
}

// startMirror makes the registry a pull-through cache of --upstream.
func startMirror(ctx context.Context, o serveOptions, reg *registry.Registry, log io.Writer) error {
	if o.upstream == "" {
		if o.upstreamDir != "" || o.upstreamAuth != "" || o.upstreamCA != "" {
			return fmt.Errorf("--upstream-dir, --upstream-auth and --upstream-ca-cert go with --upstream")
		}
		return nil
	}
	u, err := url.Parse(o.upstream)
	if err != nil || u.Host == "" {
		return fmt.Errorf("--upstream %q: expected https://HOST[:PORT] (http:// without TLS)", o.upstream)
	}
	dir := o.upstreamDir
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("--upstream-dir: none given, and %w", err)
		}
		dir = filepath.Join(cache, "ociboot", "upstream", strings.ReplaceAll(u.Host, ":", "_"))
	}
	mo := registry.MirrorOptions{Upstream: o.upstream, Dir: dir, Log: log}
	if o.upstreamAuth != "" {
		data, err := os.ReadFile(o.upstreamAuth)
		if err != nil {
			return fmt.Errorf("--upstream-auth: %w", err)
		}
		creds, err := image.ParseDockerConfig(data)
		if err != nil {
			return fmt.Errorf("--upstream-auth %s: %w", o.upstreamAuth, err)
		}
		mo.Keychain = image.Keychain(creds)
	}
	if o.upstreamCA != "" {
		pem, err := os.ReadFile(o.upstreamCA)
		if err != nil {
			return fmt.Errorf("--upstream-ca-cert: %w", err)
		}
		if mo.Client, err = fetch.New(fetch.Options{CACerts: pem}); err != nil {
			return fmt.Errorf("--upstream-ca-cert %s: %w", o.upstreamCA, err)
		}
	}
	m, err := registry.NewMirror(ctx, mo)
	if err != nil {
		return fmt.Errorf("--upstream: %w", err)
	}
	reg.SetFallback(m)
	fmt.Fprintf(log, "mirroring %s, keeping its blobs in %s\n", o.upstream, dir)
	return nil
}

func serve(ctx context.Context, cmd *cobra.Command, o serveOptions) error {
	out := cmd.OutOrStdout()
	reg, err := buildRegistry(o, out)
	if err != nil {
		return err
	}
	if err := startMirror(ctx, o, reg, cmd.ErrOrStderr()); err != nil {
		return err
	}
	if o.boot.Initramfs != "" && o.boot.Kernel == "" {
		if o.boot.Kernel, err = vm.DefaultKernel(); err != nil {
			return fmt.Errorf("--kernel: %w", err)
		}
	}
	boot, err := netboot.New(o.boot)
	if err != nil {
		return err
	}
	if o.logDir != "" {
		if err := os.MkdirAll(o.logDir, 0o755); err != nil {
			return fmt.Errorf("--access-log-dir: %w", err)
		}
	}
	events, err := fleet.New(fleet.Options{Dir: o.state})
	if err != nil {
		return err
	}
	defer events.Close()
	mux := http.NewServeMux()
	mux.Handle("/v1/", events)
	mux.Handle("/fleet", events)
	mux.Handle("/fleet/", events)
	mux.Handle("/v2/", reg)
	mux.Handle("/", boot)
	handler := netboot.NewAccessLog(cmd.ErrOrStderr(), o.logDir).Wrap(mux)

	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second}
	srv.RegisterOnShutdown(events.EndStreams) // the fleet page's streams would hold Shutdown up
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	scheme := "http"
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return fmt.Errorf("--tls-cert, --tls-key: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", o.listen, err)
	}
	done := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			done <- srv.ServeTLS(ln, "", "")
		} else {
			done <- srv.Serve(ln)
		}
	}()
	addr := ln.Addr().String()
	for _, repo := range reg.Repositories() {
		for _, tag := range reg.Tags(repo) {
			fmt.Fprintf(out, "serving %s/%s:%s\n", addr, repo, tag)
		}
	}
	if o.boot.Initramfs != "" {
		fmt.Fprintf(out, "netboot: %s://%s/boot.ipxe boots %s with %s\n", scheme, addr, o.boot.Kernel, o.boot.Initramfs)
	}
	fmt.Fprintf(out, "registry listening on %s\n", addr)
	select {
	case <-ctx.Done():
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// buildRegistry adds every --image and --store to a registry.
func buildRegistry(o serveOptions, out io.Writer) (*registry.Registry, error) {
	reg := registry.New()
	for _, spec := range o.images {
		ref, path, ok := strings.Cut(spec, "=")
		if !ok || ref == "" || path == "" {
			return nil, fmt.Errorf("--image %q: expected NAME[:TAG]=PATH", spec)
		}
		name, tag := ref, ""
		if i := strings.LastIndexByte(ref, ':'); i >= 0 && !strings.Contains(ref[i:], "/") {
			name, tag = ref[:i], ref[i+1:]
		}
		if err := addImage(reg, name, tag, path, o.cmdArgs); err != nil {
			return nil, fmt.Errorf("--image %s: %w", spec, err)
		}
	}
	for _, dir := range o.stores {
		skipped, err := reg.AddStore(dir)
		if err != nil {
			return nil, fmt.Errorf("--store: %w", err)
		}
		for _, s := range skipped {
			fmt.Fprintf(out, "--store %s: not serving %s\n", dir, s)
		}
	}
	return reg, nil
}

// addImage adds what path holds: an OCI layout, a docker-archive, or a
// directory to pack.
func addImage(reg *registry.Registry, name, tag, path string, cmdArgs []string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return reg.AddArchive(name, tag, path)
	}
	if _, err := os.Stat(filepath.Join(path, "oci-layout")); err == nil {
		return reg.AddLayout(name, tag, path)
	}
	img, err := image.FromDir(path, v1.Config{
		Cmd: cmdArgs,
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	})
	if err != nil {
		return err
	}
	if tag == "" {
		tag = "latest"
	}
	return reg.AddImage(name, tag, img)
}

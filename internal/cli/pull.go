package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/store"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

func newPullCmd() *cobra.Command {
	var (
		o         pullFlags
		progress  string
		budgetMiB int64
	)
	cmd := &cobra.Command{
		Use:   "pull IMAGE DIR",
		Short: "Pull an image and unpack its root filesystem into a directory",
		Long: `pull unpacks IMAGE into DIR with the engine the init uses at boot: layers
streamed from the registry through the decompressor into the tree, bottom
layer first, with the OCI whiteout rules, every blob checked against its
digest. IMAGE is a reference (docker.io/library/alpine:3.20, optionally
prefixed with docker://) or the URL of a rootfs tarball (http://, https://
or file://, optionally ending in #sha256=HEX). DIR is created if missing and
must be empty. Run it as root: owners and device nodes are kept.
Registries are reached as the init reaches them: --registry-auth,
--ca-file and --registry-mirror take what ` + "`ociboot build`" + ` bakes in.
With --store DIR, what is pulled (manifests, configs, layer blobs, and
what each tag stood for) is kept in the store DIR (created if missing)
and read from it the next time, verified, instead of downloaded; --pull
says when the registry is asked, as at boot: always (the default) asks
for the manifest and fetches only what the store lacks, using the stored
copy, with a warning, when the registry is out of reach; missing uses the
stored copy without asking; never uses only the store.

Progress goes to stderr: a bar per layer on a terminal, otherwise a line
when each layer starts and one when it is done.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, unix.SIGTERM)
			defer stop()
			mode, err := progressMode(progress, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			o.progress, o.memoryBudget = mode, budgetMiB<<20
			return pull(ctx, cmd.ErrOrStderr(), args[0], args[1], o)
		},
	}
	f := cmd.Flags()
	registryFlags(f, &o)
	f.BoolVar(&o.allowDevices, "allow-devices", true, "create the device nodes that layers hold (--allow-devices=false refuses such layers)")
	f.StringVar(&progress, "progress", "auto", "progress output: auto (bars on a terminal, else lines), bars, lines or none")
	f.StringVar(&o.store, "store", "", "keep what is pulled in this store directory, and use what is already there")
	f.StringVar(&o.policy, "pull", "always", "with --store: always, missing or never (when to ask the registry)")
	f.Int64Var(&budgetMiB, "memory-budget", image.DefaultMemoryBudget>>20, "MiB of memory for layer data downloaded and decompressed ahead of the applier")
	return cmd
}

// registryFlags adds the flags that say how registries are reached, as
// pull and verify take them, into o.
func registryFlags(f *pflag.FlagSet, o *pullFlags) {
	f.StringArrayVar(&o.insecure, "insecure-registry", nil, "HOST:PORT: reach this registry over plain HTTP (repeatable)")
	f.StringVar(&o.platform, "platform", "", "OS/ARCH[/VARIANT] to take from a multi-platform image (default: linux and this machine's architecture)")
	f.StringVar(&o.authFile, "registry-auth", "", "docker config.json with registry credentials")
	f.StringArrayVar(&o.caFiles, "ca-file", nil, "PEM file of CA certificates trusted besides the system's (repeatable)")
	f.StringArrayVar(&o.mirrors, "registry-mirror", nil, "REGISTRY=MIRROR[|MIRROR…]: mirrors tried in order before REGISTRY (repeatable)")
}

// pullFlags are the options of `ociboot pull`.
type pullFlags struct {
	insecure     []string
	platform     string
	allowDevices bool
	progress     string // bars, lines or none
	memoryBudget int64  // bytes
	authFile     string
	caFiles      []string
	mirrors      []string
	store        string // --store: the blob store directory, "" for none
	policy       string // --pull
}

// pullOptions turns the registry flags into image.PullOptions.
func (o pullFlags) pullOptions(plat v1.Platform, log io.Writer) (image.PullOptions, error) {
	po := image.PullOptions{Insecure: o.insecure, Platform: plat, Log: log}
	if o.authFile != "" {
		var err error
		if po.Auth, err = image.ReadDockerConfig(o.authFile); err != nil {
			return po, fmt.Errorf("--registry-auth: %w", err)
		}
	}
	for _, f := range o.caFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return po, fmt.Errorf("--ca-file: %w", err)
		}
		if _, err := fetch.ParseCACerts(data); err != nil {
			return po, fmt.Errorf("--ca-file %s: %w", f, err)
		}
		po.CACerts = append(append(po.CACerts, data...), '\n')
	}
	for _, m := range o.mirrors {
		mirror, err := image.ParseMirror(m)
		if err != nil {
			return po, fmt.Errorf("--registry-mirror %q: %w", m, err)
		}
		po.Mirrors = append(po.Mirrors, mirror)
	}
	return po, nil
}

// progressMode resolves --progress, auto meaning bars on a terminal.
func progressMode(s string, w io.Writer) (string, error) {
	switch s {
	case "bars", "lines", "none":
		return s, nil
	case "auto":
		if isTerminal(w) {
			return "bars", nil
		}
		return "lines", nil
	}
	return "", fmt.Errorf("--progress %q: want auto, bars, lines or none", s)
}

// isTerminal tells whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// isTarballURL tells whether IMAGE names a rootfs tarball rather than an
// image reference.
func isTarballURL(s string) bool {
	for _, scheme := range []string{"http://", "https://", "file://"} {
		if len(s) >= len(scheme) && strings.EqualFold(s[:len(scheme)], scheme) {
			return true
		}
	}
	return false
}

func pull(ctx context.Context, errOut io.Writer, ref, dir string, o pullFlags) error {
	var plat v1.Platform
	if isTarballURL(ref) && (o.platform != "" || o.authFile != "" || len(o.caFiles) > 0 || len(o.mirrors) > 0 || len(o.insecure) > 0 || !o.allowDevices || o.store != "") {
		return errors.New("--platform, --registry-auth, --ca-file, --registry-mirror, --insecure-registry, --store and --allow-devices=false do not apply to a rootfs tarball URL")
	}
	if o.memoryBudget <= 0 {
		return fmt.Errorf("--memory-budget %d: want a positive number of MiB", o.memoryBudget>>20)
	}
	if o.platform != "" {
		p, err := image.ParsePlatform(o.platform)
		if err != nil {
			return fmt.Errorf("--platform: %w", err)
		}
		plat = p
	}
	log := errOut
	if o.progress == "none" {
		log = io.Discard
	}
	po, err := o.pullOptions(plat, log)
	if err != nil {
		return err
	}
	if err := prepareDir(dir); err != nil {
		return err
	}
	start := time.Now()
	if isTarballURL(ref) {
		if err := image.UnpackTarball(ctx, ref, dir, image.TarballOptions{Log: log}); err != nil {
			return err
		}
		fmt.Fprintf(log, "unpacked %s into %s in %.2fs\n", ref, dir, time.Since(start).Seconds())
		return nil
	}
	if o.store != "" {
		if po.Store, err = store.Open(o.store); err != nil {
			return fmt.Errorf("--store: %w", err)
		}
	}
	policy, err := image.ParsePullPolicy(o.policy)
	if err != nil {
		return fmt.Errorf("--pull: %w", err)
	}
	puller, err := image.NewPuller(po)
	if err != nil {
		return err
	}
	img, err := puller.Pull(ctx, ref, image.Request{Policy: policy})
	if err != nil {
		return err
	}
	opts := image.UnpackOptions{AllowDevices: o.allowDevices, MemoryBudget: o.memoryBudget}
	var bars *barRenderer
	switch o.progress {
	case "bars":
		// One column less than the terminal: a full line would wrap early
		// on some terminals and the redraw would go astray.
		bars = newBarRenderer(errOut, terminalWidth(errOut)-1)
		opts.Progress = bars.update
	case "lines":
		opts.Log = log
	}
	err = image.UnpackWith(ctx, img, dir, opts)
	if bars != nil {
		bars.finish() // the final state, before anything else is printed
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "unpacked %s into %s in %.2fs\n", ref, dir, time.Since(start).Seconds())
	return nil
}

// prepareDir creates dir if it is missing and refuses one that is not
// empty: unpacking an image over an existing tree (say, /) by mistake
// would replace its files.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("DIR %s: %w", dir, err)
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("DIR %s: %w", dir, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("DIR %s: %w", dir, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("DIR %s is not empty (it holds %q): unpack into an empty directory", dir, names[0])
	}
	return nil
}

package cli

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func newServeCmd() *cobra.Command {
	var (
		listen string
		images []string
		cmdArg []string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve an in-memory OCI registry, seeded with images made from directories",
		Long: `serve runs a small in-memory OCI distribution registry, for demos and
labs: each --image NAME:TAG=DIR is packed from a directory into a one-layer
image and pushed to it. It listens on 127.0.0.1 unless told otherwise; a VM
started with ` + "`ociboot vm --forward PORT`" + ` reaches it at 10.0.2.100:PORT.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, unix.SIGTERM)
			defer stop()
			return serve(ctx, cmd, listen, images, cmdArg)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:5000", "address to listen on")
	cmd.Flags().StringArrayVar(&images, "image", nil, "NAME:TAG=DIR: serve DIR as image NAME:TAG (repeatable)")
	cmd.Flags().StringArrayVar(&cmdArg, "cmd", nil, "default command of the seeded images (repeat for each argument)")
	return cmd
}

func serve(ctx context.Context, cmd *cobra.Command, listen string, images, cmdArgs []string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", listen, err)
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	addr := ln.Addr().String()

	for _, spec := range images {
		ref, dir, ok := strings.Cut(spec, "=")
		if !ok || ref == "" || dir == "" {
			return fmt.Errorf("--image %q: expected NAME:TAG=DIR", spec)
		}
		img, err := image.FromDir(dir, v1.Config{
			Cmd: cmdArgs,
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		})
		if err != nil {
			return fmt.Errorf("--image %s: %w", spec, err)
		}
		tag, err := name.NewTag(addr+"/"+ref, name.Insecure)
		if err != nil {
			return fmt.Errorf("--image %s: %w", spec, err)
		}
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		err = remote.Write(tag, img, remote.WithContext(pctx))
		cancel()
		if err != nil {
			return fmt.Errorf("--image %s: pushing to the local registry: %w", spec, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "serving %s\n", tag)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "registry listening on %s\n", addr)
	<-ctx.Done()
	return nil
}

package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/timeline"
)

// analyzeTimeout bounds the download of a boot's events.
const analyzeTimeout = time.Minute

// maxAnalyzed is the most of a record read.
const maxAnalyzed = 256 << 20

func newAnalyzeCmd() *cobra.Command {
	var svg string
	cmd := &cobra.Command{
		Use:   "analyze FILE|URL",
		Short: "Tell where a boot's time went, from its events or its console log",
		Long: `analyze reads a boot's events (JSON lines: ociboot serve's --state files
or /v1/boots/ID/events, ociboot vm --report's file) or, failing that, its
console log, and prints where the time went, longest first, as
systemd-analyze blame does: the kernel until /init, each stage, and, from
events, each container's pull and run and each layer's fetch and unpack.
With -o, it also draws them on one time axis as an SVG picture.

A console log gives the kernel and the stages only, from the stage lines
(to the hundredth of a second).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readRecord(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			tl, err := timeline.Read(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if err := tl.Blame(cmd.OutOrStdout()); err != nil {
				return err
			}
			if svg == "" {
				return nil
			}
			f, err := os.Create(svg)
			if err != nil {
				return fmt.Errorf("-o: %w", err)
			}
			if err := tl.SVG(f); err != nil {
				f.Close()
				return fmt.Errorf("-o %s: %w", svg, err)
			}
			return f.Close()
		},
	}
	cmd.Flags().StringVarP(&svg, "output", "o", "", "also write the timeline as an SVG picture to this file")
	return cmd
}

// readRecord reads a file, or downloads an http(s) URL.
func readRecord(ctx context.Context, src string) ([]byte, error) {
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		return data, nil
	}
	client, err := fetch.New(fetch.Options{})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, analyzeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", fetch.Redact(req.URL), resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnalyzed))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", fetch.Redact(req.URL), err)
	}
	return data, nil
}

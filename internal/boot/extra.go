package boot

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/ociboot/ociboot/internal/fetch"
)

// Limits of the extra_args_url fetch.
const (
	extraTimeout   = 30 * time.Second
	extraMaxLength = 1 << 20
)

// fetchExtra downloads the command line at url (ociboot.extra_args_url)
// with ociboot's HTTP client made from o (its CA certificates, its retry
// policy: connection errors, timeouts, 429 and 5xx are retried with
// backoff, a line each in log; other answers fail at once). The content is
// never logged: it may hold secrets.
func fetchExtra(ctx context.Context, url string, o fetch.Options, log io.Writer) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, extraTimeout)
	defer cancel()
	o.Log = log
	client, err := fetch.New(o)
	if err != nil {
		return "", err
	}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetching %s: the server answered %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, extraMaxLength+1))
	if err != nil {
		return "", fmt.Errorf("fetching %s: reading the answer: %w", url, err)
	}
	if len(data) > extraMaxLength {
		return "", fmt.Errorf("fetching %s: the answer is longer than 1 MiB, expected a command line", url)
	}
	return string(data), nil
}

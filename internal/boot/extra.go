package boot

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/ociboot/ociboot/internal/image"
)

// Limits of the extra_args_url fetch, as boot2container's "a few tries".
const (
	extraTries     = 5
	extraTryWait   = time.Second // doubled after each failed try
	extraTimeout   = 30 * time.Second
	extraMaxLength = 1 << 20
)

// fetchExtraArgs downloads the command line at url (ociboot.extra_args_url),
// trusting caPEM besides the system's (or embedded) roots. Connection
// errors, timeouts, 429 and 5xx answers are retried with backoff; other
// answers fail at once. The content is never logged: it may hold secrets.
func fetchExtraArgs(ctx context.Context, url string, caPEM []byte, log io.Writer) (string, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if len(caPEM) > 0 {
		certs, err := image.ParseCACerts(caPEM)
		if err != nil {
			return "", fmt.Errorf("extra CA certificates: %w", err)
		}
		for _, c := range certs {
			roots.AddCert(c)
		}
	}
	client := &http.Client{
		Timeout:   extraTimeout,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}},
	}
	defer client.CloseIdleConnections()
	wait := extraTryWait
	var last error
	for try := 1; try <= extraTries; try++ {
		body, retry, err := fetchOnce(ctx, client, url)
		if err == nil {
			return body, nil
		}
		last = err
		if !retry || try == extraTries {
			break
		}
		fmt.Fprintf(log, "try %d/%d: %v; again in %s\n", try, extraTries, err, wait)
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("fetching %s: %w", url, ctx.Err())
		case <-time.After(wait):
		}
		wait *= 2
	}
	return "", fmt.Errorf("fetching %s: %w", url, last)
}

// fetchOnce makes one GET and says whether a failure is worth retrying.
func fetchOnce(ctx context.Context, client *http.Client, url string) (string, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		retry := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
		return "", retry, fmt.Errorf("the server answered %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, extraMaxLength+1))
	if err != nil {
		return "", true, fmt.Errorf("reading the answer: %w", err)
	}
	if len(data) > extraMaxLength {
		return "", false, errors.New("the answer is longer than 1 MiB, expected a command line")
	}
	return string(data), false, nil
}

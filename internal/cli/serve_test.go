package cli

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/ociboot/ociboot/internal/registrytest"
	"github.com/ociboot/ociboot/internal/store"
)

// TestServeCommand runs `ociboot serve` over HTTPS with an image packed
// from a directory and netboot files, and fetches from it as a machine
// would.
func TestServeCommand(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"vmlinuz": "KERNEL", "initramfs.img": "INITRAMFS", "root/hello": "hi\n", "machines/default.cmdline": "console=ttyS0"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ca := registrytest.NewCA(t)
	_, certFile, keyFile := ca.ServerCert(t)

	// The upstream of --upstream: a registry over TLS whose pulls take
	// bob's token, with his credentials as `docker login` writes them.
	ts := registrytest.NewTokenServer(t, map[string]string{"bob": "bob-pw"})
	origin := registrytest.StartWith(t, registrytest.Options{TLS: ca, Token: ts})
	registrytest.Push(t, origin, "lab/tool:1", registrytest.BusyboxImage(t))
	caFile, authFile, upstreamDir := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "auth.json"), filepath.Join(dir, "upstream")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	auth := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, origin.Addr, base64.StdEncoding.EncodeToString([]byte("bob:bob-pw")))
	if err := os.WriteFile(authFile, []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	root := NewRoot()
	root.SetOut(pw)
	root.SetErr(io.Discard)
	root.SetArgs([]string{"serve", "--listen", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile,
		"--image", "demo/hello=" + filepath.Join(dir, "root"), "--kernel", filepath.Join(dir, "vmlinuz"),
		"--initramfs", filepath.Join(dir, "initramfs.img"), "--machines", filepath.Join(dir, "machines"),
		"--upstream", "https://" + origin.Addr, "--upstream-ca-cert", caFile, "--upstream-auth", authFile, "--upstream-dir", upstreamDir,
		"--state", filepath.Join(dir, "state")})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx); pw.Close() }()
	var addr string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "registry listening on "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatalf("serve did not start: %v", <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	client := &http.Client{Transport: ca.Transport()}
	get := func(path string) string {
		t.Helper()
		resp, err := client.Get("https://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s %s", path, resp.Status, body)
		}
		return string(body)
	}
	if got := get("/boot/52-54-00-12-34-56.ipxe"); !strings.Contains(got, "kernel ../kernel initrd=initramfs console=ttyS0\n") {
		t.Errorf("boot script: %s", got)
	}
	if got := get("/initramfs"); got != "INITRAMFS" {
		t.Errorf("/initramfs: %q", got)
	}
	// Events, received and kept in --state.
	resp, err := client.Post("https://"+addr+"/v1/events", "application/x-ndjson",
		strings.NewReader(`{"boot":"b1","mac":"52:54:00:12:34:56","seq":1,"mono":2.5,"type":"stage_start","stage":"network"}`+"\n"))
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /v1/events: %v %v", resp, err)
	}
	resp.Body.Close()
	if got := get("/v1/machines"); !strings.Contains(got, `"stage": "network"`) {
		t.Errorf("/v1/machines: %s", got)
	}
	if kept, err := os.ReadFile(filepath.Join(dir, "state", "b1.jsonl")); err != nil || !strings.Contains(string(kept), `"stage":"network"`) {
		t.Errorf("--state: %q, %v", kept, err)
	}
	ref, err := name.ParseReference(addr + "/demo/hello:latest")
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref, remote.WithTransport(ca.Transport()), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	if layers, err := img.Layers(); err != nil || len(layers) != 1 {
		t.Errorf("demo/hello: %d layers, %v; want 1", len(layers), err)
	}
	// An image of the upstream, through serve, kept in --upstream-dir.
	ref, err = name.ParseReference(addr + "/lab/tool:1")
	if err != nil {
		t.Fatal(err)
	}
	img, err = remote.Image(ref, remote.WithTransport(ca.Transport()), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("lab/tool:1 through --upstream: %v", err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("lab/tool:1: %d layers, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Errorf("lab/tool:1's layer through --upstream: %v", err)
	}
	rc.Close()
	d, _ := layers[0].Digest()
	st, err := store.OpenExisting(upstreamDir)
	if err != nil || !st.Has(d) {
		t.Errorf("--upstream-dir does not hold the layer %s (%v)", d, err)
	}
	granted := false
	for _, r := range ts.Requests() {
		granted = granted || (r.User == "bob" && r.Status == http.StatusOK)
	}
	if !granted {
		t.Errorf("the upstream's token server gave bob no token: %+v", ts.Requests())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve after its context ended: %v", err)
	}
}

func TestServeErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--image", "nothing"}, "--image \"nothing\": expected NAME[:TAG]=PATH"},
		{[]string{"--image", "x=" + filepath.Join(dir, "missing")}, "--image x=" + filepath.Join(dir, "missing")},
		{[]string{"--image", "Bad=" + dir}, `repository name "Bad"`},
		{[]string{"--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--initramfs", filepath.Join(dir, "missing.img"), "--kernel", "/dev/null"}, "--initramfs"},
		{[]string{"--machines", filepath.Join(dir, "missing")}, "--machines"},
		{[]string{"--upstream-dir", dir}, "--upstream-dir, --upstream-auth and --upstream-ca-cert go with --upstream"},
		{[]string{"--upstream", "ftp://host"}, `upstream "ftp://host": expected http(s)://HOST[:PORT]`},
		{[]string{"--upstream", "https://host", "--upstream-dir", dir, "--upstream-auth", filepath.Join(dir, "missing.json")}, "--upstream-auth: open " + filepath.Join(dir, "missing.json")},
	} {
		_, err := runCLI(t, append([]string{"serve", "--listen", "127.0.0.1:0"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("serve %q: %v, want an error saying %q", c.args, err, c.want)
		}
	}
}

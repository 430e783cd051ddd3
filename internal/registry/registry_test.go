package registry_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ociboot/ociboot/internal/hosttest"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/registry"
	"github.com/ociboot/ociboot/internal/registrytest"
	"github.com/ociboot/ociboot/internal/store"
)

// sources are the same images in each kind of source, written by the
// tools people use: skopeo writes the OCI layout and the docker-archive,
// ociboot's puller fills the store, all from a CNCF distribution
// registry, whose answers are the reference.
type sources struct {
	cncf      *registrytest.Registry
	busybox   v1.Image      // src/busybox:v1 at the CNCF registry
	multi     v1.ImageIndex // src/multi:v2, linux/amd64 and linux/arm64
	artifact  v1.Image      // refers to busybox (its subject)
	layout    string
	archive   string
	storeDir  string
	storeRefs int
}

func makeSources(t *testing.T) sources {
	t.Helper()
	s := sources{cncf: registrytest.Start(t), busybox: registrytest.BusyboxImage(t)}
	small := func(p v1.Platform) v1.Image {
		return registrytest.Image(t, v1.Config{Cmd: []string{"true"}}, registrytest.LayerFromFiles(t, map[string]string{"arch": p.Architecture}))
	}
	s.multi = registrytest.PlatformIndex(t, small, v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64"})
	registrytest.Push(t, s.cncf, "src/busybox:v1", s.busybox)
	registrytest.PushIndex(t, s.cncf, "src/multi:v2", s.multi)

	dir := t.TempDir()
	s.layout, s.archive = filepath.Join(dir, "layout"), filepath.Join(dir, "archive.tar")
	src := "docker://" + s.cncf.Addr + "/"
	hosttest.Run(t, "skopeo", "copy", "-q", "--src-tls-verify=false", src+"src/busybox:v1", "oci:"+s.layout+":v1")
	hosttest.Run(t, "skopeo", "copy", "-q", "--all", "--src-tls-verify=false", src+"src/multi:v2", "oci:"+s.layout+":v2")
	hosttest.Run(t, "skopeo", "copy", "-q", "--src-tls-verify=false", src+"src/busybox:v1", "docker-archive:"+s.archive+":busybox:v1")

	// An artifact whose subject is the busybox image, added to the layout
	// as oras and cosign leave referrers there: untagged.
	bbDesc, err := partialDescriptor(s.busybox)
	if err != nil {
		t.Fatal(err)
	}
	art := mutate.ConfigMediaType(registrytest.Image(t, v1.Config{}, registrytest.LayerFromFiles(t, map[string]string{"sbom": "{}"})), "application/vnd.example.sbom")
	s.artifact = mutate.Subject(art, bbDesc).(v1.Image)
	lp, err := layout.FromPath(s.layout)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(s.artifact); err != nil {
		t.Fatal(err)
	}

	// The store, as `ociboot pull --store` leaves it.
	s.storeDir = filepath.Join(dir, "store")
	st, err := store.Open(s.storeDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"src/busybox:v1", "src/multi:v2"} {
		for _, arch := range []string{"amd64", "arm64"} {
			if ref == "src/busybox:v1" && arch == "arm64" {
				continue
			}
			img, err := image.Pull(t.Context(), s.cncf.Addr+"/"+ref, image.PullOptions{Store: st, Platform: v1.Platform{OS: "linux", Architecture: arch}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := image.UnpackLayers(t.Context(), img, st, image.UnpackOptions{}); err != nil {
				t.Fatal(err)
			}
			s.storeRefs++
		}
	}
	return s
}

func partialDescriptor(img v1.Image) (v1.Descriptor, error) {
	d, err := img.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := img.MediaType()
	return v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw))}, err
}

// serve serves r on 127.0.0.1 for the test.
func serve(t *testing.T, r http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// describe fetches what ref names: its manifest, with media type.
func describe(t *testing.T, ref string) *remote.Descriptor {
	t.Helper()
	n, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Get(n, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	return d
}

func fetchImage(t *testing.T, ref string) v1.Image {
	t.Helper()
	img, err := describe(t, ref).Image()
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	// Every blob read in full and checked against its digest (remote
	// checks as it reads), every layer's diff ID against the config.
	// (validate.Image takes every layer for gzip, and archives hold
	// uncompressed ones.)
	diffs := diffIDs(t, img)
	layers, err := img.Layers()
	if err != nil || len(layers) != len(diffs) {
		t.Fatalf("%s: %d layers (%v), %d diff IDs", ref, len(layers), err, len(diffs))
	}
	for i, l := range layers {
		if _, err := readAll(l.Compressed); err != nil {
			t.Fatalf("%s: layer %d: %v", ref, i, err)
		}
		data, err := readAll(l.Uncompressed)
		if err != nil {
			t.Fatalf("%s: layer %d: %v", ref, i, err)
		}
		if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != diffs[i].Hex {
			t.Fatalf("%s: layer %d: uncompressed it hashes to %x, its diff ID is %s", ref, i, got, diffs[i])
		}
	}
	return img
}

func readAll(open func() (io.ReadCloser, error)) ([]byte, error) {
	rc, err := open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func rawManifest(t *testing.T, ref string) (types.MediaType, []byte) {
	t.Helper()
	d := describe(t, ref)
	return d.MediaType, d.Manifest
}

func diffIDs(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf.RootFS.DiffIDs
}

// TestSources serves the three kinds of source and checks what a client
// gets against what the CNCF registry served from the same images.
func TestSources(t *testing.T) {
	s := makeSources(t)
	r := registry.New()
	if err := r.AddLayout("lay/x", "", s.layout); err != nil {
		t.Fatal(err)
	}
	if err := r.AddArchive("arc/x", "", s.archive); err != nil {
		t.Fatal(err)
	}
	skipped, err := r.AddStore(s.storeDir)
	if err != nil || len(skipped) > 0 {
		t.Fatalf("AddStore: skipped %q, %v", skipped, err)
	}
	addr := serve(t, r)
	if got, want := r.Repositories(), []string{"arc/x", "lay/x", "src/busybox", "src/multi"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("repositories %q, want %q", got, want)
	}

	// The layout serves the very manifests the registry did (skopeo keeps
	// them byte for byte; it rewrites an index, so there the children are
	// compared).
	im, err := s.multi.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	pairs := [][2]string{{"lay/x:v1", "src/busybox:v1"}}
	for _, m := range im.Manifests {
		pairs = append(pairs, [2]string{"lay/x@" + m.Digest.String(), "src/multi@" + m.Digest.String()})
	}
	for _, pair := range pairs {
		gotMT, got := rawManifest(t, addr+"/"+pair[0])
		wantMT, want := rawManifest(t, s.cncf.Addr+"/"+pair[1])
		if !bytes.Equal(got, want) || gotMT != wantMT {
			t.Errorf("%s: manifest %s %s, the CNCF registry's %s %s", pair[0], gotMT, got, wantMT, want)
		}
		fetchImage(t, addr+"/"+pair[0])
	}
	mt, raw := rawManifest(t, addr+"/lay/x:v2")
	var lidx v1.IndexManifest
	if err := json.Unmarshal(raw, &lidx); err != nil || mt != types.OCIImageIndex || len(lidx.Manifests) != 2 || lidx.Manifests[1].Digest != im.Manifests[1].Digest {
		t.Errorf("lay/x:v2: %s %s (%v), want the index of %v", mt, raw, err, im.Manifests)
	}

	// The archive's image: skopeo wrote its layers uncompressed, so the
	// manifest is new, but the content is the same.
	arc := fetchImage(t, addr+"/arc/x:v1")
	if got, want := diffIDs(t, arc), diffIDs(t, s.busybox); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("archive image diff IDs %v, want %v", got, want)
	}

	// The store: busybox as pulled, multi as an index of the two platforms
	// pulled (the store keeps platform images, not the registry's index).
	gotBB := fetchImage(t, addr+"/src/busybox:v1")
	if got, want := digest(t, gotBB), digest(t, s.busybox); got != want {
		t.Errorf("stored busybox %s, want %s", got, want)
	}
	mt, raw = rawManifest(t, addr+"/src/multi:v2")
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil || mt != types.OCIImageIndex || len(idx.Manifests) != 2 {
		t.Fatalf("stored multi: %s %s (%v), want an index of 2", mt, raw, err)
	}
	for i, arch := range []string{"amd64", "arm64"} {
		m := idx.Manifests[i]
		if m.Platform == nil || m.Platform.Architecture != arch || m.Digest != im.Manifests[i].Digest {
			t.Errorf("stored multi: entry %d %+v, want %s %s", i, m, arch, im.Manifests[i].Digest)
		}
		fetchImage(t, addr+"/src/multi@"+m.Digest.String())
	}
}

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// get does one request and returns the response with its body read.
func get(t *testing.T, method, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// TestAPI checks the answers the distribution spec asks for, beyond what
// a pull uses: ranges, HEAD, pagination, referrers, errors.
func TestAPI(t *testing.T) {
	s := makeSources(t)
	r := registry.New()
	if err := r.AddLayout("lay/x", "", s.layout); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"a", "b", "c"} {
		if err := r.AddImage("many", tag, s.busybox); err != nil {
			t.Fatal(err)
		}
	}
	base := "http://" + serve(t, r) + "/v2/"

	layers, err := s.busybox.Layers()
	if err != nil {
		t.Fatal(err)
	}
	ld, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	whole, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	blobURL := base + "lay/x/blobs/" + ld.String()
	resp, body := get(t, "GET", blobURL, "Range", "bytes=100-199")
	if resp.StatusCode != http.StatusPartialContent || body != string(whole[100:200]) {
		t.Errorf("GET Range 100-199: %s, %d bytes, want 206 and bytes 100-199", resp.Status, len(body))
	}
	resp, body = get(t, "HEAD", blobURL)
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != int64(len(whole)) || resp.Header.Get("Docker-Content-Digest") != ld.String() {
		t.Errorf("HEAD blob: %s, length %d, digest %q; want 200, %d, %s", resp.Status, resp.ContentLength, resp.Header.Get("Docker-Content-Digest"), len(whole), ld)
	}
	bd := digest(t, s.busybox)
	resp, body = get(t, "HEAD", base+"lay/x/manifests/v1")
	if resp.StatusCode != 200 || body != "" || resp.Header.Get("Docker-Content-Digest") != bd.String() || resp.Header.Get("Content-Type") != string(types.OCIManifestSchema1) {
		t.Errorf("HEAD manifest: %s, %v", resp.Status, resp.Header)
	}

	// Tags, a page at a time.
	_, body = get(t, "GET", base+"many/tags/list")
	if body != `{"name":"many","tags":["a","b","c"]}` {
		t.Errorf("tags list: %s", body)
	}
	resp, body = get(t, "GET", base+"many/tags/list?n=2")
	if body != `{"name":"many","tags":["a","b"]}` || resp.Header.Get("Link") != `</v2/many/tags/list?last=b&n=2>; rel="next"` {
		t.Errorf("tags list n=2: %s, Link %q", body, resp.Header.Get("Link"))
	}
	resp, body = get(t, "GET", base+"many/tags/list?n=2&last=b")
	if body != `{"name":"many","tags":["c"]}` || resp.Header.Get("Link") != "" {
		t.Errorf("tags list n=2 last=b: %s, Link %q", body, resp.Header.Get("Link"))
	}

	// Referrers: the artifact, filtered by its type or not.
	ad := digest(t, s.artifact)
	for _, q := range []string{"", "?artifactType=application/vnd.example.sbom", "?artifactType=other"} {
		resp, body = get(t, "GET", base+"lay/x/referrers/"+bd.String()+q)
		var idx v1.IndexManifest
		if err := json.Unmarshal([]byte(body), &idx); err != nil || resp.Header.Get("Content-Type") != string(types.OCIImageIndex) {
			t.Fatalf("referrers%s: %s %s (%v)", q, resp.Header.Get("Content-Type"), body, err)
		}
		want := 1
		if q == "?artifactType=other" {
			want = 0
		}
		if len(idx.Manifests) != want || want == 1 && (idx.Manifests[0].Digest != ad || idx.Manifests[0].ArtifactType != "application/vnd.example.sbom") {
			t.Errorf("referrers%s: %s, want %d (%s)", q, body, want, ad)
		}
		if (q != "") != (resp.Header.Get("OCI-Filters-Applied") == "artifactType") {
			t.Errorf("referrers%s: OCI-Filters-Applied %q", q, resp.Header.Get("OCI-Filters-Applied"))
		}
	}

	// Errors, with the spec's codes.
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "nope/manifests/v1", 404, "NAME_UNKNOWN"},
		{"GET", "lay/x/manifests/nope", 404, "MANIFEST_UNKNOWN"},
		{"GET", "lay/x/manifests/sha256:" + strings.Repeat("0", 64), 404, "MANIFEST_UNKNOWN"},
		{"GET", "lay/x/blobs/sha256:" + strings.Repeat("0", 64), 404, "BLOB_UNKNOWN"},
		{"GET", "lay/x/blobs/sha256:zz", 400, "DIGEST_INVALID"},
		{"PUT", "lay/x/manifests/v9", 405, "UNSUPPORTED"},
		{"POST", "lay/x/blobs/uploads/", 405, "UNSUPPORTED"},
		{"DELETE", "lay/x/manifests/v1", 405, "UNSUPPORTED"},
	} {
		resp, body := get(t, c.method, base+c.path)
		if resp.StatusCode != c.status || !strings.Contains(body, `"code":"`+c.code+`"`) {
			t.Errorf("%s %s: %s %s, want %d %s", c.method, c.path, resp.Status, body, c.status, c.code)
		}
	}
}

// TestBadSources checks that what cannot be served is refused with an
// error naming the source and the fault.
func TestBadSources(t *testing.T) {
	s := makeSources(t)
	r := registry.New()
	dir := t.TempDir()
	gz := filepath.Join(dir, "archive.tar.gz")
	hosttest.Run(t, "sh", "-c", "gzip -c "+s.archive+" > "+gz)
	notLayout := t.TempDir()
	for _, c := range []struct {
		name string
		add  func() error
		want string
	}{
		{"not a layout", func() error { return r.AddLayout("x", "", notLayout) }, "not an OCI image layout"},
		{"bad name", func() error { return r.AddLayout("Bad/Name", "", s.layout) }, `repository name "Bad/Name"`},
		{"tag of many", func() error { return r.AddLayout("x", "t", s.layout) }, "holds 3 images"},
		{"compressed archive", func() error { return r.AddArchive("x", "", gz) }, "compressed"},
		{"not a tar", func() error { return r.AddArchive("x", "", filepath.Join(s.layout, "index.json")) }, "not a tar"},
		{"not a store", func() error { _, err := r.AddStore(notLayout); return err }, "not a store"},
	} {
		err := c.add()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}

	// A blob the layout lacks is named.
	idx, err := s.multi.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.multi.Image(idx.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cd, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(s.layout, "blobs", "sha256", cd.Hex)); err != nil {
		t.Fatal(err)
	}
	if err := r.AddLayout("x", "", s.layout); err == nil || !strings.Contains(err.Error(), cd.String()) || !strings.Contains(err.Error(), "config") {
		t.Errorf("layout without a config blob: %v, want an error naming config %s", err, cd)
	}

	// A stored image whose layer blob is gone is skipped, and said so; the
	// others are served.
	ls, err := s.busybox.Layers()
	if err != nil {
		t.Fatal(err)
	}
	ld, err := ls[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(s.storeDir, "blobs", "sha256", ld.Hex)); err != nil {
		t.Fatal(err)
	}
	r = registry.New()
	skipped, err := r.AddStore(s.storeDir)
	if err != nil || len(skipped) != 1 || !strings.Contains(skipped[0], "src/busybox:v1") || !strings.Contains(skipped[0], ld.String()) {
		t.Errorf("store without a layer: skipped %q, %v; want busybox skipped, naming %s", skipped, err, ld)
	}
	if got := r.Tags("src/multi"); fmt.Sprint(got) != "[v2]" {
		t.Errorf("store without a busybox layer: src/multi tags %q, want [v2]", got)
	}
}

// TestConformance runs the OCI distribution-spec conformance suite's pull
// and content-discovery tests (push disabled, as for read-only
// registries) against the layout served: its tags, manifests, blobs and
// referrers named as preloaded content. (Its digest-header checks stay
// off: for preloaded content the suite does not look at the response, so
// requiring the header fails whatever the registry sends. TestAPI checks
// the header.)
func TestConformance(t *testing.T) {
	s := makeSources(t)
	r := registry.New()
	if err := r.AddLayout("conformance/repo1", "", s.layout); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r)

	var manifests, blobs []string
	imgs := []v1.Image{s.busybox, s.artifact}
	im, err := s.multi.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range im.Manifests {
		img, err := s.multi.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	for _, img := range imgs {
		manifests = append(manifests, digest(t, img).String())
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, m.Config.Digest.String())
		for _, l := range m.Layers {
			blobs = append(blobs, l.Digest.String())
		}
	}
	results := t.TempDir()
	cmd := exec.CommandContext(t.Context(), hosttest.Path(t, "conformance"))
	cmd.Dir = results
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+addr, "OCI_TLS=disabled",
		"OCI_REPO1=conformance/repo1", "OCI_REPO2=conformance/repo1",
		"OCI_RESULTS_DIR="+results,
		"OCI_API_PUSH=false", "OCI_API_BLOBS_DELETE=false", "OCI_API_MANIFESTS_DELETE=false", "OCI_API_TAGS_DELETE=false",
		// Only the read-only tests: this version of the suite, asked for
		// nothing else, reports the blob tests it skips with no data and
		// then panics writing its results.
		"OCI_FILTER_TEST=OCI Conformance Test/read-only",
		"OCI_RO_DATA_TAGS=v1 v2",
		"OCI_RO_DATA_MANIFESTS="+strings.Join(manifests, " "),
		"OCI_RO_DATA_BLOBS="+strings.Join(blobs, " "),
		"OCI_RO_DATA_REFERRERS="+digest(t, s.busybox).String(),
	)
	out, err := cmd.CombinedOutput()
	junit, _ := os.ReadFile(filepath.Join(results, "junit.xml"))
	if err != nil {
		t.Fatalf("conformance: %v\n%s\n%s", err, out, junit)
	}
	// The suite passes when it tests nothing: count what passed.
	var report struct {
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Suites   []struct {
			Cases []struct {
				Name   string `xml:"name,attr"`
				Status string `xml:"status,attr"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(junit, &report); err != nil {
		t.Fatalf("conformance's junit.xml: %v\n%s", err, junit)
	}
	passed := map[string]int{}
	for _, s := range report.Suites {
		for _, c := range s.Cases {
			if c.Status == "passed" {
				passed[c.Name[strings.LastIndex(c.Name, "/")+1:]]++
			}
		}
	}
	t.Logf("conformance: passed %v; %d failures, %d errors", passed, report.Failures, report.Errors)
	// A test per manifest, tag, blob and referrer subject.
	for name, want := range map[string]int{
		"manifest-by-tag": 2, "manifest-head-by-tag": 2, "tag-list": 1, "referrers": 1,
		"manifest-by-digest": len(manifests), "manifest-head-by-digest": len(manifests),
		"blob-get": len(blobs), "blob-head": len(blobs),
	} {
		if passed[name] != want {
			t.Errorf("conformance: %d %s tests passed, want %d", passed[name], name, want)
		}
	}
	if report.Failures+report.Errors > 0 {
		t.Errorf("conformance: %d failures, %d errors\n%s", report.Failures, report.Errors, junit)
	}
}

package netconf

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/netnstest"
	"github.com/vishvananda/netlink"
)

// The tests run Up in a child process (this test binary, re-executed with
// `ip netns exec`) inside a network namespace the test creates, against
// dnsmasq in a second namespace joined by veth pairs. Nothing leaves those
// namespaces; deleting them removes the veths.

const (
	helperEnv     = "OCIBOOT_NETCONF_HELPER" // holds a helperRequest as JSON
	resultPrefix  = "NETCONF-RESULT "        // Up's result, as JSON
	logPrefix     = "NETCONF-LOG "           // a line of Options.Log, as it comes
	donePrefix    = "NETCONF-DONE "          // Maintain's result and error, as JSON, once it returned
	releasePrefix = "NETCONF-RELEASED "      // Release's error and log, as JSON, once it returned
)

type helperRequest struct {
	Interfaces []string
	Ifaces     []string // for ParseIface
	KernelIP   string   // for ParseKernelIP, when not empty
	Timeout    time.Duration
	ResolvConf string
	// MatchPrefix, when not empty, makes the links whose names start
	// with it the "ethernet" links (the test has veths only).
	MatchPrefix string
	// Maintain runs Maintain after Up until the helper's stdin closes.
	Maintain bool
	// Release runs Release once the helper's stdin closes, with Up's
	// result, or Maintain's when Maintain is set.
	Release bool
}

type helperLease struct {
	Interface, Address, Gateway, Server string
	DNS, Search, NTP                    []string
	MTU                                 int
	Duration                            time.Duration
	AfterStart                          time.Duration // from Up's start to the ACK
}

type helperResult struct {
	Leases   []helperLease
	Static   []string // Iface.String()
	NTP, DNS []string
	Hostname string // from KernelIP
	Err      string
	Log      string
	Elapsed  time.Duration
}

// helperRelease is what Release did in the helper.
type helperRelease struct {
	Err string
	Log string // what Release wrote to its log
}

// lineWriter prints each line written to it with logPrefix, and keeps
// them.
type lineWriter struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for line := range strings.Lines(string(p)) {
		fmt.Printf("\n%s%s", logPrefix, line)
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func ipStrings(ips []net.IP) []string {
	var s []string
	for _, ip := range ips {
		s = append(s, ip.String())
	}
	return s
}

// TestHelperProcess is the child side: it runs Up (and Maintain) as asked
// and prints the result. It does nothing in a normal test run.
func TestHelperProcess(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		return
	}
	var req helperRequest
	if err := json.Unmarshal([]byte(raw), &req); err != nil {
		t.Fatalf("bad %s: %v", helperEnv, err)
	}
	log := &lineWriter{}
	o := Options{
		Interfaces: req.Interfaces,
		Timeout:    req.Timeout,
		ResolvConf: req.ResolvConf,
		Log:        log,
	}
	for _, s := range req.Ifaces {
		i, err := ParseIface(s)
		if err != nil {
			t.Fatal(err)
		}
		o.Ifaces = append(o.Ifaces, i)
	}
	var res helperResult
	if req.KernelIP != "" {
		k, err := ParseKernelIP(req.KernelIP)
		if err != nil {
			t.Fatal(err)
		}
		o = k.Apply(o)
		res.Hostname = k.Hostname
	}
	if req.MatchPrefix != "" {
		o.match = func(l netlink.Link) bool { return strings.HasPrefix(l.Attrs().Name, req.MatchPrefix) }
	}
	start := time.Now()
	r, err := Up(context.Background(), o)
	res.Log, res.Elapsed = log.String(), time.Since(start)
	if err != nil {
		res.Err = err.Error()
	}
	res.addResult(r, start)
	printJSON(t, resultPrefix, res)
	if !req.Maintain && !req.Release {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	if req.Maintain {
		m, err := Maintain(ctx, o, r)
		done := helperResult{Elapsed: time.Since(start)}
		if err != nil {
			done.Err = err.Error()
		}
		done.addResult(m, start)
		printJSON(t, donePrefix, done)
		r = m
	} else {
		<-ctx.Done()
	}
	if req.Release {
		rlog := &lineWriter{}
		var rel helperRelease
		if err := Release(context.Background(), r, rlog); err != nil {
			rel.Err = err.Error()
		}
		rel.Log = rlog.String()
		printJSON(t, releasePrefix, rel)
	}
}

// addResult fills in what r holds, with the leases' times from start.
func (res *helperResult) addResult(r *Result, start time.Time) {
	if r == nil {
		return
	}
	for _, l := range r.Leases {
		hl := helperLease{
			Interface:  l.Interface,
			Address:    l.Address.String(),
			Server:     l.Server.String(),
			Search:     l.Search,
			DNS:        ipStrings(l.DNS),
			NTP:        ipStrings(l.NTP),
			MTU:        l.MTU,
			Duration:   l.Duration,
			AfterStart: l.Obtained.Sub(start),
		}
		if l.Gateway != nil {
			hl.Gateway = l.Gateway.String()
		}
		res.Leases = append(res.Leases, hl)
	}
	for _, i := range r.Static {
		res.Static = append(res.Static, i.String())
	}
	res.NTP, res.DNS = ipStrings(r.NTP), ipStrings(r.DNS)
}

// printJSON prints v as JSON on a line of its own after prefix.
func printJSON(t *testing.T, prefix string, v any) {
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("\n%s%s\n", prefix, out)
}

// helper is a running child.
type helper struct {
	t     *testing.T
	ns    string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // its stdout, line by line; closed at its end
	out   strings.Builder
}

// startHelper runs Up (and Maintain and Release, if asked) inside
// namespace ns.
func startHelper(t *testing.T, ns string, req helperRequest) *helper {
	t.Helper()
	exe, err := os.Executable() // not /proc/self/exe: ip would resolve that to itself
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), req.Timeout+60*time.Second)
	h := &helper{t: t, ns: ns, lines: make(chan string, 1000)}
	h.cmd = exec.CommandContext(ctx, "ip", "netns", "exec", ns, exe, "-test.run=^TestHelperProcess$")
	h.cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
	h.cmd.Stderr = os.Stderr
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("starting the helper in %s: %v", ns, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	t.Cleanup(func() {
		h.stdin.Close()
		for range h.lines {
		}
		if err := h.cmd.Wait(); err != nil {
			t.Errorf("helper in %s: %v (a data race, with -race?)", ns, err)
		}
		cancel()
	})
	return h
}

// next returns the next line starting with prefix, without it, within d.
func (h *helper) next(prefix string, d time.Duration) (string, bool) {
	h.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case line, ok := <-h.lines:
			if !ok {
				return "", false
			}
			h.out.WriteString(line + "\n")
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				return rest, true
			}
		case <-timeout:
			return "", false
		}
	}
}

// result waits for Up's result.
func (h *helper) result(d time.Duration) helperResult {
	h.t.Helper()
	var res helperResult
	h.decode(resultPrefix, d, &res)
	h.t.Logf("Up in %s took %s; log:\n%s", h.ns, res.Elapsed, res.Log)
	return res
}

// decode waits up to d for the line starting with prefix and decodes the
// JSON it holds into v.
func (h *helper) decode(prefix string, d time.Duration, v any) {
	h.t.Helper()
	line, ok := h.next(prefix, d)
	if !ok {
		h.t.Fatalf("helper in %s printed no %q line within %s; output:\n%s", h.ns, prefix, d, h.out.String())
	}
	if err := json.Unmarshal([]byte(line), v); err != nil {
		h.t.Fatalf("helper line %s%s: %v", prefix, line, err)
	}
}

// waitLog waits up to d for a log line holding substr and returns it.
func (h *helper) waitLog(substr string, d time.Duration) string {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for {
		line, ok := h.next(logPrefix, time.Until(deadline))
		if !ok {
			h.t.Fatalf("no log line with %q within %s; output:\n%s", substr, d, h.out.String())
		}
		h.t.Logf("log: %s", line)
		if strings.Contains(line, substr) {
			return line
		}
	}
}

// stop ends Maintain and returns its result, with its error in Err.
func (h *helper) stop() helperResult {
	h.t.Helper()
	h.stdin.Close()
	var res helperResult
	h.decode(donePrefix, 10*time.Second, &res)
	return res
}

// release ends Maintain if it runs, and returns what Release then did.
func (h *helper) release() helperRelease {
	h.t.Helper()
	h.stdin.Close() // a second Close, after stop, does nothing
	var rel helperRelease
	h.decode(releasePrefix, 15*time.Second, &rel)
	h.t.Logf("Release in %s: error %q; log:\n%s", h.ns, rel.Err, rel.Log)
	return rel
}

// runUp runs Up inside namespace ns and returns what it did.
func runUp(t *testing.T, ns string, req helperRequest) helperResult {
	t.Helper()
	return startHelper(t, ns, req).result(req.Timeout + 30*time.Second)
}

// run runs a command that sets up the test network and returns its output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNetns creates a network namespace removed when the test ends.
func newNetns(t *testing.T, tag string) string {
	t.Helper()
	name := fmt.Sprintf("ocibt-%s-%d", tag, os.Getpid())
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("deleting netns %s: %v\n%s", name, err, out)
		}
	})
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// vethPair links client link cname in cns with server link sname in sns,
// gives sname the address saddr (CIDR) if not empty, and sets it up.
func vethPair(t *testing.T, cns, cname, sns, sname, saddr string) {
	t.Helper()
	run(t, "ip", "-n", cns, "link", "add", "name", cname, "type", "veth", "peer", "name", sname, "netns", sns)
	if saddr != "" {
		run(t, "ip", "-n", sns, "addr", "add", saddr, "dev", sname)
	}
	run(t, "ip", "-n", sns, "link", "set", sname, "up")
}

// linkUp sets client link cname up and waits until its peer sname in sns
// is operationally up.
func linkUp(t *testing.T, cns, cname, sns, sname string) {
	t.Helper()
	run(t, "ip", "-n", cns, "link", "set", cname, "up")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		out := run(t, "ip", "-n", sns, "link", "show", sname)
		if strings.Contains(out, "state UP") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s not up after a minute:\n%s", sname, sns, out)
		}
	}
}

// startDnsmasq runs dnsmasq as a DHCP server only (no DNS) in ns and waits
// until it listens.
func startDnsmasq(t *testing.T, ns string, args ...string) *netnstest.DHCPServer {
	t.Helper()
	return netnstest.Dnsmasq(t, ns, args...)
}

func TestUpLeasesOnSeveralLinks(t *testing.T) {
	t.Parallel()
	cns, sns := newNetns(t, "lc"), newNetns(t, "ls")
	vethPair(t, cns, "c0", sns, "s0", "10.213.7.1/24")
	vethPair(t, cns, "c1", sns, "s1", "10.213.8.1/24")
	vethPair(t, cns, "c2", sns, "s2", "") // no DHCP server behind it
	startDnsmasq(t, sns, "--interface=s0", "--interface=s1",
		"--dhcp-range=set:one,10.213.7.100,10.213.7.150,255.255.255.0,2h",
		"--dhcp-option=tag:one,option:router,10.213.7.1",
		"--dhcp-option=tag:one,option:dns-server,10.213.7.53",
		"--dhcp-option=tag:one,option:domain-search,ci.test,lab.test",
		"--dhcp-option=tag:one,option:mtu,1400",
		"--dhcp-range=set:two,10.213.8.100,10.213.8.150,255.255.255.0,1h",
		// option 121 overrides the router option (RFC 3442).
		"--dhcp-option=tag:two,option:router,10.213.8.9",
		"--dhcp-option=tag:two,option:classless-static-route,0.0.0.0/0,10.213.8.1,10.99.0.0/16,10.213.8.254",
		"--dhcp-option=tag:two,option:dns-server,10.213.8.53",
	)
	// The server ends only start sending once the kernel's link watcher
	// has seen their carrier, up to a second after the peer comes up: wait
	// for that, so that the time to lease is the DHCP exchange's. c2 stays
	// down, for Up to set it up.
	linkUp(t, cns, "c0", sns, "s0")
	linkUp(t, cns, "c1", sns, "s1")
	resolv := filepath.Join(t.TempDir(), "etc", "resolv.conf")

	res := runUp(t, cns, helperRequest{Interfaces: []string{"c0", "c1", "c2"}, Timeout: 3 * time.Second, ResolvConf: resolv})

	if res.Err != "" {
		t.Fatalf("Up: %s", res.Err)
	}
	if len(res.Leases) != 2 {
		t.Fatalf("got %d leases, want 2 (c0, c1): %+v", len(res.Leases), res.Leases)
	}
	c0, c1 := res.Leases[0], res.Leases[1]
	for _, c := range []struct {
		l              helperLease
		name, prefix   string
		gateway, dns   string
		mtu            int
		duration       time.Duration
		wantSearchList []string
	}{
		{c0, "c0", "10.213.7.", "10.213.7.1", "10.213.7.53", 1400, 2 * time.Hour, []string{"ci.test", "lab.test"}},
		{c1, "c1", "10.213.8.", "10.213.8.1", "10.213.8.53", 0, time.Hour, nil},
	} {
		ip, ipnet, err := net.ParseCIDR(c.l.Address)
		if err != nil || c.l.Interface != c.name || !strings.HasPrefix(ip.String(), c.prefix) || ip[len(ip)-1] < 100 || ip[len(ip)-1] > 150 {
			t.Errorf("lease %+v: want %s with an address in %s100-150", c.l, c.name, c.prefix)
			continue
		}
		if ones, _ := ipnet.Mask.Size(); ones != 24 {
			t.Errorf("%s: prefix /%d, want /24", c.name, ones)
		}
		if c.l.Gateway != c.gateway || strings.Join(c.l.DNS, " ") != c.dns || c.l.MTU != c.mtu ||
			c.l.Duration != c.duration || c.l.Server != c.gateway || strings.Join(c.l.Search, " ") != strings.Join(c.wantSearchList, " ") {
			t.Errorf("%s lease %+v: want gateway/server %s, dns %s, mtu %d, duration %s, search %v",
				c.name, c.l, c.gateway, c.dns, c.mtu, c.duration, c.wantSearchList)
		}
		t.Logf("%s: lease %s after %s", c.name, c.l.Address, c.l.AfterStart)
	}

	wantLine := fmt.Sprintf("c0: %s via 10.213.7.1, dns 10.213.7.53, lease 2h0m0s from 10.213.7.1\n", c0.Address)
	if !strings.Contains(res.Log, wantLine) {
		t.Errorf("log lacks %q:\n%s", wantLine, res.Log)
	}
	if !strings.Contains(res.Log, "c2: no DHCPv4 lease") {
		t.Errorf("log does not report c2's failure:\n%s", res.Log)
	}

	routes := run(t, "ip", "-n", cns, "-4", "route", "show")
	for _, want := range []string{
		"default via 10.213.7.1 dev c0 proto dhcp src " + strings.Split(c0.Address, "/")[0],
		"default via 10.213.8.1 dev c1 proto dhcp",
		"10.99.0.0/16 via 10.213.8.254 dev c1 proto dhcp",
	} {
		if !strings.Contains(routes, want) {
			t.Errorf("routes in %s lack %q:\n%s", cns, want, routes)
		}
	}
	if strings.Contains(routes, "10.213.8.9") {
		t.Errorf("router option used despite option 121:\n%s", routes)
	}
	if link := run(t, "ip", "-n", cns, "link", "show", "c0"); !strings.Contains(link, "mtu 1400") {
		t.Errorf("c0 MTU not set to 1400:\n%s", link)
	}
	for _, name := range []string{"lo", "c2"} {
		if link := run(t, "ip", "-n", cns, "link", "show", name); !strings.Contains(link, ",UP") {
			t.Errorf("%s is not up:\n%s", name, link)
		}
	}

	got, err := os.ReadFile(resolv)
	if err != nil {
		t.Fatal(err)
	}
	want := "# from the DHCP lease on c0, the DHCP lease on c1\nnameserver 10.213.7.53\nnameserver 10.213.8.53\nsearch ci.test lab.test\n"
	if string(got) != want {
		t.Errorf("resolv.conf = %q, want %q", got, want)
	}
}

func TestUpNoServer(t *testing.T) {
	t.Parallel()
	cns, sns := newNetns(t, "nc"), newNetns(t, "ns")
	vethPair(t, cns, "c0", sns, "s0", "10.213.9.1/24")
	resolv := filepath.Join(t.TempDir(), "resolv.conf")

	const timeout = 2 * time.Second
	res := runUp(t, cns, helperRequest{Interfaces: []string{"c0"}, Timeout: timeout, ResolvConf: resolv})

	for _, want := range []string{"no link configured within 2s", "c0: no DHCPv4 lease"} {
		if !strings.Contains(res.Err, want) {
			t.Errorf("error %q lacks %q", res.Err, want)
		}
	}
	if len(res.Leases) != 0 {
		t.Errorf("got leases %+v, want none", res.Leases)
	}
	// The error names the timeout; it cannot have passed early.
	if res.Elapsed < timeout {
		t.Errorf("Up gave up after %s, before its %s", res.Elapsed, timeout)
	}
	if _, err := os.Stat(resolv); !os.IsNotExist(err) {
		t.Errorf("resolv.conf written without a lease (stat: %v)", err)
	}
}

func TestUpNoEthernet(t *testing.T) {
	t.Parallel()
	ns := newNetns(t, "ne")
	// veths are virtual links, which Up must not take for NICs.
	run(t, "ip", "-n", ns, "link", "add", "name", "v0", "type", "veth", "peer", "name", "v1")

	res := runUp(t, ns, helperRequest{Timeout: time.Second})
	for _, want := range []string{"no ethernet link found", "lo", "v0", "v1"} {
		if !strings.Contains(res.Err, want) {
			t.Errorf("error %q lacks %q", res.Err, want)
		}
	}

	res = runUp(t, ns, helperRequest{Interfaces: []string{"nosuch0"}, Timeout: time.Second})
	if !strings.Contains(res.Err, `interface "nosuch0"`) {
		t.Errorf("error %q does not name the missing interface", res.Err)
	}
}

// sysctl reads a sysctl inside namespace ns.
func sysctl(t *testing.T, ns, key string) string {
	t.Helper()
	return strings.TrimSpace(run(t, "ip", "netns", "exec", ns, "cat", filepath.Join("/proc/sys", key)))
}

// wantLines checks that out holds every line of want.
func wantLines(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

func TestUpStatic(t *testing.T) {
	t.Parallel()
	hostForward, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	cns, sns := newNetns(t, "sc"), newNetns(t, "ss")
	vethPair(t, cns, "c0", sns, "s0", "10.213.10.1/24")
	resolv := filepath.Join(t.TempDir(), "resolv.conf")

	res := runUp(t, cns, helperRequest{
		Ifaces: []string{"c0,address=10.213.10.2/24,address=fd00:213:10::2/64,gateway=10.213.10.1," +
			"nameserver=10.213.10.53,nameserver=fd00:213:10::53," +
			"route=10.213.50.0/24:10.213.10.254,route=10.213.51.0/24:10.213.99.1,route=fd00:213:50::/48:fd00:213:10::fe,forward"},
		Timeout:    3 * time.Second,
		ResolvConf: resolv,
	})
	if res.Err != "" {
		t.Fatalf("Up: %s", res.Err)
	}
	if len(res.Leases) != 0 || len(res.Static) != 1 || !strings.HasPrefix(res.Static[0], "c0,address=10.213.10.2/24,") {
		t.Errorf("result %+v, want c0 static and no lease", res)
	}
	wantLines(t, "log", res.Log, "c0: 10.213.10.2/24 fd00:213:10::2/64 via 10.213.10.1, dns 10.213.10.53 fd00:213:10::53, "+
		"route 10.213.50.0/24 via 10.213.10.254, route 10.213.51.0/24 via 10.213.99.1, route fd00:213:50::/48 via fd00:213:10::fe, forwarding (static)\n")

	wantLines(t, "addresses", run(t, "ip", "-n", cns, "addr", "show", "c0"),
		"inet 10.213.10.2/24", "inet6 fd00:213:10::2/64 scope global nodad", ",UP,LOWER_UP")
	wantLines(t, "IPv4 routes", run(t, "ip", "-n", cns, "-4", "route", "show"),
		"default via 10.213.10.1 dev c0 proto static metric 1",
		"10.213.50.0/24 via 10.213.10.254 dev c0 proto static metric 1",
		"10.213.51.0/24 via 10.213.99.1 dev c0 proto static metric 1", // onlink: not in c0's prefix
		"onlink")
	wantLines(t, "IPv6 routes", run(t, "ip", "-n", cns, "-6", "route", "show"),
		"fd00:213:50::/48 via fd00:213:10::fe dev c0 proto static metric 1")
	wantLines(t, "route to 10.213.51.7", run(t, "ip", "-n", cns, "route", "get", "10.213.51.7"),
		"10.213.51.7 via 10.213.99.1 dev c0 src 10.213.10.2")

	for _, key := range []string{"net/ipv4/ip_forward", "net/ipv4/conf/c0/forwarding"} {
		if got := sysctl(t, cns, key); got != "1" {
			t.Errorf("%s in %s = %s, want 1", key, cns, got)
		}
	}
	if after, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err != nil || string(after) != string(hostForward) {
		t.Errorf("the host's ip_forward changed from %q to %q (%v)", hostForward, after, err)
	}

	got, err := os.ReadFile(resolv)
	if err != nil {
		t.Fatal(err)
	}
	if want := "# from the settings of c0\nnameserver 10.213.10.53\nnameserver fd00:213:10::53\n"; string(got) != want {
		t.Errorf("resolv.conf = %q, want %q", got, want)
	}
}

func TestUpStaticAndDHCP(t *testing.T) {
	t.Parallel()
	cns, sns := newNetns(t, "mc"), newNetns(t, "ms")
	vethPair(t, cns, "c0", sns, "s0", "10.213.11.1/24")
	vethPair(t, cns, "c1", sns, "s1", "10.213.12.1/24")
	vethPair(t, cns, "c2", sns, "s2", "") // not asked for: left alone
	startDnsmasq(t, sns, "--interface=s0", "--interface=s1",
		// A server on c0's link too: Up must not run DHCP there.
		"--dhcp-range=10.213.11.100,10.213.11.150,255.255.255.0,1h",
		"--dhcp-range=10.213.12.100,10.213.12.150,255.255.255.0,1h",
		"--dhcp-option=option:dns-server,10.213.12.53",
		"--dhcp-option=option:ntp-server,10.213.12.123",
	)
	linkUp(t, cns, "c1", sns, "s1")
	resolv := filepath.Join(t.TempDir(), "resolv.conf")

	res := runUp(t, cns, helperRequest{
		Ifaces:     []string{"c0,address=10.213.11.2/24,gateway=10.213.11.1,nameserver=10.213.11.53", "c1,dhcp"},
		Timeout:    5 * time.Second,
		ResolvConf: resolv,
	})
	if res.Err != "" {
		t.Fatalf("Up: %s", res.Err)
	}
	if len(res.Static) != 1 || res.Static[0] != "c0,address=10.213.11.2/24,gateway=10.213.11.1,nameserver=10.213.11.53" {
		t.Errorf("static = %q, want c0's", res.Static)
	}
	if len(res.Leases) != 1 || res.Leases[0].Interface != "c1" || !strings.HasPrefix(res.Leases[0].Address, "10.213.12.") {
		t.Fatalf("leases = %+v, want one on c1 in 10.213.12.0/24", res.Leases)
	}
	if strings.Join(res.Leases[0].NTP, " ") != "10.213.12.123" || strings.Join(res.NTP, " ") != "10.213.12.123" {
		t.Errorf("NTP servers: lease %v, result %v; want 10.213.12.123", res.Leases[0].NTP, res.NTP)
	}
	wantLines(t, "log", res.Log,
		"c0: 10.213.11.2/24 via 10.213.11.1, dns 10.213.11.53 (static)\n",
		fmt.Sprintf("c1: %s via 10.213.12.1, dns 10.213.12.53, ntp 10.213.12.123, lease 1h0m0s from 10.213.12.1\n", res.Leases[0].Address))

	if addrs := run(t, "ip", "-n", cns, "-4", "addr", "show", "c0"); strings.Contains(addrs, "10.213.11.1") {
		t.Errorf("c0 got a DHCP address besides its static one:\n%s", addrs)
	}
	if link := run(t, "ip", "-n", cns, "addr", "show", "c2"); strings.Contains(link, ",UP") || strings.Contains(link, "inet ") {
		t.Errorf("c2, not asked for, was touched:\n%s", link)
	}
	wantLines(t, "routes", run(t, "ip", "-n", cns, "-4", "route", "show"),
		"default via 10.213.11.1 dev c0 proto static metric 1")

	got, err := os.ReadFile(resolv)
	if err != nil {
		t.Fatal(err)
	}
	if want := "# from the settings of c0, the DHCP lease on c1\nnameserver 10.213.11.53\nnameserver 10.213.12.53\n"; string(got) != want {
		t.Errorf("resolv.conf = %q, want %q", got, want)
	}
	if strings.Join(res.DNS, " ") != "10.213.11.53 10.213.12.53" {
		t.Errorf("result DNS = %v", res.DNS)
	}
}

func TestUpKernelIP(t *testing.T) {
	t.Parallel()
	cns, sns := newNetns(t, "kc"), newNetns(t, "ks")
	vethPair(t, cns, "c0", sns, "s0", "")
	vethPair(t, cns, "c1", sns, "s1", "10.213.13.1/24")

	res := runUp(t, cns, helperRequest{
		KernelIP:   "10.213.13.2::10.213.13.1:255.255.255.0:box-1:c1:off:10.213.13.53::10.213.13.123",
		Timeout:    3 * time.Second,
		ResolvConf: filepath.Join(t.TempDir(), "resolv.conf"),
	})
	if res.Err != "" {
		t.Fatalf("Up: %s", res.Err)
	}
	if res.Hostname != "box-1" || strings.Join(res.NTP, " ") != "10.213.13.123" || strings.Join(res.DNS, " ") != "10.213.13.53" {
		t.Errorf("hostname %q, NTP %v, DNS %v; want box-1, 10.213.13.123, 10.213.13.53", res.Hostname, res.NTP, res.DNS)
	}
	wantLines(t, "log", res.Log, "c1: 10.213.13.2/24 via 10.213.13.1, dns 10.213.13.53 (static)\n")
	wantLines(t, "c1", run(t, "ip", "-n", cns, "addr", "show", "c1"), "inet 10.213.13.2/24")
	wantLines(t, "routes", run(t, "ip", "-n", cns, "-4", "route", "show"), "default via 10.213.13.1 dev c1 proto static")
	if link := run(t, "ip", "-n", cns, "link", "show", "c0"); strings.Contains(link, ",UP") {
		t.Errorf("c0, not asked for, was set up:\n%s", link)
	}

	// ip=off: the loopback link only.
	ons := newNetns(t, "ko")
	run(t, "ip", "-n", ons, "link", "set", "lo", "down")
	run(t, "ip", "-n", ons, "link", "add", "name", "c0", "type", "veth", "peer", "name", "c1")
	res = runUp(t, ons, helperRequest{KernelIP: "off", Timeout: 3 * time.Second, MatchPrefix: "c"})
	if res.Err != "" || len(res.Leases)+len(res.Static) != 0 || !strings.Contains(res.Log, "loopback only") {
		t.Errorf("ip=off: %+v, want nothing configured", res)
	}
	if lo := run(t, "ip", "-n", ons, "link", "show", "lo"); !strings.Contains(lo, ",UP") {
		t.Errorf("ip=off: lo is not up:\n%s", lo)
	}
	if link := run(t, "ip", "-n", ons, "link", "show", "c0"); strings.Contains(link, ",UP") {
		t.Errorf("ip=off: c0 was set up:\n%s", link)
	}
}

func TestMaintainLateLinks(t *testing.T) {
	t.Parallel()
	cns, sns := newNetns(t, "ac"), newNetns(t, "as")
	vethPair(t, cns, "c0", sns, "s0", "10.213.14.1/24")
	// c1's carrier comes when its peer s1 is set up, after Up.
	run(t, "ip", "-n", cns, "link", "add", "name", "c1", "type", "veth", "peer", "name", "s1", "netns", sns)
	run(t, "ip", "-n", sns, "addr", "add", "10.213.15.1/24", "dev", "s1")
	// The veth pair c3-s3 is made after Up; dnsmasq serves s3 once it is
	// there.
	startDnsmasq(t, sns, "--interface=s0", "--interface=s1",
		"--dhcp-range=set:a,10.213.14.100,10.213.14.150,255.255.255.0,1h",
		"--dhcp-option=tag:a,option:dns-server,10.213.14.53",
		"--dhcp-range=10.213.15.100,10.213.15.150,255.255.255.0,1h",
	)
	linkUp(t, cns, "c0", sns, "s0")
	resolv := filepath.Join(t.TempDir(), "resolv.conf")

	// c1's carrier comes only after Up returns: with a timeout of an
	// hour, Up must return once c0 has its lease, not wait for c1.
	h := startHelper(t, cns, helperRequest{Timeout: time.Hour, ResolvConf: resolv, MatchPrefix: "c", Maintain: true})
	res := h.result(5 * time.Minute)
	if res.Err != "" || len(res.Leases) != 1 || res.Leases[0].Interface != "c0" {
		t.Fatalf("Up = %+v, want a lease on c0", res)
	}

	start := time.Now()
	run(t, "ip", "-n", sns, "link", "set", "s1", "up")
	vethPair(t, cns, "c3", sns, "s3", "10.213.16.1/24")
	startDnsmasq(t, sns, "--interface=s3",
		"--dhcp-range=10.213.16.100,10.213.16.150,255.255.255.0,1h",
		"--dhcp-option=option:dns-server,10.213.16.53",
	)
	for _, prefix := range []string{"c1: 10.213.15.", "c3: 10.213.16."} {
		line := h.waitLog(prefix, 2*time.Minute)
		t.Logf("%s %s after the link came", line, time.Since(start))
	}
	wantLines(t, "c1", run(t, "ip", "-n", cns, "addr", "show", "c1"), "inet 10.213.15.")
	wantLines(t, "c3", run(t, "ip", "-n", cns, "addr", "show", "c3"), "inet 10.213.16.")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		got, _ := os.ReadFile(resolv)
		want := "# from the DHCP lease on c0, the DHCP lease on c3\nnameserver 10.213.14.53\nnameserver 10.213.16.53\n"
		if string(got) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("resolv.conf = %q, want %q", got, want)
			break
		}
	}

	// A link that goes away is forgotten.
	run(t, "ip", "-n", cns, "link", "del", "c3")
	h.waitLog("c3: link removed", time.Minute)
	m := h.stop()
	if m.Err != "" {
		t.Errorf("Maintain: %s", m.Err)
	}
	// Its result holds the links configured then: c0 from Up, c1 from
	// Maintain; not c3, gone.
	if len(m.Leases) != 2 || m.Leases[0].Interface != "c0" || m.Leases[0].Address != res.Leases[0].Address ||
		m.Leases[1].Interface != "c1" || !strings.HasPrefix(m.Leases[1].Address, "10.213.15.") {
		t.Errorf("Maintain's leases = %+v, want c0's from Up and one on c1 in 10.213.15.0/24", m.Leases)
	}
	if strings.Join(m.DNS, " ") != "10.213.14.53" {
		t.Errorf("Maintain's DNS = %v, want 10.213.14.53", m.DNS)
	}
	got, _ := os.ReadFile(resolv)
	if want := "# from the DHCP lease on c0\nnameserver 10.213.14.53\n"; string(got) != want {
		t.Errorf("resolv.conf after c3 left = %q, want %q", got, want)
	}
}

func TestMaintainRenews(t *testing.T) {
	t.Parallel()
	cns, sns := newNetns(t, "rc"), newNetns(t, "rs")
	vethPair(t, cns, "c0", sns, "s0", "10.213.17.1/24")
	server := []string{"--interface=s0", "--dhcp-option=option:router,10.213.17.1",
		// dnsmasq's shortest lease is 2 minutes: T1 and T2 make it renew
		// sooner.
		"--dhcp-option=option:T1,2", "--dhcp-option=option:T2,4"}
	d := startDnsmasq(t, sns, append(server, "--dhcp-range=10.213.17.100,10.213.17.150,255.255.255.0,2m")...)
	linkUp(t, cns, "c0", sns, "s0")
	// Count the DHCP messages sent to the server's address rather than
	// broadcast: renewals (this only touches the test's namespace).
	run(t, "ip", "netns", "exec", sns, "iptables", "-A", "INPUT", "-p", "udp", "--dport", "67", "-d", "10.213.17.1", "-j", "ACCEPT")

	h := startHelper(t, cns, helperRequest{Interfaces: []string{"c0"}, Timeout: 5 * time.Second,
		ResolvConf: filepath.Join(t.TempDir(), "resolv.conf"), Maintain: true})
	res := h.result(2 * time.Minute)
	if res.Err != "" || len(res.Leases) != 1 {
		t.Fatalf("Up = %+v, want a lease on c0", res)
	}
	addr := res.Leases[0].Address
	h.waitLog("c0: renewed "+addr+", lease 2m0s from 10.213.17.1", 2*time.Minute)
	ip := strings.Split(addr, "/")[0]
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) { // its log lags
		n := strings.Count(d.Log(), "DHCPACK(s0) "+ip)
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("dnsmasq sent %d ACKs for %s, want 2 (the lease and its renewal):\n%s", n, ip, d.Log())
			break
		}
	}
	// The renewal went straight to the server (RENEWING, not REBINDING).
	counters := run(t, "ip", "netns", "exec", sns, "iptables", "-L", "INPUT", "-v", "-n", "-x")
	unicast := "0"
	for line := range strings.Lines(counters) {
		if f := strings.Fields(line); len(f) > 0 && strings.Contains(line, "dpt:67") {
			unicast = f[0]
		}
	}
	if unicast == "0" {
		t.Errorf("no DHCP message unicast to the server; counters:\n%s", counters)
	}
	t.Logf("%s DHCP messages unicast to the server", unicast)

	// A new server that does not know the lease refuses its renewal:
	// Maintain drops the address and gets a new one.
	d.Stop()
	startDnsmasq(t, sns, append(server, "--dhcp-authoritative", "--dhcp-range=10.213.17.200,10.213.17.210,255.255.255.0,2m")...)
	h.waitLog("c0: lost the lease on "+addr+" (the server refused the lease (DHCPNAK)", 2*time.Minute)
	line := h.waitLog("c0: 10.213.17.2", 2*time.Minute)
	wantLines(t, "lease line", line, "via 10.213.17.1, lease 2m0s from 10.213.17.1")
	addrs := run(t, "ip", "-n", cns, "-4", "addr", "show", "c0")
	if strings.Contains(addrs, ip+"/") || !strings.Contains(addrs, "inet 10.213.17.2") {
		t.Errorf("c0 addresses after the new lease, want 10.213.17.2xx only:\n%s", addrs)
	}
	wantLines(t, "routes", run(t, "ip", "-n", cns, "-4", "route", "show"), "default via 10.213.17.1 dev c0 proto dhcp src 10.213.17.2")
	m := h.stop()
	if m.Err != "" {
		t.Errorf("Maintain: %s", m.Err)
	}
	// Its result holds the new lease, not Up's.
	if len(m.Leases) != 1 || !strings.HasPrefix(m.Leases[0].Address, "10.213.17.2") || !strings.Contains(line, m.Leases[0].Address+" via") {
		t.Errorf("Maintain's leases = %+v, want the new one of %q", m.Leases, line)
	}
}

func TestMaintainRebinds(t *testing.T) {
	t.Parallel()
	cns, sns := newNetns(t, "bc"), newNetns(t, "bs")
	vethPair(t, cns, "c0", sns, "s0", "10.213.18.1/24")
	startDnsmasq(t, sns, "--interface=s0", "--dhcp-range=10.213.18.100,10.213.18.150,255.255.255.0,2m",
		"--dhcp-option=option:T1,1", "--dhcp-option=option:T2,3")
	linkUp(t, cns, "c0", sns, "s0")
	// The server does not hear renewals sent to its address, only
	// broadcasts: the lease is kept by rebinding at T2.
	run(t, "ip", "netns", "exec", sns, "iptables", "-A", "INPUT", "-p", "udp", "--dport", "67", "-d", "10.213.18.1", "-j", "DROP")

	h := startHelper(t, cns, helperRequest{Interfaces: []string{"c0"}, Timeout: 5 * time.Second,
		ResolvConf: filepath.Join(t.TempDir(), "resolv.conf"), Maintain: true})
	res := h.result(2 * time.Minute)
	if res.Err != "" || len(res.Leases) != 1 {
		t.Fatalf("Up = %+v, want a lease on c0", res)
	}
	addr := res.Leases[0].Address
	h.waitLog("c0: 10.213.18.1 did not renew the lease on "+addr+"; asking any server", 2*time.Minute)
	h.waitLog("c0: renewed "+addr+", lease 2m0s from 10.213.18.1", 2*time.Minute)
	if m := h.stop(); m.Err != "" {
		t.Errorf("Maintain: %s", m.Err)
	}
}

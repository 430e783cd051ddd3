package netconf

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The tests run Up in a child process (this test binary, re-executed with
// `ip netns exec`) inside a network namespace the test creates, against
// dnsmasq in a second namespace joined by veth pairs. Nothing leaves those
// namespaces; deleting them removes the veths.

const (
	helperEnv    = "OCIBOOT_NETCONF_HELPER" // holds a helperRequest as JSON
	resultPrefix = "NETCONF-RESULT "
)

type helperRequest struct {
	Interfaces []string
	Timeout    time.Duration
	ResolvConf string
}

type helperLease struct {
	Interface, Address, Gateway, Server string
	DNS, Search                         []string
	MTU                                 int
	Duration                            time.Duration
	AfterStart                          time.Duration // from Up's start to the ACK
}

type helperResult struct {
	Leases  []helperLease
	Err     string
	Log     string
	Elapsed time.Duration
}

// TestHelperProcess is the child side: it runs Up as asked and prints the
// result. It does nothing in a normal test run.
func TestHelperProcess(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		return
	}
	var req helperRequest
	if err := json.Unmarshal([]byte(raw), &req); err != nil {
		t.Fatalf("bad %s: %v", helperEnv, err)
	}
	var log bytes.Buffer
	start := time.Now()
	leases, err := Up(context.Background(), Options{
		Interfaces: req.Interfaces,
		Timeout:    req.Timeout,
		ResolvConf: req.ResolvConf,
		Log:        &log,
	})
	res := helperResult{Log: log.String(), Elapsed: time.Since(start)}
	if err != nil {
		res.Err = err.Error()
	}
	for _, l := range leases {
		hl := helperLease{
			Interface:  l.Interface,
			Address:    l.Address.String(),
			Server:     l.Server.String(),
			Search:     l.Search,
			MTU:        l.MTU,
			Duration:   l.Duration,
			AfterStart: l.Obtained.Sub(start),
		}
		if l.Gateway != nil {
			hl.Gateway = l.Gateway.String()
		}
		for _, ip := range l.DNS {
			hl.DNS = append(hl.DNS, ip.String())
		}
		res.Leases = append(res.Leases, hl)
	}
	out, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("\n%s%s\n", resultPrefix, out)
}

// runUp runs Up inside namespace ns and returns what it did.
func runUp(t *testing.T, ns string, req helperRequest) helperResult {
	t.Helper()
	exe, err := os.Executable() // not /proc/self/exe: ip would resolve that to itself
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), req.Timeout+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, exe, "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper in %s: %v\n%s", ns, err, out)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), resultPrefix); ok {
			var res helperResult
			if err := json.Unmarshal([]byte(line), &res); err != nil {
				t.Fatalf("helper result %q: %v", line, err)
			}
			t.Logf("Up in %s took %s; log:\n%s", ns, res.Elapsed, res.Log)
			return res
		}
	}
	t.Fatalf("helper in %s printed no result:\n%s", ns, out)
	return helperResult{}
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
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out := run(t, "ip", "-n", sns, "link", "show", sname)
		if strings.Contains(out, "state UP") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s not up after 5s:\n%s", sname, sns, out)
		}
	}
}

// startDnsmasq runs dnsmasq as a DHCP server only (no DNS) in ns and waits
// until it listens.
func startDnsmasq(t *testing.T, ns string, args ...string) {
	t.Helper()
	args = append([]string{"netns", "exec", ns, "dnsmasq", "--no-daemon",
		"--conf-file=/dev/null", "--port=0", "--bind-interfaces", "--leasefile-ro",
		"--no-ping", "--log-dhcp", "--log-facility=-"}, args...)
	cmd := exec.Command("ip", args...) // ip execs dnsmasq in place: same PID
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dnsmasq: %v", err)
	}
	ready := make(chan struct{})
	logs := make(chan string, 1)
	go func() {
		var b strings.Builder
		started := false
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if !started && strings.Contains(sc.Text(), "started, version") { // logged once its sockets are open
				started = true
				close(ready)
			}
		}
		logs <- b.String()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		out := <-logs
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("dnsmasq output:\n%s", out)
		}
	})
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("dnsmasq did not start within 10s")
	}
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
	want := "# from the DHCP lease on c0\nnameserver 10.213.7.53\nsearch ci.test lab.test\n"
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

	for _, want := range []string{"no DHCPv4 lease on c0 within 2s", "c0: "} {
		if !strings.Contains(res.Err, want) {
			t.Errorf("error %q lacks %q", res.Err, want)
		}
	}
	if len(res.Leases) != 0 {
		t.Errorf("got leases %+v, want none", res.Leases)
	}
	if res.Elapsed < timeout || res.Elapsed > timeout+time.Second {
		t.Errorf("Up gave up after %s, want about %s", res.Elapsed, timeout)
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

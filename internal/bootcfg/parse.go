package bootcfg

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ociboot/ociboot/internal/clock"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/netconf"
	"github.com/ociboot/ociboot/internal/trust"
)

// paramDef is one parameter ociboot knows, under all its spellings.
type paramDef struct {
	// names are the accepted keys, in the order messages list them.
	names []string
	// apply checks one value and records it in the plan. It is called for
	// every value in command-line order: a repeatable parameter appends,
	// any other overwrites (the last value wins).
	apply func(p *Plan, v Param) error
	// key, when set, makes the parameter keyed: kernel values replace
	// baked-in values of the same key only (a registry's mirrors or
	// credentials), instead of the whole list.
	key func(v Param) string
	// secret parameters have their values left out of messages.
	secret bool
	// mask returns the value with its secret part replaced (see
	// MaskSecrets); a parameter that is not secret as a whole is shown
	// masked in messages.
	mask func(string) string
	// early parameters are applied before extra_args_url is fetched, so
	// the extra args may not set them.
	early bool
	// failsafe parameters are also read from a command line that is
	// refused, as far as their own values are valid: what to do on the
	// failure, and whether an image is booted as the OS (which PID 1
	// decides first of all).
	failsafe bool
}

// knownParams is the table of parameters in the ociboot. and b2c.
// namespaces. Adding a parameter means adding a row.
func knownParams() []paramDef {
	return []paramDef{
		{names: []string{"ociboot.container", "ociboot.run", "b2c.container", "b2c.run"}, apply: applyContainer, mask: maskCreds},
		{names: []string{"ociboot.service", "b2c.service"}, apply: applyService, mask: maskCreds},
		{names: []string{"ociboot.post_container", "b2c.post_container"}, apply: applyPostContainer, mask: maskCreds},
		{names: []string{"ociboot.pipefail", "b2c.pipefail"}, apply: applyPipefail},
		{names: []string{"ociboot.shutdown_cmd", "b2c.shutdown_cmd"}, apply: applyShutdownCmd},
		{names: []string{"ociboot.reboot_cmd", "b2c.reboot_cmd"}, apply: applyRebootCmd},
		{names: []string{"ociboot.on_failure"}, apply: applyOnFailure, failsafe: true},
		{names: []string{"ociboot.hostname", "b2c.hostname"}, apply: applyHostname, early: true},
		{names: []string{"ociboot.insmods", "b2c.insmods"}, apply: applyInsmods, early: true},
		{names: []string{"ociboot.keymap", "b2c.keymap"}, apply: applyKeymap, early: true},
		{names: []string{"ociboot.modules"}, apply: applyModules, early: true},
		{names: []string{"ociboot.coldplug"}, apply: applyColdplug, early: true},
		{names: []string{"modprobe.blacklist", "rd.driver.blacklist"}, apply: applyBlacklist, early: true},
		{names: []string{"ociboot.iface", "b2c.iface"}, apply: applyIface, early: true},
		{names: []string{"ip"}, apply: applyKernelIP, early: true},
		{names: []string{"ociboot.link_wait"}, apply: applyLinkWait, early: true},
		{names: []string{"ociboot.ntp_peer", "b2c.ntp_peer"}, apply: applyNTPPeer, early: true},
		{names: []string{"ociboot.extra_args_url", "b2c.extra_args_url"}, apply: applyExtraArgsURL, early: true},
		{names: []string{"ociboot.report"}, apply: applyReport, mask: maskURL},
		{names: []string{"ociboot.console_sections"}, apply: applyConsoleSections, early: true},
		{names: []string{"ociboot.insecure_registry"}, apply: applyInsecureRegistry},
		{names: []string{"ociboot.registry_mirror"}, apply: applyRegistryMirror, key: mirrorKey},
		{names: []string{"ociboot.registry_auth"}, apply: applyRegistryAuth, key: authKey, secret: true, mask: maskPassword},
		{names: []string{"ociboot.platform"}, apply: applyPlatform},
		{names: []string{"ociboot.pull_timeout"}, apply: applyPullTimeout},
		{names: []string{"ociboot.verify"}, apply: applyVerify},
		{names: []string{"ociboot.cache_device", "b2c.cache_device"}, apply: applyCacheDevice},
		{names: []string{"ociboot.cache_wait"}, apply: applyCacheWait},
		{names: []string{"ociboot.cache_quota"}, apply: applyCacheQuota},
		{names: []string{"ociboot.swap", "b2c.swap"}, apply: applySwap},
		{names: []string{"ociboot.filesystem", "b2c.filesystem"}, apply: applyFilesystem},
		{names: []string{"ociboot.s3", "ociboot.minio", "b2c.minio"}, apply: applyS3, key: s3Key, secret: true, mask: maskS3},
		{names: []string{"ociboot.volume", "b2c.volume"}, apply: applyVolume, key: volumeKey, secret: true, mask: maskVolume},
		{names: []string{"ociboot.push_timeout"}, apply: applyPushTimeout},
		{names: []string{"ociboot.poweroff_delay", "b2c.poweroff_delay"}, apply: applyPoweroffDelay, failsafe: true},
		{names: []string{"ociboot.root", "rd.container.rootfs"}, apply: applyRoot, early: true, failsafe: true},
		{names: []string{"ociboot.root_size", "rd.tmpfs.size"}, apply: applyRootSize},
		{names: []string{"ociboot.init", "init"}, apply: applyInit},
		{names: []string{"ociboot.init_args"}, apply: applyInitArgs},
		{names: []string{"ociboot.keep_network"}, apply: applyKeepNetwork},
		{names: []string{"rd.shell"}, apply: applyRDShell, failsafe: true},
		{names: []string{"selinux"}, apply: applySELinux},
		{names: []string{"enforcing"}, apply: applyEnforcing},
	}
}

// source is one parameter together with where it was written, for messages.
type source struct {
	Param
	origin string
}

// Parse builds the Plan from the kernel command line and the baked-in
// defaults. Parameters on the kernel command line replace the baked-in ones
// of the same parameter (all spellings of a parameter count as one; a
// repeatable parameter is replaced as a whole list, except registry mirrors
// and credentials, replaced registry by registry). Keys in the ociboot. and
// b2c. namespaces that ociboot does not know are errors; other parameters are
// left to the kernel. Parsing stops at a bare `--`, after which the kernel
// passes the arguments to init.
//
// Parse never returns a nil Plan: with an error, the Plan holds only the
// failsafe parameters that could be read (on_failure, rd.shell,
// poweroff_delay, root), so that PID 1 honours them when the command line
// itself is at fault.
func Parse(kernelCmdline string, baked Baked) (*Plan, error) {
	return parse(baked, []layer{{baked.Cmdline, "baked-in"}, {kernelCmdline, "kernel"}})
}

// ParseWithExtra is Parse with extra, the command line fetched from
// ociboot.extra_args_url, read as more kernel command line after it: a
// repeatable parameter's values are added to the kernel's, any other
// parameter replaces the kernel's value. The parameters applied before
// the extra args are fetched (network, time, modules, host name, root)
// may not be set there. Like Parse, it never returns a nil Plan.
func ParseWithExtra(kernelCmdline string, baked Baked, extra string) (*Plan, error) {
	return parse(baked, []layer{{baked.Cmdline, "baked-in"}, {kernelCmdline, "kernel"}, {extra, "extra_args_url"}})
}

// layer is one command line and where it comes from, lowest first. The
// extra args' layer continues the kernel's instead of replacing it.
type layer struct{ cmdline, origin string }

func parse(baked Baked, layers []layer) (*Plan, error) {
	defs := knownParams()
	var byLayer [][][]source
	var first error
	for _, l := range layers {
		got, err := collect(l.cmdline, l.origin, defs)
		first = cmp.Or(first, err)
		if l.origin != "extra_args_url" {
			byLayer = append(byLayer, got)
			continue
		}
		kernel := byLayer[len(byLayer)-1]
		for i, def := range defs {
			if def.early && len(got[i]) > 0 {
				first = cmp.Or(first, fmt.Errorf("extra_args_url parameter %s comes too late: it is applied before the extra args are fetched; put it on the kernel command line", got[i][0].Key))
				continue
			}
			kernel[i] = append(kernel[i], got[i]...)
		}
	}
	plan := newPlan(baked)
	if first == nil {
		first = plan.apply(defs, byLayer, false)
	}
	if first != nil {
		safe := newPlan(baked)
		_ = safe.apply(defs, byLayer, true)
		return safe, first
	}
	return plan, nil
}

// newPlan is the Plan before any parameter: the defaults and what was
// baked in.
func newPlan(baked Baked) *Plan {
	p := &Plan{PoweroffDelay: -1, PushTimeout: DefaultPushTimeout, LinkWait: netconf.DefaultLinkWait, Registry: image.PullOptions{Timeout: image.DefaultPullTimeout, CACerts: baked.CACerts},
		shell: baked.Shell, keymaps: baked.Keymaps, Trust: baked.Trust}
	if p.Trust != nil && len(p.Trust.Keys()) > 0 {
		p.Registry.Verify = p.Trust.Verification
	}
	for host, c := range baked.RegistryAuth {
		if p.Registry.Auth == nil {
			p.Registry.Auth = map[string]image.Credential{}
		}
		p.Registry.Auth[image.NormalizeRegistry(host)] = c
	}
	return p
}

// apply applies every parameter's values, layer over layer, and checks
// the result; with failsafe set, only the failsafe parameters, each value
// that is not valid skipped.
func (p *Plan) apply(defs []paramDef, byLayer [][][]source, failsafe bool) error {
	for i, def := range defs {
		if failsafe && !def.failsafe {
			continue
		}
		var values []source
		for _, l := range byLayer {
			switch {
			case def.key != nil:
				values = mergeByKey(values, l[i], def.key)
			case len(l[i]) > 0:
				values = l[i]
			}
		}
		for _, v := range values {
			err := def.apply(p, v.Param)
			if err != nil && !failsafe {
				shown := v.Param.String()
				switch {
				case def.secret:
					shown = v.Key + " (value not shown: it holds a password)"
				case def.mask != nil && v.HasValue:
					shown = v.Key + `="` + def.mask(v.Value) + `"`
				}
				return fmt.Errorf("%s parameter %s: %w", v.origin, shown, err)
			}
		}
	}
	if failsafe {
		p.failOver()
		return nil
	}
	if err := p.checkRoot(); err != nil {
		return err
	}
	if err := p.checkStorage(); err != nil {
		return err
	}
	if err := p.checkVolumes(); err != nil {
		return err
	}
	return p.checkNames()
}

// mergeByKey returns the baked-in values whose key the kernel does not
// give, followed by the kernel's values.
func mergeByKey(baked, kernel []source, key func(Param) string) []source {
	given := map[string]bool{}
	for _, v := range kernel {
		given[key(v.Param)] = true
	}
	var out []source
	for _, v := range baked {
		if !given[key(v.Param)] {
			out = append(out, v)
		}
	}
	return append(out, kernel...)
}

// collect splits a command line and sorts its ociboot. and b2c. parameters
// by definition: the result's i-th list holds the values of defs[i], in
// command-line order. The error is the first unknown parameter's; the
// known ones are all sorted.
func collect(cmdline, origin string, defs []paramDef) ([][]source, error) {
	byDef := make([][]source, len(defs))
	var first error
	for _, p := range SplitKernelCmdline(cmdline) {
		if p.Key == "--" && !p.HasValue {
			break
		}
		i := findParam(defs, p.Key)
		if i < 0 && !inNamespace(p.Key) {
			continue // the kernel's, or another program's
		}
		if i < 0 {
			hint := ""
			if near := nearest(p.Key, allNames(defs)); near != "" {
				hint = fmt.Sprintf(" (did you mean %s?)", near)
			}
			first = cmp.Or(first, fmt.Errorf("unknown %s parameter %q%s: ociboot's parameters are listed in docs/cmdline.md",
				origin, p.Key, hint))
			continue
		}
		byDef[i] = append(byDef[i], source{p, origin})
	}
	return byDef, first
}

// inNamespace reports whether key is in a namespace whose parameters must
// all be known.
func inNamespace(key string) bool {
	return strings.HasPrefix(key, "ociboot.") || strings.HasPrefix(key, "b2c.")
}

func findParam(defs []paramDef, key string) int {
	for i, d := range defs {
		for _, n := range d.names {
			if n == key {
				return i
			}
		}
	}
	return -1
}

func allNames(defs []paramDef) []string {
	var names []string
	for _, d := range defs {
		names = append(names, d.names...)
	}
	return names
}

var errNoValue = errors.New("needs a value")

func value(v Param) (string, error) {
	if !v.HasValue {
		return "", errNoValue
	}
	return v.Value, nil
}

// containerParam reads a container parameter's value, in the dialect its
// name says: b2c. containers run as boot2container runs them.
func containerParam(v Param) (Container, error) {
	s, err := value(v)
	if err != nil {
		return Container{}, fmt.Errorf("%w: [OPTIONS] IMAGE [COMMAND [ARG...]]", err)
	}
	c, err := ParseContainer(s)
	if err != nil {
		return Container{}, err
	}
	if strings.HasPrefix(v.Key, "b2c.") {
		c.Dialect = DialectB2C
	}
	return c, nil
}

func applyContainer(p *Plan, v Param) error {
	c, err := containerParam(v)
	if err == nil {
		p.Containers = append(p.Containers, c)
	}
	return err
}

func applyService(p *Plan, v Param) error {
	c, err := containerParam(v)
	if err == nil {
		p.Services = append(p.Services, c)
	}
	return err
}

func applyPostContainer(p *Plan, v Param) error {
	c, err := containerParam(v)
	if err == nil {
		p.PostContainers = append(p.PostContainers, c)
	}
	return err
}

// applyPipefail takes the bare flag (boot2container's spelling) or a
// boolean value.
func applyPipefail(p *Plan, v Param) error {
	on, err := boolean(v)
	p.Pipefail = on
	return err
}

// command reads a command line run inside the initramfs: shell words,
// the first an absolute path or a program name.
func command(v Param) ([]string, error) {
	const want = "a command such as \"/bin/poweroff -f\" (split like a shell would)"
	s, err := value(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, want)
	}
	args, err := ShellSplit(s)
	if err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("empty command, expected %s", want)
	}
	return args, nil
}

func applyShutdownCmd(p *Plan, v Param) error {
	args, err := command(v)
	p.ShutdownCmd = args
	return err
}

func applyRebootCmd(p *Plan, v Param) error {
	args, err := command(v)
	p.RebootCmd = args
	return err
}

func applyOnFailure(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: poweroff, reboot or shell", err)
	}
	switch FailureAction(s) {
	case FailPowerOff, FailReboot:
		p.OnFailure = FailureAction(s)
		return nil
	case FailShell:
		if p.shell == "" {
			return errors.New("this initramfs has no shell: make it with `ociboot build --shell`, or use poweroff or reboot")
		}
		p.OnFailure = FailShell
		return nil
	}
	return fmt.Errorf("got %q, expected poweroff, reboot or shell", s)
}

// applyHostname checks what sethostname takes: 1 to 64 bytes, here
// limited to a DNS label or name (letters, digits, '-' and '.').
func applyHostname(p *Plan, v Param) error {
	const want = "a host name of 1 to 64 letters, digits, '-' and '.', such as runner-12"
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: %s", err, want)
	}
	ok := s != "" && len(s) <= 64 && s[0] != '-' && s[0] != '.'
	for _, r := range s {
		ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.')
	}
	if !ok {
		return fmt.Errorf("got %q, expected %s", s, want)
	}
	p.Hostname = s
	return nil
}

// applyInsmods takes module files shipped in the initramfs: absolute
// paths, or paths relative to /.
func applyInsmods(p *Plan, v Param) error {
	const want = "comma-separated paths of module files in the initramfs, such as /lib/modules/extra/a.ko,b.ko.xz"
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: %s", err, want)
	}
	var files []string
	for _, f := range strings.Split(s, ",") {
		if f == "" || strings.ContainsAny(f, " \t\n") || !hasModuleSuffix(f) {
			return fmt.Errorf("module file %q: expected %s", f, want)
		}
		files = append(files, f)
	}
	p.Insmods = files
	return nil
}

func hasModuleSuffix(f string) bool {
	for _, suffix := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(f, suffix) {
			return true
		}
	}
	return false
}

func applyModules(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: comma-separated module names", err)
	}
	var mods []string
	for _, m := range strings.Split(s, ",") {
		if !isName(m) {
			return fmt.Errorf("module name %q: expected comma-separated module names made of letters, digits, '_' and '-' (such as virtio_net,e1000)", m)
		}
		mods = append(mods, m)
	}
	p.Modules = mods
	return nil
}

func applyColdplug(p *Plan, v Param) error {
	on, err := boolean(v)
	p.NoColdplug = !on
	return err
}

// applyBlacklist adds to the modules coldplug leaves out, as modprobe's
// and dracut's parameters do.
func applyBlacklist(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: comma-separated module names", err)
	}
	for _, m := range strings.Split(s, ",") {
		if !isName(m) {
			return fmt.Errorf("module name %q: expected comma-separated module names made of letters, digits, '_' and '-' (such as e1000,nouveau)", m)
		}
		if m = strings.ReplaceAll(m, "-", "_"); !slices.Contains(p.Blacklist, m) {
			p.Blacklist = append(p.Blacklist, m)
		}
	}
	return nil
}

// isName tells whether s is a name as module and filesystem names are:
// letters, digits, '_' and '-'.
func isName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func applyInsecureRegistry(p *Plan, v Param) error {
	s, err := value(v)
	if err == nil {
		err = image.CheckRegistryHost(s)
	}
	if err != nil {
		return fmt.Errorf("%w (a registry is HOST[:PORT], such as registry.lan:5000, 10.0.2.100:5000 or [fd00::1]:5000)", err)
	}
	p.Registry.Insecure = append(p.Registry.Insecure, s)
	return nil
}

func applyPoweroffDelay(p *Plan, v Param) error {
	const want = "a whole number of seconds, 0 or more"
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: %s", err, want)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || s[0] == '+' {
		return fmt.Errorf("got %q, expected %s", s, want)
	}
	p.PoweroffDelay = n
	return nil
}

// mirrorKey is the registry a mirror parameter is for.
func mirrorKey(v Param) string {
	if m, err := image.ParseMirror(v.Value); err == nil {
		return m.Registry
	}
	return v.Value
}

func applyRegistryMirror(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: REGISTRY=MIRROR[|MIRROR…], such as docker.io=10.0.2.100:5000", err)
	}
	m, err := image.ParseMirror(s)
	if err != nil {
		return err
	}
	for i := range p.Registry.Mirrors {
		if p.Registry.Mirrors[i].Registry == m.Registry {
			p.Registry.Mirrors[i].Mirrors = append(p.Registry.Mirrors[i].Mirrors, m.Mirrors...)
			return nil
		}
	}
	p.Registry.Mirrors = append(p.Registry.Mirrors, m)
	return nil
}

// authKey is the registry a credential parameter is for.
func authKey(v Param) string {
	if host, _, err := image.ParseRegistryAuth(v.Value); err == nil {
		return host
	}
	return v.Value
}

func applyRegistryAuth(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: HOST[:PORT],USER,PASSWORD", err)
	}
	host, c, err := image.ParseRegistryAuth(s)
	if err != nil {
		return err
	}
	if p.Registry.Auth == nil {
		p.Registry.Auth = map[string]image.Credential{}
	}
	p.Registry.Auth[host] = c
	return nil
}

func applyPlatform(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: OS/ARCH[/VARIANT] or ARCH[/VARIANT], such as linux/arm64 or arm/v7", err)
	}
	p.Registry.Platform, err = image.ParsePlatform(s)
	return err
}

func applyLinkWait(p *Plan, v Param) error {
	d, err := durationValue(v, 0, "a duration such as 3s or 500ms, or a number of seconds (0: no wait after the first lease)")
	p.LinkWait = d
	return err
}

func applyPullTimeout(p *Plan, v Param) error {
	d, err := durationValue(v, time.Second, "a duration such as 10m, 90s or 1h30m, or a number of seconds, at least 1s")
	p.Registry.Timeout = d
	return err
}

func applyVerify(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: require or warn", err)
	}
	t := p.Trust
	if t == nil {
		t, _ = trust.New(nil, trust.Policy{}) // checks nothing
	}
	if t, err = t.WithMode(trust.Mode(s)); err != nil {
		return err
	}
	if len(t.Keys()) > 0 {
		p.Trust, p.Registry.Verify = t, t.Verification
	}
	return nil
}

// durationValue reads a duration (10m, 90s, 1h30m) or a whole number of
// seconds, at least least; want says what is expected, for errors.
func durationValue(v Param, least time.Duration, want string) (time.Duration, error) {
	s, err := value(v)
	if err != nil {
		return 0, fmt.Errorf("%w: %s", err, want)
	}
	d, err := time.ParseDuration(s)
	if n, nerr := strconv.Atoi(s); nerr == nil && s[0] != '+' && s[0] != '-' {
		d, err = time.Duration(n)*time.Second, nil
		if n > int(math.MaxInt64/int64(time.Second)) {
			err = errors.New("too long")
		}
	}
	if err != nil || d < least {
		return 0, fmt.Errorf("got %q, expected %s", s, want)
	}
	return d, nil
}

// nearest returns the name closest to key in spelling, when it is close
// enough to be a likely typo ("" otherwise).
func nearest(key string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if d := editDistance(key, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func applyNTPPeer(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: none, auto or an NTP server's HOST[:PORT]", err)
	}
	p.NTPPeer, err = clock.ParsePeer(s)
	return err
}

func applyExtraArgsURL(p *Plan, v Param) (err error) {
	p.ExtraArgsURL, err = httpURL(v)
	return err
}

func applyReport(p *Plan, v Param) (err error) {
	p.Report, err = httpURL(v)
	return err
}

// httpURL reads an http:// or https:// URL; messages show it masked.
func httpURL(v Param) (string, error) {
	const want = "an http:// or https:// URL"
	s, err := value(v)
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, want)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("got %q, expected %s", maskURL(s), want)
	}
	return s, nil
}

// maskURL hides a URL's password and query, where tokens travel.
func maskURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "***")
	}
	if u.RawQuery != "" {
		u.RawQuery = "***"
	}
	return strings.Replace(u.String(), "%2A%2A%2A", "***", 1)
}

func applyConsoleSections(p *Plan, v Param) error {
	s, err := value(v)
	if err == nil && (s == "gitlab" || s == "none") {
		p.ConsoleSections = s
		if s == "none" {
			p.ConsoleSections = ""
		}
		return nil
	}
	return fmt.Errorf("got %q, expected gitlab (GitLab CI's collapsible sections) or none", s)
}

// Secrets are the secret values the plan holds (registry passwords and
// tokens, S3 keys, volume keys, credentials in URLs), for what must
// never show them.
func (p *Plan) Secrets() []string {
	var out []string
	cred := func(c image.Credential) {
		out = append(out, c.Password, c.IdentityToken, c.RegistryToken)
	}
	for _, c := range p.Registry.Auth {
		cred(c)
	}
	for _, list := range [][]Container{p.Containers, p.Services, p.PostContainers} {
		for _, c := range list {
			if c.Registry.Creds != nil {
				cred(*c.Registry.Creds)
			}
		}
	}
	for _, e := range p.S3 {
		out = append(out, e.SecretKey)
	}
	for _, v := range p.Volumes {
		out = append(out, v.EncryptKey)
		if v.FscryptKey != nil {
			out = append(out, base64.StdEncoding.EncodeToString(v.FscryptKey))
		}
	}
	for _, s := range []string{p.Report, p.ExtraArgsURL} {
		if u, err := url.Parse(s); err == nil {
			pw, _ := u.User.Password()
			out = append(out, pw, u.RawQuery)
		}
	}
	return slices.DeleteFunc(out, func(s string) bool { return s == "" })
}

// maskPassword keeps the host and user of HOST,USER,PASSWORD.
func maskPassword(v string) string {
	host, rest, _ := strings.Cut(v, ",")
	user, _, _ := strings.Cut(rest, ",")
	return host + "," + user + ",***"
}

func applyIface(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: NAME,address=CIDR,gateway=IP,nameserver=IP,route=NET/LEN:GW,forward,dhcp", err)
	}
	i, err := netconf.ParseIface(s)
	if err != nil {
		return err
	}
	p.Ifaces = append(p.Ifaces, i)
	return nil
}

// applyKernelIP reads the kernel's ip= parameter, which ociboot applies
// itself (the last one wins, as in the kernel).
func applyKernelIP(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: dhcp, off, DEV:dhcp or CLIENT:SERVER:GW:MASK:HOST:DEV:AUTOCONF", err)
	}
	k, err := netconf.ParseKernelIP(s)
	if err != nil {
		return err
	}
	p.KernelIP = &k
	return nil
}

func applyKeymap(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: a console keymap name such as fr-latin1", err)
	}
	if !slices.Contains(p.keymaps, s) {
		if len(p.keymaps) == 0 {
			return fmt.Errorf("keymap %q: this initramfs has no keymaps: make it with `ociboot build --keymaps common` (or --keymaps %s)", s, s)
		}
		return fmt.Errorf("keymap %q: not in this initramfs, which has %s (add it with `ociboot build --keymaps`)", s, strings.Join(p.keymaps, ", "))
	}
	p.Keymap = s
	return nil
}

package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ociboot/ociboot/internal/netnstest"
	"github.com/ociboot/ociboot/internal/ntptest"
	"github.com/ociboot/ociboot/internal/registrytest"
	"github.com/ociboot/ociboot/internal/rootfstest"
	"github.com/ociboot/ociboot/internal/vm"
)

// ntpNetwork gives the VM a second NIC, a tap in a network namespace of
// the test's where dnsmasq leases addresses (and names the NTP server,
// option 42) and an SNTP responder answers at 192.168.77.1, an hour ahead.
func ntpNetwork(t *testing.T) (*os.File, *ntptest.Server) {
	t.Helper()
	ns := netnstest.New(t)
	tap := ns.Tap(t, "tap0", "192.168.77.1/24")
	var ntp *ntptest.Server
	if err := ns.Do(func() error {
		ntp = ntptest.Start(t, "192.168.77.1:123", time.Hour)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ns.DHCP(t, "tap0", "192.168.77.10", "192.168.77.20", "--dhcp-option=42,192.168.77.1")
	return tap, ntp
}

// podmanTests boots the command lines of public boot2container
// deployments, with this project's registry and images, and checks from
// inside containers the options whose effect needs the VM's cgroup
// controllers. The registry is reached with their --tls-verify=false
// only: the boots name no insecure registry.
func (f *fixture) podmanTests(t *testing.T) {
	reg := fmt.Sprintf("%s:%d", vm.GuestHost, f.reg.Port)
	push := func(repoTag string, scripts map[string]string) {
		registrytest.Push(t, f.reg, repoTag, registrytest.BusyboxImage(t, registrytest.LayerFromFiles(t, scripts)))
	}
	push("infra/machine_registration:latest", map[string]string{"usr/bin/register": "#!/bin/sh\n" + `[ -t 0 ] && tty=" on a terminal"; echo "registered $(hostname)$tty"`})
	push("lab/gateway:1", map[string]string{
		"etc/resolv.conf": "nameserver 192.0.2.53\n",
		"bin/init": "#!/bin/sh\n" + `echo "gateway init: $(cat /etc/resolv.conf)"; echo kept > /mnt/permanent/f; ` +
			`ls -d /mnt/tmp && echo "gateway init done"`,
	})
	push("lab/job:1", map[string]string{"entrypoint-dxvk": "#!/bin/sh\n" + `echo "dxvk in $(pwd)"; echo trace > /traces/t; cat /job/input 2>/dev/null; echo dxvk done`})

	t.Run("lab-registration", func(t *testing.T) {
		t.Parallel()
		tap, ntp := ntpNetwork(t)
		cmdline := fmt.Sprintf(`b2c.container="-ti --tls-verify=false docker://%s/infra/machine_registration:latest register" `+
			`b2c.ntp_peer="192.168.77.1" b2c.cache_device=none loglevel=6`, reg)
		res, console, err := f.bootWith(t, cmdline, machine{taps: []*os.File{tap}, secure: true})
		if err != nil {
			t.Fatalf("vm.Run: %v", err)
		}
		if res.Status != 0 || ntp.Requests() == 0 {
			t.Errorf("status %d, %d NTP requests: want 0 and some", res.Status, ntp.Requests())
		}
		inOrder(t, console, "clock: 192.168.77.1 stratum 2", "registered ociboot on a terminal", "Execution is over, pipeline status: 0")
	})

	t.Run("lab-gateway-job", func(t *testing.T) {
		t.Parallel()
		tap, ntp := ntpNetwork(t)
		cgroups := `for f in memory.max memory.swap.max memory.high memory.low cpu.max cpu.weight cpuset.cpus cpuset.mems pids.max io.max io.weight; do echo $f: $(cat /sys/fs/cgroup/$f); done`
		cmdline := fmt.Sprintf(`b2c.container="--dns=none -v tmp:/mnt/tmp -v perm:/mnt/permanent --tls-verify=false --entrypoint=/bin/init docker://%[1]s/lab/gateway:1" `+
			`b2c.ntp_peer=auto b2c.pipefail b2c.cache_device=auto net.ifnames=0 quiet `+
			`b2c.container="-v JOB-job:/job -w /job -v traces:/traces --tls-verify=false -w /job docker://%[1]s/lab/job:1 /entrypoint-dxvk" `+
			`ociboot.container="--tls-verify=false -m 64m --memory-swap 96m --memory-reservation 16m --cpus 0.5 -c 512 --cpuset-cpus 0 --cpuset-mems 0 `+
			`--pids-limit 50 --cgroup-conf memory.high=48m --device-write-bps /dev/vda:1mb --blkio-weight 300 `+
			`%[1]s/lab/job:1 sh -c '%[2]s'"`, reg, cgroups)
		disk := blankDisk(t, 256<<20)
		res, console, err := f.bootWith(t, cmdline, machine{taps: []*os.File{tap}, disks: []vm.Disk{{Path: disk}}, secure: true})
		if err != nil {
			t.Fatalf("vm.Run: %v", err)
		}
		if res.Status != 0 || ntp.Requests() == 0 {
			t.Errorf("status %d, %d NTP requests: want 0 and some", res.Status, ntp.Requests())
		}
		inOrder(t, console, `(ext4 "B2C_CACHE") mounted on /storage`,
			// --dns=none: the image's own resolv.conf.
			"gateway init: nameserver 192.0.2.53", "gateway init done",
			"dxvk in /job", "dxvk done",
			// crun converts cgroup v1's scales (cpu shares, blkio weights)
			// to cgroup v2's.
			"memory.max: 67108864", "memory.swap.max: 33554432", "memory.high: 50331648", "memory.low: 16777216",
			"cpu.max: 50000 100000", "cpu.weight: 20", "cpuset.cpus: 0", "cpuset.mems: 0", "pids.max: 50",
			" rbps=max wbps=1048576 riops=max wiops=max", "io.weight: default 2930",
			"Execution is over, pipeline status: 0")
	})
}

// containerMarkerUnit prints what the systemd-container test checks once
// multi-user.target is reached, then, unless STAY=1 is in the manager's
// environment (a service), ends the container: with systemctl poweroff
// when POWEROFF=1 is, else with systemctl exit 7.
const containerMarkerUnit = "[Unit]\nDescription=ociboot container test marker\nAfter=multi-user.target\n\n" +
	"[Service]\nType=oneshot\nStandardOutput=journal+console\n" +
	`ExecStart=/bin/sh -c 'echo "CONTAINER-MARKER target=$(systemctl is-active multi-user.target) pid1=$(cat /proc/1/comm) ` +
	`container=$(cat /run/systemd/container) machine-id=$(cat /etc/machine-id) run=$(findmnt -no FSTYPE /run) ` +
	`cgroup=$(findmnt -no OPTIONS /sys/fs/cgroup | cut -d, -f1) scope=$(cut -d: -f3 /proc/1/cgroup)"'` + "\n" +
	"ExecStart=/bin/sh -c 'test \"$STAY\" = 1 || if test \"$POWEROFF\" = 1; then systemctl poweroff; else systemctl exit 7; fi'\n" +
	"PassEnvironment=STAY POWEROFF\n\n" +
	"[Install]\nWantedBy=multi-user.target\n"

// webUnit serves /srv/www on 127.0.0.1:8080 with busybox's httpd, in
// the service only (STAY=1): the containers share the machine's network,
// where one port has one server.
const webUnit = "[Unit]\nDescription=ociboot test web server\n\n" +
	"[Service]\nPassEnvironment=STAY\nExecCondition=/bin/sh -c 'test \"$STAY\" = 1'\nExecStart=/usr/local/bin/busybox httpd -f -p 127.0.0.1:8080 -h /srv/www\n\n" +
	"[Install]\nWantedBy=multi-user.target\n"

// systemdContainerTests runs the Debian systemd root the switch-root
// tests boot, as an OCI image whose command is /sbin/init, as a
// container: in systemd mode, as a pipeline container that ends with
// systemctl exit 7, as a service a pipeline container talks to, stopped
// cleanly at the end; and with --systemd=false.
func (f *fixture) systemdContainerTests(t *testing.T) {
	t.Run("systemd-container", func(t *testing.T) {
		t.Parallel()
		bb, err := os.ReadFile(registrytest.BusyboxPath)
		if err != nil {
			t.Fatal(err)
		}
		base := rootfstest.Debian(t, "bookworm", systemdPackages...)
		tarPath := rootfstest.WithFiles(t, base,
			rootfstest.File{Path: "etc/systemd/system/ociboot-marker.service", Body: containerMarkerUnit},
			rootfstest.File{Path: "etc/systemd/system/multi-user.target.wants/ociboot-marker.service", Linkname: "/etc/systemd/system/ociboot-marker.service"},
			rootfstest.File{Path: "etc/systemd/system/ociboot-web.service", Body: webUnit},
			rootfstest.File{Path: "etc/systemd/system/multi-user.target.wants/ociboot-web.service", Linkname: "/etc/systemd/system/ociboot-web.service"},
			rootfstest.File{Path: "usr/local/bin/busybox", Body: string(bb), Mode: 0o755},
			rootfstest.File{Path: "srv/www/index.html", Body: "served by systemd in a container\n"},
		)
		img := registrytest.Image(t, v1.Config{Cmd: []string{"/sbin/init"}}, rootfstest.Layer(t, tarPath))
		ref := guestRef(registrytest.Push(t, f.reg, "e2e/debian-systemd-container:12", img))
		const marker = "CONTAINER-MARKER target=active"
		stamps := newStamper(marker)
		cmdline := fmt.Sprintf(`ociboot.container="%[1]s" `+
			`ociboot.service="-e STAY=1 %[1]s" `+
			`ociboot.container="%[2]s sh -c 'until wget -qO- http://127.0.0.1:8080/ 2>/dev/null; do sleep 0.5; done'" `+
			`ociboot.container="-e POWEROFF=1 %[1]s" `+
			`ociboot.post_container="--systemd=false --timeout 60 --stop-signal KILL %[1]s"`, ref, f.images["busybox"])
		res, console, err := f.bootWith(t, cmdline, machine{watch: stamps})
		if err != nil {
			t.Fatalf("vm.Run: %v", err)
		}
		if res.Status != 7 {
			t.Errorf("pipeline status %d, want 7: the systemd container's systemctl exit 7", res.Status)
		}
		// The container: systemd reaches multi-user.target, with what
		// systemd mode gives it, and its systemctl exit 7 is its status.
		inOrder(t, console, "container 1/3 ("+ref+"): systemd mode: ", marker+" pid1=systemd container=ociboot machine-id=",
			" run=tmpfs cgroup=rw scope=/init.scope", "container 1/3 ("+ref+") exited with status 7")
		// The service answers the pipeline container, and stops cleanly
		// with SIGRTMIN+3, its stop signal, at the end; --systemd=false
		// gives the old behaviour: systemd fails at once.
		inOrder(t, console, "service 1/1 ("+ref+"): systemd mode: ", "served by systemd in a container",
			"post container 1/1 ("+ref+") exited with status 255", "Halting system.", "service 1/1 ("+ref+"): stopped, status 0")
		// systemctl poweroff in the container gives 0.
		inOrder(t, console, "container 3/3 ("+ref+"): systemd mode: ", "CONTAINER-MARKER", "container 3/3 ("+ref+") exited with status 0")
		if strings.Contains(console, "post container 1/1 ("+ref+"): systemd mode") || strings.Contains(console, "killing it") {
			t.Error("the --systemd=false container ran in systemd mode, or a container had to be killed")
		}
		t.Logf("FIGURE systemd container: VM start to the container's marker %.1f s", stamps.at(marker).Seconds())
	})
}

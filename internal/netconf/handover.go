package netconf

import (
	"net"
	"time"

	"github.com/vishvananda/netlink"
)

// Handover describes the network configuration PID 1 leaves in place for
// the OS it hands the machine to (switch-root mode): what each link got,
// from DHCP or static settings, and the DNS and NTP servers. It is
// written as JSON (/run/ociboot/network.json) for the OS's network
// manager, cloud-init or scripts.
type Handover struct {
	// Hostname is the host name set from the command line (ip= or
	// hostname=); empty when none was given.
	Hostname string `json:"hostname,omitempty"`
	// Links are the configured links, in name order.
	Links []HandoverLink `json:"links"`
	// Nameservers and Search are what resolv.conf holds.
	Nameservers []string `json:"nameservers,omitempty"`
	Search      []string `json:"search,omitempty"`
	// NTP lists the NTP servers given or offered.
	NTP []string `json:"ntp,omitempty"`
}

// HandoverLink is one configured link.
type HandoverLink struct {
	Name string `json:"name"`
	// MAC is the link's hardware address, to match it by.
	MAC string `json:"mac,omitempty"`
	// Method is "dhcp", "static" or "static+dhcp".
	Method string `json:"method"`
	// Addresses are CIDRs, such as 10.0.2.15/24.
	Addresses []string `json:"addresses"`
	// Gateway is the default router.
	Gateway string `json:"gateway,omitempty"`
	// Routes are the other routes set, as NET/LEN:GATEWAY.
	Routes []string `json:"routes,omitempty"`
	// MTU is the link's MTU when DHCP set it.
	MTU int `json:"mtu,omitempty"`
	// DHCP describes the lease, for a client that takes it over.
	DHCP *HandoverLease `json:"dhcp,omitempty"`
}

// HandoverLease is a DHCPv4 lease in a Handover.
type HandoverLease struct {
	Server string `json:"server"`
	// Obtained is when the lease was last granted or renewed; Expires
	// when it ends (absent for an infinite lease).
	Obtained     time.Time  `json:"obtained"`
	Expires      *time.Time `json:"expires,omitempty"`
	LeaseSeconds int64      `json:"lease_seconds"`
}

// linkMAC is the MAC address of link name, "" when it has none.
func linkMAC(name string) string {
	if nl, err := netlink.LinkByName(name); err == nil && len(nl.Attrs().HardwareAddr) > 0 {
		return nl.Attrs().HardwareAddr.String()
	}
	return ""
}

// BootMAC is the MAC address of the link the machine booted from: the
// first to get a DHCP lease, else the first configured statically; ""
// when there is none.
func (r *Result) BootMAC() string {
	switch {
	case r == nil:
		return ""
	case len(r.Leases) > 0:
		return linkMAC(r.Leases[0].Interface)
	case len(r.Static) > 0:
		return linkMAC(r.Static[0].Name)
	}
	return ""
}

// Handover describes r, with hostname, for the OS.
func (r *Result) Handover(hostname string) Handover {
	h := Handover{Hostname: hostname}
	if r == nil {
		return h
	}
	links := map[string]*HandoverLink{}
	var order []string
	link := func(name string) *HandoverLink {
		if l, ok := links[name]; ok {
			return l
		}
		l := &HandoverLink{Name: name, Addresses: []string{}, MAC: linkMAC(name)}
		links[name] = l
		order = append(order, name)
		return l
	}
	for _, s := range r.Static {
		l := link(s.Name)
		l.Method = "static"
		for _, a := range s.Addresses {
			l.Addresses = append(l.Addresses, a.String())
		}
		if s.Gateway != nil {
			l.Gateway = s.Gateway.String()
		}
		for _, rt := range s.Routes {
			l.Routes = append(l.Routes, rt.String())
		}
	}
	for _, lease := range r.Leases {
		l := link(lease.Interface)
		if l.Method == "static" {
			l.Method = "static+dhcp"
		} else {
			l.Method = "dhcp"
		}
		l.Addresses = append(l.Addresses, lease.Address.String())
		if lease.Gateway != nil && l.Gateway == "" {
			l.Gateway = lease.Gateway.String()
		}
		l.MTU = lease.MTU
		hl := &HandoverLease{Server: ipString(lease.Server), Obtained: lease.Obtained.UTC(), LeaseSeconds: int64(lease.Duration / time.Second)}
		if _, _, end, ok := lease.schedule(); ok {
			end = end.UTC()
			hl.Expires = &end
		}
		l.DHCP = hl
		for _, s := range lease.Search {
			h.Search = appendString(h.Search, s)
		}
	}
	for _, name := range order {
		h.Links = append(h.Links, *links[name])
	}
	for _, ip := range r.DNS {
		h.Nameservers = append(h.Nameservers, ip.String())
	}
	for _, ip := range r.NTP {
		h.NTP = append(h.NTP, ip.String())
	}
	return h
}

func ipString(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}

func appendString(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

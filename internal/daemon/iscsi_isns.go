package daemon

import (
	"net/netip"
	"os"

	"github.com/costar-project/costar/internal/daemon/mgmt"
	"github.com/costar-project/costar/portprovider/iscsi/isns"
)

// newISNSClient builds the iSNS client; the management plane notifies it
// of every configuration change and it reads isnsState then. Its entity
// is this host, named by its host name as COMSTAR's.
func (d *Daemon) newISNSClient() *isns.Client {
	eid, err := os.Hostname()
	if err != nil || eid == "" {
		eid = "costar"
	}
	return isns.NewClient(eid, d.isnsState, d.log.With("component", "isns"))
}

// isnsState turns the management plane's view into the client's: the
// default portal group's portals are the actual listen addresses.
func (d *Daemon) isnsState() isns.State {
	v := d.mgr.ISNSView()
	st := isns.State{Enabled: v.Enabled, Servers: v.Servers}
	if !v.Enabled {
		return st
	}
	var defaults []netip.AddrPort
	for _, a := range d.Addrs() {
		if p, err := netip.ParseAddrPort(a); err == nil {
			defaults = append(defaults, p)
		}
	}
	for _, t := range v.Targets {
		it := isns.Target{Name: t.Name, Alias: t.Alias}
		if len(t.PortalGroups) == 0 {
			it.Groups = []isns.PortalGroup{{Tag: mgmt.DefaultTPGT, Portals: defaults}}
		}
		for _, g := range t.PortalGroups {
			pg := isns.PortalGroup{Tag: g.Tag}
			for _, a := range g.Portals {
				if p, err := netip.ParseAddrPort(a); err == nil {
					pg.Portals = append(pg.Portals, p)
				}
			}
			it.Groups = append(it.Groups, pg)
		}
		st.Targets = append(st.Targets, it)
	}
	return st
}

package mgmt

import (
	"slices"

	"github.com/costar-project/costar/internal/store"
)

// ISNSView is what the iSNS client registers: itadm's iSNS defaults and
// the online iSCSI targets with their portal groups.
type ISNSView struct {
	Enabled bool
	Servers []string // "host:port"
	Targets []ISNSTarget
}

// ISNSTarget is one online iSCSI target; no PortalGroups means the
// default portal group (tag DefaultTPGT, the daemon's portals).
type ISNSTarget struct {
	Name, Alias  string
	PortalGroups []PortalGroup
}

// ISNSView reads the published configuration; it never waits for a
// change in progress.
func (m *Manager) ISNSView() ISNSView {
	st := m.published.Load()
	d := st.ISCSI.Defaults
	v := ISNSView{Enabled: d.ISNS && len(d.ISNSServers) > 0, Servers: slices.Clone(d.ISNSServers)}
	for _, t := range st.Targets {
		if t.Protocol != store.ProtocolISCSI || t.Offline {
			continue
		}
		v.Targets = append(v.Targets, ISNSTarget{Name: t.Name, Alias: t.Alias, PortalGroups: iscsiSpec(st, t).PortalGroups})
	}
	return v
}

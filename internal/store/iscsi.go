package store

import "slices"

// ProtocolISCSI is the protocol of iSCSI targets; targets stored without
// a protocol (version 1 documents) are iSCSI.
const ProtocolISCSI = "iscsi"

// ISCSITarget is what only an iSCSI target node has: its portal group
// bindings and its authentication.
type ISCSITarget struct {
	TPGTs      []TPGT `json:"tpgts,omitempty"` // empty = default portal group (tag 1)
	Auth       string `json:"auth,omitempty"`  // "" = the defaults; none, chap, radius
	ChapUser   string `json:"chap_user,omitempty"`
	ChapSecret string `json:"chap_secret,omitempty"` // for mutual CHAP; never leaves the daemon
}

// ISCSI is the iSCSI port provider's own configuration (itadm).
type ISCSI struct {
	TPGs       []TPG       `json:"tpgs"`
	Initiators []Initiator `json:"initiators"`
	Defaults   Defaults    `json:"defaults"`
}

// TPGT binds a target to a portal group with a portal group tag. Tags are
// per target and stable: initiators see them in SendTargets and login.
type TPGT struct {
	TPG string `json:"tpg"`
	Tag uint16 `json:"tag"`
}

// TPG is a target portal group.
type TPG struct {
	Name    string   `json:"name"`
	Portals []string `json:"portals"` // "ip:port"
}

// Initiator holds per-initiator CHAP settings.
type Initiator struct {
	Name       string `json:"name"`
	ChapUser   string `json:"chap_user,omitempty"`
	ChapSecret string `json:"chap_secret,omitempty"`
}

// Defaults are itadm's global defaults.
type Defaults struct {
	Auth         string   `json:"auth,omitempty"` // "" = none
	RadiusServer string   `json:"radius_server,omitempty"`
	RadiusSecret string   `json:"radius_secret,omitempty"`
	ISNS         bool     `json:"isns,omitempty"`
	ISNSServers  []string `json:"isns_servers,omitempty"`
}

func (c ISCSI) clone() ISCSI {
	c.TPGs = slices.Clone(c.TPGs)
	for i := range c.TPGs {
		c.TPGs[i].Portals = slices.Clone(c.TPGs[i].Portals)
	}
	c.Initiators = slices.Clone(c.Initiators)
	c.Defaults.ISNSServers = slices.Clone(c.Defaults.ISNSServers)
	return c
}

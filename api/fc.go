package api

import "time"

// MethodListFCPorts lists the FC HBA ports in target mode with their
// logged-in remote ports (fcinfo hba-port, fcinfo remote-port).
const MethodListFCPorts = "ListFCPorts"

// FCPort is an FC HBA port as fcinfo hba-port shows it.
type FCPort struct {
	PortWWN  string `json:"port_wwn"` // 16 hex digits
	NodeWWN  string `json:"node_wwn"`
	Driver   string `json:"driver"`
	Mode     string `json:"mode"`  // "Target"
	State    string `json:"state"` // online, offline (target offline), link down
	SpeedMbs int    `json:"speed_mbs"`
	PortID   string `json:"port_id,omitempty"` // our N_Port ID, 6 hex digits, while the link is up
	Topology string `json:"topology,omitempty"`
	// RemotePorts are the logged-in remote N_Ports.
	RemotePorts []FCRemotePort `json:"remote_ports"`
}

// FCRemotePort is a remote N_Port logged in to an FC port.
type FCRemotePort struct {
	PortWWN string    `json:"port_wwn"`
	NodeWWN string    `json:"node_wwn"`
	PortID  string    `json:"port_id"`
	Since   time.Time `json:"logged_in_since"`
	// Initiator is true once PRLI established an FCP session.
	Initiator bool `json:"initiator"`
}

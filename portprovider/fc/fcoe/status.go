package fcoe

import (
	"time"

	"github.com/costar-project/costar/portprovider/fc"
)

// Neighbor is a remote VN_Port the adapter learned from FIP.
type Neighbor struct {
	PortName, NodeName fc.WWN
	PortID             uint32
	MAC                MAC
	LastBeacon         time.Time // zero before its first beacon
}

// Status is the claim state, our N_Port ID and the neighbours.
type Status struct {
	State     string
	PortID    uint32
	Neighbors []Neighbor
}

// Status reports the VN2VN state.
func (a *Adapter) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := Status{State: a.ctlr.st.String(), PortID: a.upID.Load()}
	for _, n := range a.ctlr.nbrs {
		s.Neighbors = append(s.Neighbors, Neighbor{PortName: n.port, NodeName: n.node, PortID: n.id, MAC: n.enode, LastBeacon: n.heard})
	}
	return s
}

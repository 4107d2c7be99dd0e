package fcoe

import (
	"errors"
	"fmt"

	"github.com/costar-project/costar/portprovider/fc"
)

// The transmit side: Send for the FC port, and what the claim machine
// does to the world (vnOut).

// Send implements fc.Adapter: FCoE from our VN_Port MAC to the
// destination's (VN2VN maps N_Port IDs to MACs), or a FIP-encapsulated
// reply when the request came that way.
func (a *Adapter) Send(f *fc.Frame) error {
	id := a.upID.Load()
	if id == 0 {
		return errors.New("fcoe: link down")
	}
	if len(f.Payload) > a.info.MaxPayload {
		return fmt.Errorf("fcoe: payload of %d bytes exceeds %d", len(f.Payload), a.info.MaxPayload)
	}
	if f.RCtl == fc.RCtlELSRep && f.Type == fc.TypeELS {
		a.mu.Lock()
		p, ok := a.pendLS[lsKey{f.DID, f.OXID}]
		delete(a.pendLS, lsKey{f.DID, f.OXID})
		a.mu.Unlock()
		if ok {
			mac := VNMAC(id)
			if len(f.Payload) > 0 && f.Payload[0] == fc.ELSLSRJT {
				mac = MAC{}
			}
			b, err := AppendLS(nil, p.enode, a.enode, true, p.dtype, f, mac)
			if err != nil {
				return err
			}
			return a.writeFIP(b)
		}
	}
	b := AppendFCoE(make([]byte, 0, ethHdrLen+Overhead+len(f.Payload)+4), VNMAC(f.DID), VNMAC(id), f)
	if _, err := a.fcoec.Write(b); err != nil {
		return fmt.Errorf("fcoe: send: %w", err)
	}
	a.stats.TxFrames.Add(1)
	return nil
}

func (a *Adapter) writeFIP(b []byte) error {
	if _, err := a.fipc.Write(b); err != nil {
		return fmt.Errorf("fcoe: send FIP: %w", err)
	}
	a.stats.TxFIP.Add(1)
	return nil
}

// sendFIP implements vnOut (called under mu).
func (a *Adapter) sendFIP(b []byte) {
	if a.fipc == nil {
		return
	}
	if err := a.writeFIP(b); err != nil {
		a.log.Debug("fip tx", "err", err)
	}
}

// linkChange implements vnOut: the claim is up (or lost). The FCoE socket
// joins the VN_Port MAC so the interface's unicast filter passes frames
// addressed to it.
func (a *Adapter) linkChange(up bool, id uint32) {
	if a.member != (MAC{}) {
		if err := a.fcoec.member(a.member, true, false); err != nil {
			a.log.Debug("fcoe leave", "err", err)
		}
		a.member = MAC{}
	}
	ev := &fc.LinkEvent{}
	if up {
		if err := a.fcoec.member(VNMAC(id), true, true); err != nil {
			a.log.Warn("fcoe: cannot add the VN_Port MAC to the interface filter", "mac", VNMAC(id).String(), "err", err)
		} else {
			a.member = VNMAC(id)
		}
		ev = &fc.LinkEvent{Up: true, PortID: id, SpeedMbs: a.speed(), Topology: "VN2VN"}
		a.log.Info("fcoe vn2vn claim up", "port_id", fmt.Sprintf("%06x", id), "vn_mac", VNMAC(id).String())
	} else {
		a.log.Info("fcoe vn2vn claim lost")
	}
	a.upID.Store(0)
	if up {
		a.upID.Store(id)
	}
	clear(a.pendLS)
	a.queue = append(a.queue, rxItem{link: ev})
}

// neighborGone implements vnOut: a VN_Port stopped beaconing or was
// replaced. FC-BB-6 logs it out implicitly; the FC port learns it as the
// LOGO the neighbour can no longer send.
func (a *Adapter) neighborGone(n *neighbor) {
	a.log.Info("fcoe neighbour gone", "wwpn", n.port.TargetName(), "port_id", fmt.Sprintf("%06x", n.id))
	id := a.upID.Load()
	if id == 0 {
		return
	}
	logo := &fc.Frame{Header: fc.Header{RCtl: fc.RCtlELSReq, DID: id, SID: n.id, Type: fc.TypeELS,
		FCtl: fc.FCtlFirstSeq | fc.FCtlEndSeq | fc.FCtlSeqInit, OXID: logoXID, RXID: fc.UnassignedXID},
		Payload: fc.AppendLOGO(nil, n.id, n.port)}
	a.queue = append(a.queue, rxItem{f: logo})
}

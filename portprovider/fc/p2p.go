package fc

import (
	"fmt"
	"time"
)

// Point-to-point login (FC-LS-3 4.2.8; FC-BB-6 VN2VN uses the same rule
// between VN_Ports): after FLOGI, the N_Port with the greater port name
// sends PLOGI. A target with the greater name must therefore originate
// the PLOGI, or the initiator waits for it forever.

const (
	plogiDelay   = 100 * time.Millisecond // let our FLOGI LS_ACC reach the peer first
	plogiRetry   = 500 * time.Millisecond // after LS_RJT (the peer is busy)
	plogiTimeout = 3 * time.Second        // no reply at all
	plogiTries   = 6
)

// plogiOut is a PLOGI we originated, by OX_ID.
type plogiOut struct {
	did   uint32
	myID  uint32 // our N_Port ID when sent: a link change abandons it
	tries int
	timer *time.Timer
}

// handleFLOGI answers a point-to-point FLOGI with our service parameters
// and, when our port name is the greater, sends PLOGI.
func (p *Port) handleFLOGI(f *Frame) {
	prm, err := ParsePLOGI(f.Payload)
	if err != nil {
		p.stats.badFrames.Add(1)
		p.lsRjt(f, rjtLogicalErr, rjtExpInvalLen)
		return
	}
	p.mu.Lock()
	online, me := p.lport != nil, p.link.PortID
	p.mu.Unlock()
	if !online {
		p.lsRjt(f, rjtUnable, rjtExpNone)
		return
	}
	p.lsAcc(f, appendPLOGI(nil, ELSLSACC, p.info.PortName, p.info.NodeName, p.info.MaxPayload))
	if wwnLess(prm.PortName, p.info.PortName) {
		p.log.Info("fc p2p flogi: our port name is greater, sending PLOGI", "initiator", prm.PortName.TargetName())
		p.mu.Lock()
		p.schedulePLOGILocked(f.SID, me, 0, plogiDelay)
		p.mu.Unlock()
	}
}

// schedulePLOGILocked sends PLOGI to did after wait, unless the link or
// our address changed meanwhile.
func (p *Port) schedulePLOGILocked(did, me uint32, tries int, wait time.Duration) {
	if tries >= plogiTries {
		p.log.Warn("fc p2p: PLOGI not accepted, giving up", "port_id", fmt.Sprintf("%06x", did))
		return
	}
	time.AfterFunc(wait, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if !p.link.Up || p.link.PortID != me || p.lport == nil {
			return
		}
		if p.plogis == nil {
			p.plogis = map[uint16]*plogiOut{}
		}
		if len(p.plogis) >= p.cfg.MaxRemotePorts {
			return
		}
		ox := p.allocXIDLocked()
		po := &plogiOut{did: did, myID: me, tries: tries + 1}
		po.timer = time.AfterFunc(plogiTimeout, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.plogis[ox] == po {
				delete(p.plogis, ox)
				p.schedulePLOGILocked(did, me, po.tries, 0)
			}
		})
		p.plogis[ox] = po
		p.sendLocked(&Frame{Header: Header{RCtl: RCtlELSReq, DID: did, SID: me, Type: TypeELS,
			FCtl: FCtlFirstSeq | FCtlEndSeq | FCtlSeqInit, OXID: ox, RXID: UnassignedXID},
			Payload: AppendPLOGI(nil, p.info.PortName, p.info.NodeName, p.info.MaxPayload)})
	})
}

// handleELSReply takes the reply to a PLOGI we sent: LS_ACC logs the
// remote port in as if it had sent the PLOGI; LS_RJT (busy) retries.
// Replies to anything else (our LOGOs) are dropped.
func (p *Port) handleELSReply(f *Frame) {
	p.mu.Lock()
	po := p.plogis[f.OXID]
	if po == nil || po.did != f.SID {
		p.mu.Unlock()
		p.stats.dropped.Add(1)
		return
	}
	delete(p.plogis, f.OXID)
	po.timer.Stop()
	if len(f.Payload) == 0 || f.Payload[0] != ELSLSACC {
		p.schedulePLOGILocked(po.did, po.myID, po.tries, plogiRetry)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	prm, err := ParsePLOGI(f.Payload)
	if err != nil {
		p.stats.badFrames.Add(1)
		return
	}
	p.mu.Lock()
	ok := p.loginLocked(f.SID, prm)
	p.mu.Unlock()
	if ok {
		p.stats.plogi.Add(1)
		p.log.Info("fc plogi accepted", "initiator", prm.PortName.TargetName(), "port_id", fmt.Sprintf("%06x", f.SID))
	}
}

// dropPLOGIsLocked forgets originated PLOGIs (link change).
func (p *Port) dropPLOGIsLocked() {
	for ox, po := range p.plogis {
		po.timer.Stop()
		delete(p.plogis, ox)
	}
}

func wwnLess(a, b WWN) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

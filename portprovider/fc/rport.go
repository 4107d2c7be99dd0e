package fc

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// rport is a remote N_Port logged in with PLOGI; PRLI gives it an stmf
// session. Its fields are guarded by Port.mu.
type rport struct {
	id         uint32
	name, node WWN
	rxSize     int    // negotiated frame payload: its receive size and our adapter's
	burst      uint32 // BURST_LEN of our FCP_XFER_RDYs to it (login.go)
	spp        uint32 // FCP service parameters of its PRLI
	login      time.Time
	sess       *stmf.Session
	xchg       map[uint16]*exchange // by OX_ID
	gone       atomic.Bool          // logged out: its exchanges send nothing more
}

// initiator is the stmf identity of a remote port: COMSTAR's wwn.<WWPN>
// and the FC TransportID of its N_Port name (FC has no device TransportID).
func (rp *rport) initiator() stmf.Initiator {
	tid := scsi.FCTransportID(rp.name)
	return stmf.Initiator{Name: rp.name.TargetName(), PortName: rp.name.TargetName(), PortID: tid, DeviceID: tid}
}

// logoutLocked forgets rp: its exchanges die and its session is closed in
// the background (closing waits for the LU to finish aborted tasks).
func (p *Port) logoutLocked(rp *rport) {
	if p.byID[rp.id] == rp {
		delete(p.byID, rp.id)
	}
	if p.byName[rp.name] == rp {
		delete(p.byName, rp.name)
	}
	rp.gone.Store(true)
	p.endSessionLocked(rp)
}

// endSessionLocked ends rp's FCP image pair (PRLO, LOGO, link down).
func (p *Port) endSessionLocked(rp *rport) {
	for _, x := range rp.xchg {
		x.kill()
	}
	rp.xchg = map[uint16]*exchange{}
	if s := rp.sess; s != nil {
		rp.sess = nil
		p.closing.Add(1)
		go func() {
			defer p.closing.Done()
			s.Close()
		}()
	}
}

func (p *Port) logoutAllLocked() {
	for _, rp := range p.byID {
		p.logoutLocked(rp)
	}
}

func (p *Port) handleELS(f *Frame) {
	if len(f.Payload) < 4 {
		p.stats.badFrames.Add(1)
		p.lsRjt(f, rjtInvalidCmd, rjtExpInvalLen)
		return
	}
	switch f.Payload[0] {
	case ELSPLOGI:
		p.handlePLOGI(f)
	case ELSFLOGI:
		p.handleFLOGI(f) // p2p.go
	case ELSLOGO:
		p.handleLOGO(f)
	case ELSPRLI:
		p.handlePRLI(f)
	case ELSPRLO:
		p.handlePRLO(f)
	case ELSADISC:
		p.handleADISC(f)
	case ELSRSCN:
		p.handleRSCN(f)
	default:
		p.lsRjt(f, rjtNotSupp, rjtExpNone)
	}
}

func (p *Port) lsRjt(f *Frame, reason, expl byte) {
	p.stats.lsRjt.Add(1)
	p.reply(f, RCtlELSRep, TypeELS, UnassignedXID, appendLSRJT(nil, reason, expl))
}

func (p *Port) lsAcc(f *Frame, payload []byte) {
	p.reply(f, RCtlELSRep, TypeELS, UnassignedXID, payload)
}

func (p *Port) handlePLOGI(f *Frame) {
	prm, err := ParsePLOGI(f.Payload)
	if err != nil {
		p.stats.badFrames.Add(1)
		p.lsRjt(f, rjtLogicalErr, rjtExpInvalLen)
		return
	}
	p.mu.Lock()
	ok := p.loginLocked(f.SID, prm)
	p.mu.Unlock()
	if !ok {
		p.lsRjt(f, rjtUnable, rjtExpNone)
		return
	}
	p.stats.plogi.Add(1)
	p.log.Info("fc plogi", "initiator", prm.PortName.TargetName(), "port_id", fmt.Sprintf("%06x", f.SID))
	p.lsAcc(f, appendPLOGI(nil, ELSLSACC, p.info.PortName, p.info.NodeName, p.info.MaxPayload))
}

// loginLocked records the N_Port login of port id (its PLOGI, or its
// LS_ACC to ours); false when offline or full. A new login from the same
// address or name is an implicit logout of the old one (FC-LS-3 4.2.13),
// so a port returning after a link bounce with the same or a new N_Port
// ID starts clean.
func (p *Port) loginLocked(id uint32, prm PLOGIParams) bool {
	if old := p.byID[id]; old != nil {
		p.logoutLocked(old)
	}
	if old := p.byName[prm.PortName]; old != nil {
		p.logoutLocked(old)
	}
	if p.lport == nil || len(p.byID) >= p.cfg.MaxRemotePorts {
		return false
	}
	frame := negotiatedFrame(prm.RxSize, p.info.MaxPayload)
	rp := &rport{id: id, name: prm.PortName, node: prm.NodeName, rxSize: frame, burst: burstFor(frame, p.cfg.MaxBurst),
		login: time.Now(), xchg: map[uint16]*exchange{}}
	p.byID[rp.id], p.byName[rp.name] = rp, rp
	return true
}

func (p *Port) handleLOGO(f *Frame) {
	if _, _, err := ParseLOGO(f.Payload); err != nil {
		p.stats.badFrames.Add(1)
		p.lsRjt(f, rjtLogicalErr, rjtExpInvalLen)
		return
	}
	p.mu.Lock()
	if rp := p.byID[f.SID]; rp != nil {
		p.logoutLocked(rp)
		p.stats.logo.Add(1)
	}
	p.mu.Unlock()
	p.lsAcc(f, []byte{ELSLSACC, 0, 0, 0})
}

// loggedIn returns the remote port f came from, or nil after answering
// LS_RJT "N_Port login required".
func (p *Port) loggedIn(f *Frame) *rport {
	p.mu.Lock()
	rp := p.byID[f.SID]
	p.mu.Unlock()
	if rp == nil {
		p.lsRjt(f, rjtUnable, rjtExpLogin)
	}
	return rp
}

// handlePRLI establishes the FCP image pair: we offer the target function
// only, and open the remote port's stmf session.
func (p *Port) handlePRLI(f *Frame) {
	pages, err := ParsePRLI(f.Payload)
	if err != nil {
		p.stats.badFrames.Add(1)
		p.lsRjt(f, rjtLogicalErr, rjtExpInvalLen)
		return
	}
	rp := p.loggedIn(f)
	if rp == nil {
		return
	}
	resp := make([]PRLIPage, 0, len(pages))
	fcp, seen := false, false
	var spp uint32
	for _, pg := range pages {
		if pg.Type != fcpType || seen {
			resp = append(resp, PRLIPage{Type: pg.Type, Flags: prliInvalParams})
			continue
		}
		seen = true
		if pg.Params&sppInitiator == 0 {
			// A port without the initiator function would never send us
			// a command: no image pair between two targets.
			resp = append(resp, PRLIPage{Type: fcpType, Flags: prliPrecluded, Params: ourSPP})
			continue
		}
		fcp, spp = true, pg.Params
		resp = append(resp, PRLIPage{Type: fcpType, Flags: prliEstablish | prliExecuted, Params: ourSPP})
	}
	if fcp {
		p.mu.Lock()
		var err error
		if p.byID[f.SID] != rp || p.lport == nil {
			err = stmf.ErrPortOffline
		} else if rp.sess == nil {
			rp.sess, err = p.lport.OpenSession(rp.initiator())
		}
		if err == nil {
			rp.spp = spp
		}
		p.mu.Unlock()
		if err != nil {
			p.lsRjt(f, rjtUnable, rjtExpNone)
			return
		}
		p.stats.prli.Add(1)
	}
	p.lsAcc(f, AppendPRLI(nil, ELSLSACC, resp))
}

// handlePRLO ends the FCP image pair; the PLOGI stays.
func (p *Port) handlePRLO(f *Frame) {
	pages, err := ParsePRLI(f.Payload)
	if err != nil {
		p.stats.badFrames.Add(1)
		p.lsRjt(f, rjtLogicalErr, rjtExpInvalLen)
		return
	}
	rp := p.loggedIn(f)
	if rp == nil {
		return
	}
	resp := make([]PRLIPage, 0, len(pages))
	for _, pg := range pages {
		if pg.Type != fcpType {
			resp = append(resp, PRLIPage{Type: pg.Type, Flags: prliInvalParams})
			continue
		}
		p.mu.Lock()
		p.endSessionLocked(rp)
		p.mu.Unlock()
		resp = append(resp, PRLIPage{Type: fcpType, Flags: prliExecuted})
	}
	p.lsAcc(f, AppendPRLI(nil, ELSLSACC, resp))
}

func (p *Port) handleADISC(f *Frame) {
	if _, err := ParseADISC(f.Payload); err != nil {
		p.stats.badFrames.Add(1)
		p.lsRjt(f, rjtLogicalErr, rjtExpInvalLen)
		return
	}
	if p.loggedIn(f) == nil {
		return
	}
	p.mu.Lock()
	me := p.link.PortID
	p.mu.Unlock()
	p.lsAcc(f, AppendADISC(nil, ELSLSACC, ADISC{HardAddr: me, PortName: p.info.PortName, NodeName: p.info.NodeName, PortID: me}))
}

// handleRSCN acknowledges a state change. A target does not discover: an
// affected initiator that still wants us logs in again (its new PLOGI
// replaces the old login); we only log which logins the change covers.
func (p *Port) handleRSCN(f *Frame) {
	pages, err := ParseRSCN(f.Payload)
	if err != nil {
		p.stats.badFrames.Add(1)
		p.lsRjt(f, rjtLogicalErr, rjtExpInvalLen)
		return
	}
	p.stats.rscn.Add(1)
	p.mu.Lock()
	for _, rp := range p.byID {
		for _, pg := range pages {
			if pg.Covers(rp.id) {
				p.log.Info("fc rscn covers a logged-in port", "initiator", rp.name.TargetName(), "port_id", fmt.Sprintf("%06x", rp.id))
				break
			}
		}
	}
	p.mu.Unlock()
	p.lsAcc(f, []byte{ELSLSACC, 0, 0, 0})
}

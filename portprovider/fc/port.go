package fc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// Config bounds what remote ports may make a target port hold.
type Config struct {
	Logger *slog.Logger
	// MaxDataLen is the largest FCP_DL a write may carry (its buffer is
	// allocated whole); larger writes are refused with FCP_CMND fields
	// invalid. Default 16 MiB.
	MaxDataLen uint32
	// MaxBurst caps the BURST_LEN of each FCP_XFER_RDY; the burst is
	// then a whole number of the remote port's negotiated frames
	// (login.go). Default 256 KiB.
	MaxBurst uint32
	// MaxExchanges caps the open exchanges of one remote port (TASK SET
	// FULL beyond). Default 1024.
	MaxExchanges int
	// MaxRemotePorts caps logged-in remote ports (PLOGI refused beyond).
	// Default 256.
	MaxRemotePorts int
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxDataLen == 0 {
		c.MaxDataLen = 16 << 20
	}
	if c.MaxBurst == 0 {
		c.MaxBurst = 256 << 10
	}
	if c.MaxExchanges == 0 {
		c.MaxExchanges = 1024
	}
	if c.MaxRemotePorts == 0 {
		c.MaxRemotePorts = 256
	}
	return c
}

// Port is the FC target port on one adapter: link state, the remote port
// database and the exchanges of each remote port. It is the adapter's
// Handler; the target is served to initiators while it is online.
type Port struct {
	fw   *stmf.Framework
	ad   Adapter
	info AdapterInfo
	cfg  Config
	log  *slog.Logger

	mu      sync.Mutex
	link    LinkEvent
	lport   *stmf.LocalPort // nil while the target is offline
	byID    map[uint32]*rport
	byName  map[WWN]*rport
	nextXID uint16
	started bool
	plogis  map[uint16]*plogiOut // PLOGIs we originated (p2p.go)

	closing sync.WaitGroup // sessions of logged-out ports being closed
	stats   counters
}

// counters are the port's protocol events (read with Stats).
type counters struct {
	plogi, logo, prli, abts, rscn, lsRjt atomic.Uint64
	dropped, unknownXchg, badFrames      atomic.Uint64
}

// Stats is a snapshot of a port's protocol counters.
type Stats struct {
	PLOGIs, LOGOs, PRLIs, ABTSs, RSCNs, LSRJTs uint64
	// Dropped counts frames ignored: link down, not addressed to us, from
	// a port not logged in, unsolicited data.
	Dropped uint64
	// UnknownExchange counts frames of exchanges we do not have (late
	// frames of an aborted or finished exchange).
	UnknownExchange uint64
	// BadFrames counts frames whose payload failed to parse.
	BadFrames uint64
}

// NewPort builds the target port over ad. Start the adapter with Start.
func NewPort(fw *stmf.Framework, ad Adapter, cfg Config) (*Port, error) {
	info := ad.Info()
	if info.MaxPayload < minRxSize || info.MaxPayload > MaxPayload {
		return nil, fmt.Errorf("fc: adapter %s: payload size %d outside %d..%d", info.PortName, info.MaxPayload, minRxSize, MaxPayload)
	}
	cfg = cfg.withDefaults()
	return &Port{fw: fw, ad: ad, info: info, cfg: cfg, log: cfg.Logger.With("wwpn", info.PortName.TargetName()),
		byID: map[uint32]*rport{}, byName: map[WWN]*rport{}, nextXID: 1}, nil
}

// Name is the target's name, "wwn.<WWPN>".
func (p *Port) Name() string { return p.info.PortName.TargetName() }

// Info returns the adapter's identity.
func (p *Port) Info() AdapterInfo { return p.info }

// Start starts the adapter, which begins to report frames and link events.
func (p *Port) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return nil
	}
	p.started = true
	p.mu.Unlock()
	if err := p.ad.Start(ctx, p); err != nil {
		return fmt.Errorf("fc: start adapter %s: %w", p.Name(), err)
	}
	return nil
}

// Stop takes the target offline and stops the adapter.
func (p *Port) Stop(ctx context.Context) error {
	p.Offline()
	err := p.ad.Stop(ctx)
	p.mu.Lock()
	p.logoutAllLocked()
	p.mu.Unlock()
	p.closing.Wait()
	if err != nil {
		return fmt.Errorf("fc: stop adapter %s: %w", p.Name(), err)
	}
	return nil
}

// ErrOnline reports a port that is already online.
var ErrOnline = errors.New("fc: target port already online")

// Online registers the target port with stmf (in ALUA target port group
// group) and accepts logins.
func (p *Port) Online(group uint16) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lport != nil {
		return ErrOnline
	}
	lp, err := p.fw.RegisterPort(p.portSpec(group))
	if err != nil {
		return fmt.Errorf("fc: register %s: %w", p.Name(), err)
	}
	p.lport = lp
	return nil
}

// portSpec is the target port's SCSI identity: named wwn.<WWPN>, with an
// NAA designator of the port name for the port and of the node name for
// the target device (protocol FC, PIV).
func (p *Port) portSpec(group uint16) stmf.PortSpec {
	name := p.Name()
	naa := func(w WWN) []scsi.Designator {
		return []scsi.Designator{{CodeSet: scsi.CodeSetBinary, Type: scsi.DesignatorNAA, Value: append([]byte(nil), w[:]...)}}
	}
	return stmf.PortSpec{Protocol: scsi.ProtocolFC, TargetName: name, Name: name, Group: group,
		Designators: stmf.PortDesignators{PIV: true, Port: naa(p.info.PortName), Target: naa(p.info.NodeName)}}
}

// Offline logs every remote port out (LOGO), ends their sessions and
// deregisters the target port. Logins are refused until Online.
func (p *Port) Offline() {
	p.mu.Lock()
	lp := p.lport
	p.lport = nil
	if p.link.Up {
		for _, rp := range p.byID {
			p.sendLocked(&Frame{Header: Header{RCtl: RCtlELSReq, DID: rp.id, SID: p.link.PortID, Type: TypeELS,
				FCtl: FCtlFirstSeq | FCtlEndSeq | FCtlSeqInit, OXID: p.allocXIDLocked(), RXID: UnassignedXID},
				Payload: AppendLOGO(nil, p.link.PortID, p.info.PortName)})
		}
	}
	p.logoutAllLocked()
	p.dropPLOGIsLocked()
	p.mu.Unlock()
	p.closing.Wait()
	if lp != nil {
		lp.Deregister()
	}
}

// Stats returns the port's protocol counters.
func (p *Port) Stats() Stats {
	c := &p.stats
	return Stats{PLOGIs: c.plogi.Load(), LOGOs: c.logo.Load(), PRLIs: c.prli.Load(), ABTSs: c.abts.Load(),
		RSCNs: c.rscn.Load(), LSRJTs: c.lsRjt.Load(), Dropped: c.dropped.Load(),
		UnknownExchange: c.unknownXchg.Load(), BadFrames: c.badFrames.Load()}
}

// State is what fcinfo hba-port shows of a port.
type State struct {
	Info     AdapterInfo
	Link     LinkEvent
	Online   bool
	Sessions int
}

// State reports the link and target state.
func (p *Port) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, rp := range p.byID {
		if rp.sess != nil {
			n++
		}
	}
	return State{Info: p.info, Link: p.link, Online: p.lport != nil, Sessions: n}
}

// RemotePort is a logged-in remote N_Port.
type RemotePort struct {
	PortName, NodeName WWN
	PortID             uint32
	LoginTime          time.Time
	// Initiator is true once PRLI established an FCP image pair (an stmf
	// session exists).
	Initiator bool
	// Exchanges is the number of open exchanges.
	Exchanges int
	// FrameSize is the negotiated frame payload (its receive data field
	// size and our adapter's); Burst is the BURST_LEN of our
	// FCP_XFER_RDYs to it (login.go).
	FrameSize int
	Burst     uint32
	// ServiceParams are the FCP service parameters of its PRLI.
	ServiceParams uint32
}

// RemotePorts lists the logged-in remote ports.
func (p *Port) RemotePorts() []RemotePort {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]RemotePort, 0, len(p.byID))
	for _, rp := range p.byID {
		out = append(out, RemotePort{PortName: rp.name, NodeName: rp.node, PortID: rp.id, LoginTime: rp.login,
			Initiator: rp.sess != nil, Exchanges: len(rp.xchg), FrameSize: rp.rxSize, Burst: rp.burst, ServiceParams: rp.spp})
	}
	return out
}

// LinkEvent implements Handler.
func (p *Port) LinkEvent(ev LinkEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Any change of link or address is an implicit logout of everyone
	// (FC-LS-3: a link reset or a new N_Port ID ends all logins).
	if !ev.Up || ev.PortID != p.link.PortID || !p.link.Up {
		p.logoutAllLocked()
		p.dropPLOGIsLocked()
	}
	p.link = ev
	p.log.Info("fc link", "up", ev.Up, "port_id", fmt.Sprintf("%06x", ev.PortID), "speed_mbs", ev.SpeedMbs)
}

// Receive implements Handler: it dispatches one frame.
func (p *Port) Receive(f *Frame) {
	p.mu.Lock()
	up, me := p.link.Up, p.link.PortID
	p.mu.Unlock()
	if !up || f.DID != me || len(f.Payload) > MaxPayload {
		p.stats.dropped.Add(1)
		return
	}
	switch {
	case f.RCtl == RCtlELSReq && f.Type == TypeELS:
		p.handleELS(f)
	case f.RCtl == RCtlABTS && f.Type == TypeBLS:
		p.handleABTS(f)
	case f.RCtl == RCtlFCPCmnd && f.Type == TypeFCP:
		p.handleCmnd(f)
	case f.RCtl == RCtlFCPData && f.Type == TypeFCP:
		p.handleData(f)
	case f.RCtl == RCtlELSRep && f.Type == TypeELS:
		p.handleELSReply(f) // p2p.go
	default:
		// Anything else unsolicited.
		p.stats.dropped.Add(1)
	}
}

// reply sends a one-frame reply sequence on the exchange of f.
func (p *Port) reply(f *Frame, rctl, typ byte, rxid uint16, payload []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sendLocked(&Frame{Header: Header{RCtl: rctl, DID: f.SID, SID: p.link.PortID, Type: typ,
		FCtl: FCtlExchResponder | FCtlLastSeq | FCtlEndSeq, OXID: f.OXID, RXID: rxid}, Payload: payload})
}

func (p *Port) sendLocked(f *Frame) {
	if err := p.ad.Send(f); err != nil {
		p.log.Debug("fc send", "r_ctl", f.RCtl, "d_id", fmt.Sprintf("%06x", f.DID), "err", err)
	}
}

// allocXIDLocked returns an exchange ID for an exchange we answer (RX_ID)
// or originate (OX_ID), never 0xffff.
func (p *Port) allocXIDLocked() uint16 {
	x := p.nextXID
	p.nextXID++
	if p.nextXID == UnassignedXID {
		p.nextXID = 1
	}
	return x
}

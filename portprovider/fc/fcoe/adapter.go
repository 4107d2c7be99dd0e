package fcoe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/costar-project/costar/portprovider/fc"
)

// Config describes one FCoE VN2VN port.
type Config struct {
	// Interface is the Ethernet interface (its MTU sets the frame size:
	// 2158 or more carries full 2112-byte FC payloads).
	Interface string
	// PortName and NodeName default to DeriveNames of the interface MAC.
	PortName, NodeName fc.WWN
	// Beacon is the beacon interval; DefaultBeacon when zero.
	Beacon time.Duration
	Logger *slog.Logger
}

const (
	linkPoll    = 250 * time.Millisecond // carrier polling period
	rxQueue     = 512                    // received frames waiting for the handler goroutine
	maxPendLS   = 64                     // FIP-encapsulated ELS requests awaiting our reply
	ethMaxFrame = 9216
	// logoXID is the OX_ID of the LOGO this adapter hands the FC port for
	// a neighbour whose beacons stopped (the implicit logout of FC-BB-6).
	logoXID = 0xfffe
)

// lsKey names an ELS exchange a peer opened with a FIP-encapsulated
// request; its reply goes back encapsulated the same way.
type lsKey struct {
	sid  uint32
	oxid uint16
}

type lsPend struct {
	dtype byte
	enode MAC
}

// rxItem is one thing for the handler goroutine.
type rxItem struct {
	fip  bool
	raw  []byte
	link *fc.LinkEvent
	f    *fc.Frame
}

// Adapter is a software FCoE HBA port in VN2VN mode: it claims an N_Port
// ID with FIP, carries FC frames in FCoE (or FIP-encapsulated ELS) over
// the interface and reports the claim to the FC port as its link.
type Adapter struct {
	cfg    Config
	log    *slog.Logger
	info   fc.AdapterInfo
	enode  MAC
	speed  func() int
	linkUp func() bool
	open   func() (fipc, fcoec frameConn, err error)

	fipc, fcoec frameConn
	upID        atomic.Uint32 // our N_Port ID while the claim is up, else 0

	mu      sync.Mutex // guards the fields below and serialises the claim machine
	ctlr    *vnCtlr
	pendLS  map[lsKey]lsPend
	queue   []rxItem // link events and frames made under mu, for the handler
	member  MAC      // the VN_Port MAC the FCoE socket has joined
	started bool
	stopped bool

	rx   chan rxItem
	stop chan struct{}
	wg   sync.WaitGroup

	stats counters
}

type counters struct {
	RxFrames, TxFrames, RxFIP, TxFIP, BadFrames, Foreign, Drops atomic.Uint64
}

// Stats counts what the adapter saw on the wire.
type Stats struct {
	RxFrames, TxFrames, RxFIP, TxFIP uint64
	// BadFrames are FCoE or FIP frames that failed to parse (CRC, length).
	BadFrames uint64
	// Foreign are frames for another VN_Port or while the claim is down.
	Foreign uint64
	// Drops are frames the kernel dropped because the adapter's receive
	// buffer was full.
	Drops uint64
}

// Stats returns the wire counters.
func (a *Adapter) Stats() Stats {
	c := &a.stats
	return Stats{RxFrames: c.RxFrames.Load(), TxFrames: c.TxFrames.Load(), RxFIP: c.RxFIP.Load(), TxFIP: c.TxFIP.Load(),
		BadFrames: c.BadFrames.Load(), Foreign: c.Foreign.Load(), Drops: c.Drops.Load()}
}

// New builds the adapter of an existing interface; it opens nothing until
// Start.
func New(cfg Config) (*Adapter, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("fcoe: interface %q: %w", cfg.Interface, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("fcoe: interface %s has no Ethernet address", cfg.Interface)
	}
	var mac MAC
	copy(mac[:], ifi.HardwareAddr)
	a, err := newAdapter(cfg, mac, ifi.MTU)
	if err != nil {
		return nil, err
	}
	name, idx := ifi.Name, ifi.Index
	a.open = func() (frameConn, frameConn, error) {
		f, err := openPacket(name, idx, EtherTypeFIP)
		if err != nil {
			return nil, nil, err
		}
		e, err := openPacket(name, idx, EtherTypeFCoE)
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		return f, e, nil
	}
	a.linkUp = func() bool { return sysfsCarrier(name) }
	a.speed = func() int { return sysfsSpeed(name) }
	return a, nil
}

// newAdapter checks the configuration against the interface's MAC and MTU.
func newAdapter(cfg Config, mac MAC, mtu int) (*Adapter, error) {
	if !mac.unicast() {
		return nil, fmt.Errorf("fcoe: interface %s address %s is not a unicast MAC", cfg.Interface, mac)
	}
	payload := min(fc.MaxPayload, (mtu-Overhead)&^3)
	if payload < 256 {
		return nil, fmt.Errorf("fcoe: interface %s MTU %d leaves %d bytes of FC payload, FC needs 256 (MTU %d carries full 2112-byte payloads)",
			cfg.Interface, mtu, max(payload, 0), fc.MaxPayload+Overhead)
	}
	port, node := DeriveNames(mac)
	if cfg.PortName == (fc.WWN{}) {
		cfg.PortName = port
	}
	if cfg.NodeName == (fc.WWN{}) {
		cfg.NodeName = node
	}
	if cfg.PortName == cfg.NodeName {
		return nil, fmt.Errorf("fcoe: port and node name are both %s", cfg.PortName)
	}
	if cfg.Beacon <= 0 {
		cfg.Beacon = DefaultBeacon
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Adapter{cfg: cfg, enode: mac, log: cfg.Logger.With("interface", cfg.Interface),
		info:   fc.AdapterInfo{Driver: "fcoe", PortName: cfg.PortName, NodeName: cfg.NodeName, MaxPayload: payload},
		pendLS: map[lsKey]lsPend{}, rx: make(chan rxItem, rxQueue), stop: make(chan struct{}),
		speed: func() int { return 0 }}
	a.ctlr = newVNCtlr(mac, cfg.PortName, cfg.NodeName, uint16(payload+Overhead), cfg.Beacon, a)
	return a, nil
}

// Info implements fc.Adapter.
func (a *Adapter) Info() fc.AdapterInfo { return a.info }

// Start implements fc.Adapter: it opens the sockets and starts claiming
// an address once the interface has carrier.
func (a *Adapter) Start(_ context.Context, h fc.Handler) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started || a.stopped {
		return errors.New("fcoe: adapter already started")
	}
	fipc, fcoec, err := a.open()
	if err != nil {
		return err
	}
	if err := fipc.member(AllVN2VNMACs, false, true); err != nil {
		fipc.Close()
		fcoec.Close()
		return err
	}
	a.fipc, a.fcoec, a.started = fipc, fcoec, true
	a.wg.Add(3)
	go a.read(fipc, true)
	go a.read(fcoec, false)
	go a.run(h)
	a.log.Info("fcoe adapter started", "wwpn", a.info.PortName.TargetName(), "wwnn", a.info.NodeName.String(),
		"mac", a.enode.String(), "max_payload", a.info.MaxPayload)
	return nil
}

// Stop implements fc.Adapter.
func (a *Adapter) Stop(ctx context.Context) error {
	a.mu.Lock()
	if a.stopped || !a.started {
		a.stopped = true
		a.mu.Unlock()
		return nil
	}
	a.stopped = true
	close(a.stop)
	a.upID.Store(0)
	a.mu.Unlock()
	st := a.Stats()
	a.log.Info("fcoe adapter stopped", "rx_frames", st.RxFrames, "tx_frames", st.TxFrames, "rx_fip", st.RxFIP, "tx_fip", st.TxFIP,
		"bad_frames", st.BadFrames, "foreign", st.Foreign, "dropped", st.Drops)
	a.fipc.Close()
	a.fcoec.Close()
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("fcoe: stop %s: %w", a.cfg.Interface, ctx.Err())
	}
}

// read copies frames from one socket to the handler goroutine.
func (a *Adapter) read(c frameConn, fip bool) {
	defer a.wg.Done()
	buf := make([]byte, ethMaxFrame)
	for {
		n, err := c.Read(buf)
		if err != nil {
			select {
			case <-a.stop:
				return
			default:
			}
			a.log.Warn("fcoe read", "err", err)
			select {
			case <-a.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		item := rxItem{fip: fip, raw: append([]byte(nil), buf[:n]...)}
		select {
		case a.rx <- item:
		case <-a.stop:
			return
		}
	}
}

// run is the only goroutine that calls the handler: received frames,
// the claim machine's timers and the carrier poll, in order.
func (a *Adapter) run(h fc.Handler) {
	defer a.wg.Done()
	poll := time.NewTicker(linkPoll)
	defer poll.Stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	carrier := false
	check := func() {
		up := a.linkUp()
		if up == carrier {
			return
		}
		carrier = up
		a.mu.Lock()
		if up {
			a.log.Info("fcoe carrier up")
			a.ctlr.linkUp(time.Now())
		} else {
			a.log.Info("fcoe carrier down")
			a.ctlr.linkDown()
		}
		a.mu.Unlock()
	}
	check()
	for {
		a.flush(h)
		a.mu.Lock()
		next := a.ctlr.next
		a.mu.Unlock()
		timer.Reset(max(time.Until(next), time.Millisecond))
		select {
		case <-a.stop:
			return
		case it := <-a.rx:
			if it.fip {
				a.handleFIP(h, it.raw)
			} else {
				a.handleFCoE(h, it.raw)
			}
		case <-timer.C:
			a.mu.Lock()
			a.ctlr.tick(time.Now())
			a.mu.Unlock()
		case <-poll.C:
			check()
			if n := a.fipc.drops() + a.fcoec.drops(); n > 0 {
				a.stats.Drops.Add(n)
				a.log.Warn("fcoe: receive buffer full, frames dropped", "dropped", n, "total", a.stats.Drops.Load())
			}
		}
	}
}

// flush hands the handler what the claim machine queued.
func (a *Adapter) flush(h fc.Handler) {
	a.mu.Lock()
	q := a.queue
	a.queue = nil
	a.mu.Unlock()
	for _, it := range q {
		select {
		case <-a.stop:
			return
		default:
		}
		if it.link != nil {
			h.LinkEvent(*it.link)
		} else {
			h.Receive(it.f)
		}
	}
}

func (a *Adapter) handleFCoE(h fc.Handler, raw []byte) {
	id := a.upID.Load()
	if len(raw) < ethHdrLen || id == 0 || MAC(raw[0:6]) != VNMAC(id) {
		a.stats.Foreign.Add(1)
		return
	}
	e, err := ParseFCoE(raw[ethHdrLen:])
	if err != nil {
		a.stats.BadFrames.Add(1)
		a.log.Debug("fcoe rx", "err", err)
		return
	}
	if e.Frame.DID != id {
		a.stats.Foreign.Add(1)
		return
	}
	a.stats.RxFrames.Add(1)
	h.Receive(&e.Frame)
}

func (a *Adapter) handleFIP(h fc.Handler, raw []byte) {
	if len(raw) < ethHdrLen {
		return
	}
	src := MAC(raw[6:12])
	body := raw[ethHdrLen:]
	fh, err := parseFIPHeader(body)
	if err != nil {
		a.stats.BadFrames.Add(1)
		return
	}
	a.stats.RxFIP.Add(1)
	switch fh.op {
	case opVN2VN:
		m, err := ParseVN(body)
		if err != nil {
			a.stats.BadFrames.Add(1)
			a.log.Debug("fip rx", "err", err)
			return
		}
		a.mu.Lock()
		a.ctlr.recv(&m, time.Now())
		a.mu.Unlock()
	case opLS:
		m, err := ParseLS(body)
		if err != nil {
			a.stats.BadFrames.Add(1)
			a.log.Debug("fip ls rx", "err", err)
			return
		}
		a.handleLS(h, src, &m)
	}
}

// handleLS takes a FIP-encapsulated ELS request (Linux sends the VN2VN
// point-to-point FLOGI and the LOGO this way): the FC port answers it, and
// Send encapsulates the reply the same way.
func (a *Adapter) handleLS(h fc.Handler, src MAC, m *LSMsg) {
	id := a.upID.Load()
	if m.Reply || id == 0 || !src.unicast() {
		a.stats.Foreign.Add(1)
		return
	}
	f, err := fc.ParseFrame(m.Frame)
	if err != nil || f.DID != id || f.RCtl != fc.RCtlELSReq || f.Type != fc.TypeELS || len(f.Payload) < 4 {
		a.stats.BadFrames.Add(1)
		return
	}
	if m.DType != dtFLOGI && m.DType != dtLOGO {
		a.stats.Foreign.Add(1)
		return
	}
	a.mu.Lock()
	if len(a.pendLS) >= maxPendLS {
		clear(a.pendLS) // peers that never took their replies
	}
	a.pendLS[lsKey{f.SID, f.OXID}] = lsPend{dtype: m.DType, enode: src}
	a.mu.Unlock()
	h.Receive(&f)
}

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

var _ fc.Adapter = (*Adapter)(nil)

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

var _ fc.Adapter = (*Adapter)(nil)

package fcoe

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costar-project/costar/portprovider/fc"
)

// pipeConn is one socket of the adapter: Write lands in out, Read takes
// what the test injects.
type pipeConn struct {
	in, out chan []byte
	closed  chan struct{}
	once    sync.Once
	mu      sync.Mutex
	members map[MAC]bool
}

func newPipeConn(out chan []byte) *pipeConn {
	return &pipeConn{in: make(chan []byte, 64), out: out, closed: make(chan struct{}), members: map[MAC]bool{}}
}

func (c *pipeConn) Read(b []byte) (int, error) {
	select {
	case f := <-c.in:
		return copy(b, f), nil
	case <-c.closed:
		return 0, errors.New("closed")
	}
}

func (c *pipeConn) Write(b []byte) (int, error) {
	select {
	case c.out <- append([]byte(nil), b...):
		return len(b), nil
	case <-c.closed:
		return 0, errors.New("closed")
	}
}

func (c *pipeConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

func (c *pipeConn) member(m MAC, _ bool, join bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members[m] = join
	return nil
}

func (c *pipeConn) drops() uint64 { return 0 }

func (c *pipeConn) joined(m MAC) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[m]
}

// recHandler records what the adapter hands the FC port.
type recHandler struct {
	frames chan fc.Frame
	links  chan fc.LinkEvent
}

func (h *recHandler) Receive(f *fc.Frame) {
	g := *f
	g.Payload = append([]byte(nil), f.Payload...)
	h.frames <- g
}
func (h *recHandler) LinkEvent(ev fc.LinkEvent) { h.links <- ev }

type rig struct {
	t          *testing.T
	a          *Adapter
	h          *recHandler
	wire       chan []byte // everything the adapter sends
	fipc, fcoe *pipeConn
	carrier    atomic.Bool
}

func newRig(t *testing.T, beacon time.Duration) *rig {
	t.Helper()
	a, err := newAdapter(Config{Interface: "test0", Beacon: beacon}, macA, 2500)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, a: a, h: &recHandler{frames: make(chan fc.Frame, 64), links: make(chan fc.LinkEvent, 16)}, wire: make(chan []byte, 256)}
	r.fipc, r.fcoe = newPipeConn(r.wire), newPipeConn(r.wire)
	a.open = func() (frameConn, frameConn, error) { return r.fipc, r.fcoe, nil }
	a.linkUp = r.carrier.Load
	r.carrier.Store(true)
	if err := a.Start(context.Background(), r.h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return r
}

// expect waits for a frame on the wire that match accepts.
func (r *rig) expect(what string, match func(b []byte) bool) []byte {
	r.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case b := <-r.wire:
			if match(b) {
				return b
			}
		case <-deadline:
			r.t.Fatalf("no %s on the wire", what)
		}
	}
}

func vnOf(b []byte, sub byte) (VNMsg, bool) {
	if binary.BigEndian.Uint16(b[12:]) != EtherTypeFIP {
		return VNMsg{}, false
	}
	m, err := ParseVN(b[ethHdrLen:])
	return m, err == nil && m.Sub == sub
}

func (r *rig) link() fc.LinkEvent {
	r.t.Helper()
	select {
	case ev := <-r.h.links:
		return ev
	case <-time.After(5 * time.Second):
		r.t.Fatal("no link event")
	}
	return fc.LinkEvent{}
}

func (r *rig) frame() fc.Frame {
	r.t.Helper()
	select {
	case f := <-r.h.frames:
		return f
	case <-time.After(5 * time.Second):
		r.t.Fatal("no frame for the FC port")
	}
	return fc.Frame{}
}

// TestAdapterWithPeer plays a Linux VN2VN initiator against the adapter:
// claim, the FIP-encapsulated FLOGI, FCoE frames both ways, an
// encapsulated LOGO and its encapsulated reply, the neighbour aging out,
// and carrier loss.
func TestAdapterWithPeer(t *testing.T) {
	r := newRig(t, 300*time.Millisecond)
	r.expect("claim notification", func(b []byte) bool { _, ok := vnOf(b, SubClaimNotify); return ok })
	ev := r.link()
	if !ev.Up || ev.PortID != 0x0a || ev.Topology != "VN2VN" {
		t.Fatalf("link event %+v", ev)
	}
	if !r.fcoe.joined(VNMAC(0x0a)) || !r.fipc.joined(AllVN2VNMACs) {
		t.Fatal("filters not joined")
	}
	peer := VNMsg{Sub: SubClaimNotify, ENode: macB, NodeName: wwnnB, PortName: wwpnB, PortID: 0x0b, VNMAC: VNMAC(0x0b), Initiator: true, FCoESize: 2158}
	r.fipc.in <- AppendVN(nil, AllVN2VNMACs, macB, &peer)
	rep := r.expect("claim response", func(b []byte) bool { _, ok := vnOf(b, SubClaimRep); return ok })
	if MAC(rep[0:6]) != macB {
		t.Fatalf("claim response to %s", MAC(rep[0:6]))
	}
	peer.Sub = SubBeacon
	r.fipc.in <- AppendVN(nil, AllVN2VNMACs, VNMAC(0x0b), &peer)
	r.expect("beacon", func(b []byte) bool { _, ok := vnOf(b, SubBeacon); return ok })

	// The point-to-point FLOGI, encapsulated in FIP, goes to the FC port;
	// its LS_ACC goes back encapsulated, with our VN_Port MAC.
	flogi := &fc.Frame{Header: fc.Header{RCtl: fc.RCtlELSReq, DID: 0x0a, SID: 0x0b, Type: fc.TypeELS,
		FCtl: fc.FCtlFirstSeq | fc.FCtlEndSeq | fc.FCtlSeqInit, OXID: 0x11, RXID: 0xffff}, Payload: fc.AppendPLOGI(nil, wwpnB, wwnnB, 2112)}
	flogi.Payload[0] = fc.ELSFLOGI
	req, err := AppendLS(nil, macA, macB, false, dtFLOGI, flogi, VNMAC(0x0b))
	if err != nil {
		t.Fatal(err)
	}
	r.fipc.in <- req
	if got := r.frame(); got.OXID != 0x11 || got.Payload[0] != fc.ELSFLOGI || got.SID != 0x0b {
		t.Fatalf("FLOGI to the FC port: %+v", got.Header)
	}
	flogiAcc := &fc.Frame{Header: fc.Header{RCtl: fc.RCtlELSRep, DID: 0x0b, SID: 0x0a, Type: fc.TypeELS,
		FCtl: fc.FCtlExchResponder | fc.FCtlLastSeq | fc.FCtlEndSeq, OXID: 0x11, RXID: 0xffff},
		Payload: fc.AppendLoginAcc(nil, r.a.Info().PortName, r.a.Info().NodeName, 2112)}
	if err := r.a.Send(flogiAcc); err != nil {
		t.Fatal(err)
	}
	acc := r.expect("FLOGI LS_ACC", func(b []byte) bool {
		if binary.BigEndian.Uint16(b[12:]) != EtherTypeFIP {
			return false
		}
		m, err := ParseLS(b[ethHdrLen:])
		return err == nil && m.Reply
	})
	m, _ := ParseLS(acc[ethHdrLen:])
	f, err := fc.ParseFrame(m.Frame)
	if err != nil || m.DType != dtFLOGI || m.MAC != VNMAC(0x0a) || MAC(acc[0:6]) != macB || MAC(acc[6:12]) != macA ||
		f.OXID != 0x11 || f.DID != 0x0b || f.Payload[0] != fc.ELSLSACC {
		t.Fatalf("FLOGI reply %+v %+v", m, f.Header)
	}

	// FCoE: a PLOGI for us reaches the FC port; one for another VN_Port
	// and one with a bad CRC do not.
	plogi := &fc.Frame{Header: fc.Header{RCtl: fc.RCtlELSReq, DID: 0x0a, SID: 0x0b, Type: fc.TypeELS,
		FCtl: fc.FCtlFirstSeq | fc.FCtlEndSeq | fc.FCtlSeqInit, OXID: 0x12, RXID: 0xffff}, Payload: fc.AppendPLOGI(nil, wwpnB, wwnnB, 2112)}
	other := AppendFCoE(nil, VNMAC(0x0c), VNMAC(0x0b), plogi)
	r.fcoe.in <- other
	bad := AppendFCoE(nil, VNMAC(0x0a), VNMAC(0x0b), plogi)
	bad[len(bad)-8] ^= 0xff
	r.fcoe.in <- bad
	r.fcoe.in <- AppendFCoE(nil, VNMAC(0x0a), VNMAC(0x0b), plogi)
	got := r.frame()
	if got.OXID != 0x12 || got.Payload[0] != fc.ELSPLOGI || len(got.Payload) != len(plogi.Payload) {
		t.Fatalf("FC port got %+v", got.Header)
	}
	if s := r.a.Stats(); s.BadFrames != 1 || s.Foreign != 1 || s.RxFrames != 1 {
		t.Fatalf("stats %+v", s)
	}
	// The FC port's reply goes out as FCoE between VN_Port MACs.
	reply := &fc.Frame{Header: fc.Header{RCtl: fc.RCtlELSRep, DID: 0x0b, SID: 0x0a, Type: fc.TypeELS,
		FCtl: fc.FCtlExchResponder | fc.FCtlLastSeq | fc.FCtlEndSeq, OXID: 0x12, RXID: 0xffff}, Payload: fc.AppendLoginAcc(nil, wwpnA, wwnnA, 2112)}
	if err := r.a.Send(reply); err != nil {
		t.Fatal(err)
	}
	out := r.expect("FCoE PLOGI LS_ACC", func(b []byte) bool { return binary.BigEndian.Uint16(b[12:]) == EtherTypeFCoE })
	e, err := ParseFCoE(out[ethHdrLen:])
	if err != nil || MAC(out[0:6]) != VNMAC(0x0b) || MAC(out[6:12]) != VNMAC(0x0a) || e.Frame.OXID != 0x12 || e.SOF != SOFi3 || e.EOF != EOFt {
		t.Fatalf("FCoE reply %+v SOF %#x EOF %#x, %v", e.Frame.Header, e.SOF, e.EOF, err)
	}
	big := &fc.Frame{Header: reply.Header, Payload: make([]byte, r.a.Info().MaxPayload+4)}
	if err := r.a.Send(big); err == nil {
		t.Fatal("oversized payload sent")
	}

	// An encapsulated LOGO: the FC port gets it; its reply goes back in FIP.
	logo := &fc.Frame{Header: fc.Header{RCtl: fc.RCtlELSReq, DID: 0x0a, SID: 0x0b, Type: fc.TypeELS,
		FCtl: fc.FCtlFirstSeq | fc.FCtlEndSeq | fc.FCtlSeqInit, OXID: 0x13, RXID: 0xffff}, Payload: fc.AppendLOGO(nil, 0x0b, wwpnB)}
	req, _ = AppendLS(nil, macA, macB, false, dtLOGO, logo, VNMAC(0x0b))
	r.fipc.in <- req
	if got := r.frame(); got.OXID != 0x13 || got.Payload[0] != fc.ELSLOGO {
		t.Fatalf("LOGO %+v", got.Header)
	}
	logoAcc := &fc.Frame{Header: fc.Header{RCtl: fc.RCtlELSRep, DID: 0x0b, SID: 0x0a, Type: fc.TypeELS,
		FCtl: fc.FCtlExchResponder | fc.FCtlLastSeq | fc.FCtlEndSeq, OXID: 0x13, RXID: 0xffff}, Payload: []byte{fc.ELSLSACC, 0, 0, 0}}
	if err := r.a.Send(logoAcc); err != nil {
		t.Fatal(err)
	}
	out = r.expect("encapsulated LOGO LS_ACC", func(b []byte) bool {
		if binary.BigEndian.Uint16(b[12:]) != EtherTypeFIP {
			return false
		}
		m, err := ParseLS(b[ethHdrLen:])
		return err == nil && m.DType == dtLOGO
	})
	if MAC(out[0:6]) != macB {
		t.Fatalf("LOGO reply to %s", MAC(out[0:6]))
	}

	// The peer goes silent: after 2.5 beacon intervals the FC port gets
	// the implicit logout.
	got = r.frame()
	if got.SID != 0x0b || got.Payload[0] != fc.ELSLOGO || got.OXID != logoXID {
		t.Fatalf("implicit logout %+v % x", got.Header, got.Payload)
	}

	// Carrier loss takes the link down; Send then fails.
	r.carrier.Store(false)
	if ev := r.link(); ev.Up {
		t.Fatalf("link event %+v", ev)
	}
	if err := r.a.Send(reply); err == nil {
		t.Fatal("sent with the link down")
	}
	if r.fcoe.joined(VNMAC(0x0a)) {
		t.Fatal("VN_Port MAC still joined")
	}
	// And back: same ID claimed again.
	r.carrier.Store(true)
	if ev := r.link(); !ev.Up || ev.PortID != 0x0a {
		t.Fatalf("relink %+v", ev)
	}
	if st := r.a.Status(); st.State != "up" || st.PortID != 0x0a {
		t.Fatalf("status %+v", st)
	}
}

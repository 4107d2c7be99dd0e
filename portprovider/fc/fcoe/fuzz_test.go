package fcoe

import (
	"testing"
	"time"

	"github.com/costar-project/costar/portprovider/fc"
)

// FuzzFIP feeds arbitrary FIP frames to the parsers and, when they parse,
// to the claim machine of an up port: no panic, and whatever it sends
// parses back.
func FuzzFIP(f *testing.F) {
	for _, sub := range []byte{SubProbeReq, SubClaimNotify, SubBeacon} {
		m := VNMsg{Sub: sub, ENode: macB, NodeName: wwnnB, VNMAC: VNMAC(0x0a), PortID: 0x0a, PortName: wwpnB, FCoESize: 2158}
		f.Add(AppendVN(nil, AllVN2VNMACs, macB, &m)[ethHdrLen:])
	}
	lo := &fc.Frame{Header: fc.Header{RCtl: fc.RCtlELSReq, DID: 0x0a, SID: 0x0b, Type: fc.TypeELS}, Payload: fc.AppendLOGO(nil, 0x0b, wwpnB)}
	b, _ := AppendLS(nil, macA, macB, false, dtLOGO, lo, VNMAC(0x0b))
	f.Add(b[ethHdrLen:])
	f.Add([]byte{0x10, 0, 0, 5, 0, 1, 0, 1, 0, 0, 2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := ParseLS(b); err == nil && m.Frame == nil {
			t.Fatal("LS parsed without a frame")
		}
		m, err := ParseVN(b)
		if err != nil {
			return
		}
		o := &fakeOut{t: t}
		c := newVNCtlr(macA, wwpnA, wwnnA, 2158, DefaultBeacon, o)
		now := time.Unix(1000, 0)
		c.linkUp(now)
		for i := 0; i < 4; i++ {
			now = c.next
			c.tick(now)
		}
		c.recv(&m, now)
		c.tick(now.Add(time.Minute))
	})
}

// FuzzFCoE feeds arbitrary FCoE frames to the decoder: no panic, and a
// frame it accepts encodes back to the same bytes (pad bytes aside).
func FuzzFCoE(f *testing.F) {
	fr := &fc.Frame{Header: fc.Header{RCtl: fc.RCtlFCPCmnd, DID: 1, SID: 2, Type: fc.TypeFCP}, Payload: make([]byte, 32)}
	f.Add(AppendFCoE(nil, VNMAC(1), VNMAC(2), fr)[ethHdrLen:])
	fr.Payload = []byte{1, 2, 3}
	f.Add(AppendFCoE(nil, VNMAC(1), VNMAC(2), fr)[ethHdrLen:])
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseFCoE(b)
		if err != nil {
			return
		}
		if len(e.Frame.Payload) > fc.MaxPayload {
			t.Fatalf("payload of %d bytes accepted", len(e.Frame.Payload))
		}
		if e.Frame.FCtl&fctlFillMask != 0 {
			t.Fatal("fill bits left in F_CTL")
		}
	})
}

package fcoe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/costar-project/costar/portprovider/fc"
)

var (
	macA  = MAC{0x02, 0, 0, 0, 0, 0x0a}
	macB  = MAC{0x02, 0, 0, 0, 0, 0x0b}
	wwpnA = fc.WWN{0x10, 0, 2, 0, 0, 0, 0, 0x0a}
	wwnnA = fc.WWN{0x20, 0, 2, 0, 0, 0, 0, 0x0a}
	wwpnB = fc.WWN{0x20, 0, 2, 0, 0, 0, 0, 0x0b}
	wwnnB = fc.WWN{0x10, 0, 2, 0, 0, 0, 0, 0x0b}
)

// TestVNRoundTrip encodes every VN2VN subcode and parses it back, and
// checks the layout Linux expects byte by byte for a claim.
func TestVNRoundTrip(t *testing.T) {
	for _, sub := range []byte{SubProbeReq, SubProbeRep, SubClaimNotify, SubClaimRep, SubBeacon} {
		m := VNMsg{Sub: sub, ENode: macA, NodeName: wwnnA, VNMAC: VNMAC(0x0a0b), PortID: 0x0a0b, PortName: wwpnA}
		if isClaim(sub) {
			m.Target, m.FCoESize = true, 2158
		}
		b := AppendVN(nil, AllVN2VNMACs, macA, &m)
		if got := binary.BigEndian.Uint16(b[12:]); got != EtherTypeFIP {
			t.Fatalf("sub %d: ethertype %#x", sub, got)
		}
		got, err := ParseVN(b[ethHdrLen:])
		if err != nil {
			t.Fatalf("sub %d: %v", sub, err)
		}
		if got != m {
			t.Fatalf("sub %d: parsed %+v, want %+v", sub, got, m)
		}
	}
	m := VNMsg{Sub: SubClaimNotify, ENode: macA, NodeName: wwnnA, VNMAC: VNMAC(0x12), PortID: 0x12, PortName: wwpnA, Target: true, FCoESize: 2158}
	b := AppendVN(nil, AllVN2VNMACs, macA, &m)[ethHdrLen:]
	checks := []struct {
		name string
		off  int
		want []byte
	}{
		{"version", 0, []byte{0x10}},
		{"op VN2VN", 2, []byte{0, 5}},
		{"subcode", 5, []byte{3}},
		{"descriptor words", 6, []byte{0, (8 + 12 + 20 + 164 + 4) / 4}},
		{"MAC descriptor", 10, append([]byte{2, 2}, macA[:]...)},
		{"name descriptor", 18, append([]byte{4, 3, 0, 0}, wwnnA[:]...)},
		{"VN_ID descriptor", 30, []byte{11, 5, 0x0e, 0xfd, 0x00, 0, 0, 0x12, 0, 0, 0, 0x12}},
		{"FC-4 type map: FCP", 50 + 4, []byte{0, 0, 1, 0}},
		{"FC-4 features: FCP target", 50 + 4 + 32 + 4, []byte{0, 0, 0, 1}},
		{"size descriptor", 50 + 164, []byte{6, 1, 0x08, 0x6e}},
	}
	for _, c := range checks {
		if got := b[c.off : c.off+len(c.want)]; !bytes.Equal(got, c.want) {
			t.Errorf("%s at %d: % x, want % x", c.name, c.off, got, c.want)
		}
	}
}

// TestParseVNRejects feeds frames Linux would drop.
func TestParseVNRejects(t *testing.T) {
	good := func() []byte {
		m := VNMsg{Sub: SubBeacon, ENode: macA, NodeName: wwnnA, VNMAC: VNMAC(1), PortID: 1, PortName: wwpnA}
		return AppendVN(nil, AllVN2VNMACs, macA, &m)[ethHdrLen:]
	}
	cases := []struct {
		name string
		mod  func([]byte) []byte
	}{
		{"short", func(b []byte) []byte { return b[:6] }},
		{"version 0", func(b []byte) []byte { b[0] = 0; return b }},
		{"not VN2VN", func(b []byte) []byte { b[3] = 1; return b }},
		{"unknown subcode", func(b []byte) []byte { b[5] = 9; return b }},
		{"list longer than frame", func(b []byte) []byte { b[7] = 200; return b }},
		{"multicast ENode MAC", func(b []byte) []byte { b[12] = 1; return b }},
		{"zero-length descriptor", func(b []byte) []byte { b[11] = 0; return b }},
		{"descriptor past the list", func(b []byte) []byte { b[11] = 60; return b }},
		{"wrong MAC descriptor length", func(b []byte) []byte { b[11] = 3; return b }},
		{"beacon missing the VN_ID", func(b []byte) []byte { b[7] -= 5; return b[:len(b)-20] }},
		{"repeated descriptor", func(b []byte) []byte {
			b = append(b, b[10:18]...)
			b[7] += 2
			return b
		}},
		{"beacon with a claim's size descriptor", func(b []byte) []byte {
			b = append(b, dtFCoESize, 1, 8, 0x6e)
			b[7]++
			return b
		}},
		{"claim without FC-4 features", func(b []byte) []byte { b[5] = SubClaimNotify; return b }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseVN(c.mod(good())); !errors.Is(err, errFIP) {
				t.Fatalf("accepted or wrong error: %v", err)
			}
		})
	}
	// A vendor descriptor (type ≥ 128) is skipped.
	b := good()
	b = append(b, 200, 1, 0, 0)
	b[7]++
	if _, err := ParseVN(b); err != nil {
		t.Fatalf("vendor descriptor: %v", err)
	}
}

// TestLSRoundTrip encapsulates a FLOGI reply and a LOGO and parses them
// back: descriptor order, the MAC descriptor present or absent.
func TestLSRoundTrip(t *testing.T) {
	f := &fc.Frame{Header: fc.Header{RCtl: fc.RCtlELSRep, DID: 0x22, SID: 0x11, Type: fc.TypeELS, OXID: 7, RXID: 0xffff},
		Payload: fc.AppendLoginAcc(nil, wwpnA, wwnnA, 2112)}
	for _, withMAC := range []bool{true, false} {
		mac := MAC{}
		if withMAC {
			mac = VNMAC(0x11)
		}
		b, err := AppendLS(nil, macB, macA, true, dtFLOGI, f, mac)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ParseLS(b[ethHdrLen:])
		if err != nil {
			t.Fatal(err)
		}
		if !m.Reply || m.DType != dtFLOGI || m.MAC != mac {
			t.Fatalf("parsed %+v", m)
		}
		g, err := fc.ParseFrame(m.Frame)
		if err != nil || g.OXID != 7 || g.DID != 0x22 || !bytes.Equal(g.Payload, f.Payload) {
			t.Fatalf("frame %+v, %v", g.Header, err)
		}
	}
	odd := &fc.Frame{Payload: []byte{1, 2, 3}}
	if _, err := AppendLS(nil, macB, macA, false, dtLOGO, odd, MAC{}); err == nil {
		t.Fatal("a payload that is not whole words was encapsulated")
	}
	// The MAC descriptor first is out of order.
	b, _ := AppendLS(nil, macB, macA, false, dtLOGO, &fc.Frame{Payload: fc.AppendLOGO(nil, 1, wwpnB)}, MAC{})
	body := b[ethHdrLen:]
	bad := append(append([]byte{}, body[:fipHdrLen]...), dtMAC, 2, 2, 0, 0, 0, 0, 1)
	bad = append(bad, body[fipHdrLen:]...)
	binary.BigEndian.PutUint16(bad[6:], binary.BigEndian.Uint16(body[6:])+2)
	if _, err := ParseLS(bad); err == nil {
		t.Fatal("MAC descriptor before the ELS accepted")
	}
}

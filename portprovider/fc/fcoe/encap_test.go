package fcoe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/costar-project/costar/portprovider/fc"
)

// TestFCCRC checks the CRC against the CRC-32 check value and its byte
// order on the wire.
func TestFCCRC(t *testing.T) {
	if got := fcCRC([]byte("123456789")); got != 0xcbf43926 {
		t.Fatalf("CRC %08x, want cbf43926", got)
	}
	f := &fc.Frame{Header: fc.Header{RCtl: fc.RCtlELSReq, DID: 1, SID: 2, Type: fc.TypeELS}, Payload: []byte{5, 0, 0, 0}}
	b := AppendFCoE(nil, VNMAC(1), VNMAC(2), f)
	body := b[ethHdrLen+fcoeHdrLen : len(b)-fcoeTrailerLen]
	if got := binary.LittleEndian.Uint32(b[len(b)-8:]); got != crcOf(body) {
		t.Fatalf("CRC on the wire %08x, want %08x little endian", got, crcOf(body))
	}
}

func crcOf(b []byte) uint32 { return fcCRC(b) }

// TestFCoEEncode checks headers, SOF/EOF choice and padding per frame.
func TestFCoEEncode(t *testing.T) {
	cases := []struct {
		name     string
		seqCnt   uint16
		fctl     uint32
		payload  int
		sof, eof byte
		pad      int
	}{
		{"single-frame sequence", 0, fc.FCtlEndSeq, 16, SOFi3, EOFt, 0},
		{"first of many", 0, fc.FCtlRelOffset, 2048, SOFi3, EOFn, 0},
		{"middle", 3, fc.FCtlRelOffset, 2048, SOFn3, EOFn, 0},
		{"last, odd length", 4, fc.FCtlRelOffset | fc.FCtlEndSeq, 42, SOFn3, EOFt, 2},
		{"empty payload", 0, fc.FCtlEndSeq, 0, SOFi3, EOFt, 0},
		{"three bytes", 0, fc.FCtlEndSeq, 3, SOFi3, EOFt, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := make([]byte, c.payload)
			for i := range p {
				p[i] = byte(i)
			}
			f := &fc.Frame{Header: fc.Header{RCtl: fc.RCtlFCPData, DID: 0x0102, SID: 0x0304, Type: fc.TypeFCP,
				FCtl: fc.FCtlExchResponder | c.fctl, SeqCnt: c.seqCnt, OXID: 9, RXID: 10, Param: 512}, Payload: p}
			b := AppendFCoE(nil, VNMAC(0x0102), VNMAC(0x0304), f)
			if want := ethHdrLen + Overhead + c.payload + c.pad; len(b) != want {
				t.Fatalf("frame of %d bytes, want %d", len(b), want)
			}
			if !bytes.Equal(b[0:6], []byte{0x0e, 0xfd, 0, 0, 1, 2}) || !bytes.Equal(b[6:12], []byte{0x0e, 0xfd, 0, 0, 3, 4}) {
				t.Fatalf("MACs % x", b[:12])
			}
			if b[12] != 0x89 || b[13] != 0x06 || b[14] != 0 || b[27] != c.sof {
				t.Fatalf("ethertype/version/SOF % x", b[12:28])
			}
			if b[len(b)-4] != c.eof {
				t.Fatalf("EOF %#x, want %#x", b[len(b)-4], c.eof)
			}
			e, err := ParseFCoE(b[ethHdrLen:])
			if err != nil {
				t.Fatal(err)
			}
			if e.SOF != c.sof || e.EOF != c.eof || !bytes.Equal(e.Frame.Payload, p) || e.Frame.Header != f.Header {
				t.Fatalf("decoded %+v SOF %#x EOF %#x payload %d bytes", e.Frame.Header, e.SOF, e.EOF, len(e.Frame.Payload))
			}
			if fill := be24(b[ethHdrLen+fcoeHdrLen+9:]) & 3; int(fill) != c.pad {
				t.Fatalf("F_CTL fill %d, want %d", fill, c.pad)
			}
		})
	}
}

func be24(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }

// TestParseFCoERejects covers the frames a receiver must drop.
func TestParseFCoERejects(t *testing.T) {
	f := &fc.Frame{Header: fc.Header{RCtl: fc.RCtlFCPCmnd, DID: 1, SID: 2, Type: fc.TypeFCP}, Payload: make([]byte, 32)}
	good := func() []byte { return AppendFCoE(nil, VNMAC(1), VNMAC(2), f)[ethHdrLen:] }
	cases := []struct {
		name string
		mod  func([]byte) []byte
	}{
		{"short", func(b []byte) []byte { return b[:40] }},
		{"version 1", func(b []byte) []byte { b[0] = 0x10; return b }},
		{"bad SOF", func(b []byte) []byte { b[13] = 0x99; return b }},
		{"bad CRC", func(b []byte) []byte { b[len(b)-8] ^= 1; return b }},
		{"flipped payload bit", func(b []byte) []byte { b[fcoeHdrLen+fc.HeaderLen] ^= 0x80; return b }},
		{"EOFa", func(b []byte) []byte { b[len(b)-4] = EOFa; return b }},
		{"EOFni", func(b []byte) []byte { b[len(b)-4] = EOFni; return b }},
		{"bad EOF", func(b []byte) []byte { b[len(b)-4] = 0x77; return b }},
		{"not whole words", func(b []byte) []byte { return append(b[:len(b)-8], append([]byte{0}, b[len(b)-8:]...)...) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseFCoE(c.mod(good())); !errors.Is(err, errFCoE) {
				t.Fatalf("accepted or wrong error: %v", err)
			}
		})
	}
	// More pad bytes than payload, with a CRC that matches.
	g := &fc.Frame{Header: fc.Header{FCtl: 3}, Payload: nil}
	b := AppendFCoE(nil, VNMAC(1), VNMAC(2), g)[ethHdrLen:]
	b[fcoeHdrLen+11] |= 3
	body := b[fcoeHdrLen : len(b)-fcoeTrailerLen]
	binary.LittleEndian.PutUint32(b[len(b)-8:], fcCRC(body))
	if _, err := ParseFCoE(b); err == nil {
		t.Fatal("pad larger than the payload accepted")
	}
}

func TestDeriveNames(t *testing.T) {
	p, n := DeriveNames(MAC{0x52, 0x54, 0, 0x12, 0x34, 0x56})
	if p.String() != "2001525400123456" || n.String() != "2000525400123456" {
		t.Fatalf("port %s node %s", p, n)
	}
}

func TestNewAdapterChecks(t *testing.T) {
	cases := []struct {
		name string
		mac  MAC
		mtu  int
		cfg  Config
		ok   bool
		max  int
	}{
		{"jumbo", macA, 9000, Config{}, true, 2112},
		{"2500", macA, 2500, Config{}, true, 2112},
		{"1500", macA, 1500, Config{}, true, 1452},
		{"tiny MTU", macA, 200, Config{}, false, 0},
		{"multicast MAC", MAC{1, 2, 3, 4, 5, 6}, 2500, Config{}, false, 0},
		{"same names", macA, 2500, Config{PortName: wwpnA, NodeName: wwpnA}, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := newAdapter(c.cfg, c.mac, c.mtu)
			if (err == nil) != c.ok {
				t.Fatalf("err %v", err)
			}
			if c.ok && a.Info().MaxPayload != c.max {
				t.Fatalf("max payload %d, want %d", a.Info().MaxPayload, c.max)
			}
		})
	}
}

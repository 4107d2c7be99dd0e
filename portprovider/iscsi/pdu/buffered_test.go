package pdu

import (
	"bufio"
	"bytes"
	"testing"
)

// TestNextBuffered: a PDU counts as buffered only when every byte of it
// (header, AHS, header digest, data, padding, data digest) is in the
// reader's buffer; nothing is consumed by asking.
func TestNextBuffered(t *testing.T) {
	for _, tc := range []struct {
		name         string
		ahs          []byte
		data         []byte
		hdrDig, dDig bool
	}{
		{"header only", nil, nil, false, false},
		{"data with padding", nil, make([]byte, 4097), false, false},
		{"AHS and digests", make([]byte, 8), make([]byte, 512), true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Header
			h.SetOpcode(OpSCSICmd, false)
			wire := AppendPDU(nil, &h, tc.ahs, tc.data, tc.hdrDig, tc.dDig)
			for cut := 0; cut <= len(wire); cut++ {
				br := bufio.NewReaderSize(bytes.NewReader(wire[:cut]), 64<<10)
				rd := NewReader(br, 1<<20)
				rd.HeaderDigest, rd.DataDigest = tc.hdrDig, tc.dDig
				_, _ = br.Peek(cut) // fill the buffer with what there is
				op, whole := rd.NextBuffered()
				if want := cut == len(wire); whole != want {
					t.Fatalf("%d of %d bytes buffered: whole=%v", cut, len(wire), whole)
				}
				if whole && op != OpSCSICmd {
					t.Fatalf("opcode %v", op)
				}
				if br.Buffered() != cut {
					t.Fatalf("NextBuffered consumed input: %d of %d left", br.Buffered(), cut)
				}
				if cut == len(wire) {
					var got Header
					if _, err := rd.ReadHeader(&got); err != nil {
						t.Fatal(err)
					}
					if !rd.DataBuffered(&got) {
						t.Fatal("data of a whole PDU not reported buffered")
					}
				}
			}
		})
	}
}

package pdu

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzParsePDU feeds arbitrary bytes through the PDU reader (header, AHS,
// digests, data segment) and the AHS decoder: nothing may panic, and
// nothing may be allocated beyond the negotiated limit.
func FuzzParsePDU(f *testing.F) {
	var h Header
	h.SetOpcode(OpSCSICmd, false)
	h.SetFlags(FlagFinal | FlagWrite)
	f.Add(AppendPDU(nil, &h, AppendExtCDBAHS(nil, make([]byte, 16)), []byte("data"), false, false), false)
	f.Add(AppendPDU(nil, &h, AppendBidiAHS(nil, 512), nil, true, true), true)
	h.SetOpcode(OpLoginReq, true)
	f.Add(AppendPDU(nil, &h, nil, EncodeText([]KV{{"InitiatorName", "iqn.a"}}), false, false), false)
	f.Fuzz(func(t *testing.T, b []byte, digests bool) {
		const limit = 64 << 10
		rd := NewReader(bufio.NewReader(bytes.NewReader(b)), limit)
		rd.HeaderDigest, rd.DataDigest = digests, digests
		for i := 0; i < 8; i++ {
			var h Header
			ahs, err := rd.ReadHeader(&h)
			if err != nil {
				return
			}
			if len(ahs) > MaxAHSLen || h.DataSegmentLength() > limit {
				t.Fatalf("limits not enforced: ahs=%d dsl=%d", len(ahs), h.DataSegmentLength())
			}
			if a, err := ParseAHS(ahs); err == nil && len(a.ExtCDB) > maxExtendedCDB {
				t.Fatalf("extended CDB too long: %d", len(a.ExtCDB))
			}
			if h.Opcode() == OpTextReq || h.Opcode() == OpLoginReq {
				data := make([]byte, h.DataSegmentLength())
				if err := rd.ReadData(&h, data); err != nil {
					return
				}
				_, _ = ParseText(data)
			} else if err := rd.DiscardData(&h); err != nil {
				return
			}
		}
	})
}

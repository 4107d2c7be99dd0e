package isns

import (
	"fmt"
	"io"
)

// readMessage reads the PDUs of one message (first to last, same XID and
// function, consecutive sequence IDs) and decodes it. Lengths are
// checked before anything is allocated beyond maxMessage in total.
func readMessage(r io.Reader) (Message, error) {
	var (
		first   Header
		payload []byte
		hb      [headerLen]byte
	)
	for seq := 0; ; seq++ {
		if _, err := io.ReadFull(r, hb[:]); err != nil {
			return Message{}, err
		}
		h, err := ParseHeader(hb[:])
		if err != nil {
			return Message{}, err
		}
		if h.Flags&flagAuth != 0 {
			return Message{}, fmt.Errorf("isns: authentication blocks are not supported")
		}
		if seq == 0 {
			first = h
		} else if h.XID != first.XID || h.Function != first.Function || int(h.Seq) != seq {
			return Message{}, fmt.Errorf("isns: PDU xid %d seq %d function %#x does not continue xid %d function %#x", h.XID, h.Seq, h.Function, first.XID, first.Function)
		}
		if len(payload)+int(h.Length) > maxMessage {
			return Message{}, fmt.Errorf("isns: message longer than %d bytes", maxMessage)
		}
		n := len(payload)
		payload = append(payload, make([]byte, h.Length)...)
		if _, err := io.ReadFull(r, payload[n:]); err != nil {
			return Message{}, err
		}
		if h.Flags&flagLast != 0 {
			return ParseMessage(first, payload)
		}
	}
}

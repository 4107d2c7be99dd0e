// Package isns is costar's iSNS client (RFC 4171): it registers the
// iSCSI target entity, its online targets as iSCSI Storage Nodes, their
// portals and portal groups with the configured iSNS servers, keeps the
// registration current as the configuration changes, answers the
// server's Entity Status Inquiries and State Change Notifications, and
// deregisters when disabled or stopped. Discovery domains are the
// server's business.
package isns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// iSNSP function IDs (RFC 4171 6.1); a response is the request | 0x8000.
const (
	fnDevAttrReg uint16 = 0x0001
	fnDevAttrQry uint16 = 0x0002
	fnDevDereg   uint16 = 0x0004
	fnSCN        uint16 = 0x0008
	fnESI        uint16 = 0x000d
	fnResponse   uint16 = 0x8000
)

// PDU flags (RFC 4171 5.1.4).
const (
	flagClient  uint16 = 0x8000
	flagServer  uint16 = 0x4000
	flagAuth    uint16 = 0x2000
	flagReplace uint16 = 0x1000
	flagLast    uint16 = 0x0800
	flagFirst   uint16 = 0x0400
)

// Attribute tags (RFC 4171 6.1) this client uses.
const (
	tagDelimiter      uint32 = 0
	tagEID            uint32 = 1
	tagEntityProtocol uint32 = 2
	tagRegPeriod      uint32 = 6
	tagPortalIP       uint32 = 16
	tagPortalPort     uint32 = 17
	tagESIInterval    uint32 = 19
	tagESIPort        uint32 = 20
	tagSCNPort        uint32 = 23
	tagISCSIName      uint32 = 32
	tagNodeType       uint32 = 33
	tagAlias          uint32 = 34
	tagPGName         uint32 = 48
	tagPGIP           uint32 = 49
	tagPGPort         uint32 = 50
	tagPGTag          uint32 = 51
)

const (
	entityProtocolISCSI = 2
	nodeTypeTarget      = 1
	headerLen           = 12
	version             = 1
	// maxPayload is the largest PDU payload: the length field is 16 bits.
	maxPayload = 0xffff
	// maxMessage bounds a message spread over several PDUs.
	maxMessage = 1 << 20
)

// Status codes (RFC 4171 6.4) the client acts on.
const (
	statusSuccess             = 0
	statusInvalidRegistration = 3
	statusSourceUnknown       = 6
	statusSourceUnauthorized  = 8
	statusNoSuchEntry         = 9
	statusMessageNotSupported = 15
)

// Header is an iSNSP PDU header.
type Header struct {
	Version  uint16
	Function uint16
	Length   uint16 // payload bytes
	Flags    uint16
	XID      uint16
	Seq      uint16
}

func (h Header) append(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, h.Version)
	b = binary.BigEndian.AppendUint16(b, h.Function)
	b = binary.BigEndian.AppendUint16(b, h.Length)
	b = binary.BigEndian.AppendUint16(b, h.Flags)
	b = binary.BigEndian.AppendUint16(b, h.XID)
	return binary.BigEndian.AppendUint16(b, h.Seq)
}

// ParseHeader decodes a 12-byte PDU header.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < headerLen {
		return Header{}, errors.New("isns: short PDU header")
	}
	h := Header{
		Version:  binary.BigEndian.Uint16(b[0:]),
		Function: binary.BigEndian.Uint16(b[2:]),
		Length:   binary.BigEndian.Uint16(b[4:]),
		Flags:    binary.BigEndian.Uint16(b[6:]),
		XID:      binary.BigEndian.Uint16(b[8:]),
		Seq:      binary.BigEndian.Uint16(b[10:]),
	}
	if h.Version != version {
		return h, fmt.Errorf("isns: iSNSP version %d", h.Version)
	}
	return h, nil
}

// Attr is one TLV attribute; a nil Value is a zero-length one (a query
// key or a null PGT).
type Attr struct {
	Tag   uint32
	Value []byte
}

// Uint32 returns a 4-byte attribute's value.
func (a Attr) Uint32() (uint32, bool) {
	if len(a.Value) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(a.Value), true
}

// String returns a NUL-terminated string attribute's value.
func (a Attr) String() string {
	v := a.Value
	for i, c := range v {
		if c == 0 {
			v = v[:i]
			break
		}
	}
	return string(v)
}

func strAttr(tag uint32, s string) Attr {
	// NUL-terminated and padded to a multiple of 4 (RFC 4171 5.1.3).
	n := (len(s) + 1 + 3) &^ 3
	v := make([]byte, n)
	copy(v, s)
	return Attr{Tag: tag, Value: v}
}

func u32Attr(tag, v uint32) Attr {
	return Attr{Tag: tag, Value: binary.BigEndian.AppendUint32(nil, v)}
}

// ipAttr encodes an address in the 16-byte form (IPv4 mapped into IPv6).
func ipAttr(tag uint32, a netip.Addr) Attr {
	b := a.As16()
	return Attr{Tag: tag, Value: b[:]}
}

// portAttr encodes a TCP port (bit 15 of the upper half clear: TCP).
func portAttr(tag uint32, port uint16) Attr { return u32Attr(tag, uint32(port)) }

func appendAttrs(b []byte, attrs []Attr) []byte {
	for _, a := range attrs {
		b = binary.BigEndian.AppendUint32(b, a.Tag)
		b = binary.BigEndian.AppendUint32(b, uint32(len(a.Value)))
		b = append(b, a.Value...)
	}
	return b
}

// ParseAttrs decodes a TLV list. It never reads past b and refuses a
// length that does not fit, so hostile input cannot make it allocate.
func ParseAttrs(b []byte) ([]Attr, error) {
	var out []Attr
	for len(b) > 0 {
		if len(b) < 8 {
			return out, errors.New("isns: truncated attribute header")
		}
		tag := binary.BigEndian.Uint32(b)
		n := binary.BigEndian.Uint32(b[4:])
		b = b[8:]
		if uint64(n) > uint64(len(b)) {
			return out, fmt.Errorf("isns: attribute %d length %d exceeds the %d bytes left", tag, n, len(b))
		}
		var v []byte
		if n > 0 {
			v = b[:n:n]
		}
		out = append(out, Attr{Tag: tag, Value: v})
		b = b[n:]
	}
	return out, nil
}

// Message is a decoded iSNSP message: for a response, its status; the
// source attribute; the message key and the operating attributes (split
// at the delimiter).
type Message struct {
	Header    Header
	Status    uint32
	Source    Attr
	Key       []Attr
	Operating []Attr
}

// ParseMessage decodes a whole message's payload (its PDUs' payloads
// joined). Responses carry a status code first; a response with an
// error status may carry no attributes at all.
func ParseMessage(h Header, payload []byte) (Message, error) {
	m := Message{Header: h}
	if h.Function&fnResponse != 0 {
		if len(payload) < 4 {
			return m, errors.New("isns: response without status")
		}
		m.Status = binary.BigEndian.Uint32(payload)
		payload = payload[4:]
	}
	attrs, err := ParseAttrs(payload)
	if err != nil {
		return m, err
	}
	if len(attrs) == 0 {
		return m, nil
	}
	m.Source, attrs = attrs[0], attrs[1:]
	for i, a := range attrs {
		if a.Tag == tagDelimiter {
			m.Key, m.Operating = attrs[:i], attrs[i+1:]
			return m, nil
		}
	}
	m.Key = attrs
	return m, nil
}

// encodeMessage builds the PDUs of one message: source, key attributes,
// delimiter, operating attributes; split into PDUs of at most
// maxPayload bytes (sequence numbers and first/last flags join them).
func encodeMessage(fn, flags, xid uint16, status *uint32, source Attr, key, op []Attr) ([]byte, error) {
	var body []byte
	if status != nil {
		body = binary.BigEndian.AppendUint32(body, *status)
	}
	if source.Tag != 0 || source.Value != nil {
		body = appendAttrs(body, []Attr{source})
	}
	body = appendAttrs(body, key)
	body = appendAttrs(body, []Attr{{Tag: tagDelimiter}})
	body = appendAttrs(body, op)
	if len(body) > maxMessage {
		return nil, fmt.Errorf("isns: message of %d bytes is too large", len(body))
	}
	var out []byte
	for seq := 0; ; seq++ {
		n := min(len(body), maxPayload&^3)
		f := flags
		if seq == 0 {
			f |= flagFirst
		}
		if n == len(body) {
			f |= flagLast
		}
		out = Header{Version: version, Function: fn, Length: uint16(n), Flags: f, XID: xid, Seq: uint16(seq)}.append(out)
		out = append(out, body[:n]...)
		body = body[n:]
		if len(body) == 0 {
			return out, nil
		}
	}
}

package scsi

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ProtocolID is a SCSI transport protocol identifier (SPC-4 7.6.1).
type ProtocolID uint8

const (
	ProtocolFC    ProtocolID = 0x0
	ProtocolSPI   ProtocolID = 0x1
	ProtocolSSA   ProtocolID = 0x2
	ProtocolSBP   ProtocolID = 0x3
	ProtocolSRP   ProtocolID = 0x4
	ProtocolISCSI ProtocolID = 0x5
	ProtocolSAS   ProtocolID = 0x6
	ProtocolADT   ProtocolID = 0x7
	ProtocolATA   ProtocolID = 0x8
	ProtocolUAS   ProtocolID = 0x9
	ProtocolSOP   ProtocolID = 0xa
	ProtocolNone  ProtocolID = 0xf // no specific protocol
)

// TransportID names a SCSI initiator port, or for iSCSI format 00b an
// initiator device (SPC-4 7.6.4). It holds its canonical encoding:
// reserved bits zero, iSCSI ISIDs as lower-case hex, the shortest padding.
// The zero value is no TransportID. Compare with Equal, not ==.
type TransportID struct {
	enc string
	end int // iSCSI: where the name ends in enc
}

// Transport ID formats of iSCSI (SPC-4 7.6.4.6).
const (
	tidFormatISCSIName = 0x0 // iSCSI name: every port of the initiator device
	tidFormatISCSIPort = 0x1 // iSCSI name and ISID: one initiator port

	// isidSep separates the iSCSI name from the ISID in format 01b.
	isidSep = ",i,0x"
	// MaxISCSINameLen is RFC 7143's limit on an iSCSI name.
	MaxISCSINameLen = 223
	// tidFixedLen is the length of the FC and SAS TransportIDs.
	tidFixedLen = 24
)

// ErrBadTransportID reports a malformed or unsupported TransportID.
var ErrBadTransportID = errors.New("scsi: malformed or unsupported TransportID")

// ISCSIPortTransportID is the TransportID of an iSCSI initiator port
// (format 01b): the initiator name and the session's ISID.
func ISCSIPortTransportID(name string, isid [6]byte) TransportID {
	return iscsiTID(tidFormatISCSIPort, name, hex.EncodeToString(isid[:]))
}

// ISCSIDeviceTransportID is the TransportID of an iSCSI initiator device
// (format 00b): every initiator port with that name.
func ISCSIDeviceTransportID(name string) TransportID {
	return iscsiTID(tidFormatISCSIName, name, "")
}

// iscsiTID encodes an iSCSI TransportID, NUL-terminated and padded to a
// multiple of 4, at least 20 bytes of name field (isid lower-case hex).
func iscsiTID(format byte, name, isid string) TransportID {
	n := len(name) + 1
	if format == tidFormatISCSIPort {
		n += len(isidSep) + len(isid)
	}
	n = max(20, (n+3)&^3)
	b := make([]byte, 4, 4+n)
	b[0] = format<<6 | byte(ProtocolISCSI)
	binary.BigEndian.PutUint16(b[2:4], uint16(n))
	b = append(b, name...)
	if format == tidFormatISCSIPort {
		b = append(b, isidSep...)
		b = append(b, isid...)
	}
	b = append(b, make([]byte, 4+n-len(b))...)
	return TransportID{enc: string(b), end: 4 + len(name)}
}

// FCTransportID is the TransportID of a Fibre Channel N_Port.
func FCTransportID(portName [8]byte) TransportID {
	var b [tidFixedLen]byte
	b[0] = byte(ProtocolFC)
	copy(b[8:16], portName[:])
	return TransportID{enc: string(b[:])}
}

// SASTransportID is the TransportID of a SAS initiator port.
func SASTransportID(addr [8]byte) TransportID {
	var b [tidFixedLen]byte
	b[0] = byte(ProtocolSAS)
	copy(b[4:12], addr[:])
	return TransportID{enc: string(b[:])}
}

// ParseTransportID decodes the TransportID at the start of b and returns
// it with the number of bytes it took. iSCSI names are taken as they are
// (printable ASCII, at most 223 bytes), not checked for iqn./eui. syntax.
func ParseTransportID(b []byte) (TransportID, int, error) {
	if len(b) < 4 {
		return TransportID{}, 0, ErrBadTransportID
	}
	format := b[0] >> 6
	switch ProtocolID(b[0] & 0x0f) {
	case ProtocolISCSI:
		return parseISCSITID(format, b)
	case ProtocolFC, ProtocolSAS:
		if format != 0 || len(b) < tidFixedLen {
			return TransportID{}, 0, ErrBadTransportID
		}
		var addr [8]byte
		if b[0]&0x0f == byte(ProtocolFC) {
			copy(addr[:], b[8:16])
			return FCTransportID(addr), tidFixedLen, nil
		}
		copy(addr[:], b[4:12])
		return SASTransportID(addr), tidFixedLen, nil
	}
	return TransportID{}, 0, ErrBadTransportID
}

func parseISCSITID(format byte, b []byte) (TransportID, int, error) {
	bad := func() (TransportID, int, error) { return TransportID{}, 0, ErrBadTransportID }
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n < 4 || n > len(b)-4 {
		return bad()
	}
	field := b[4 : 4+n]
	end := bytes.IndexByte(field, 0)
	if end <= 0 {
		return bad() // no NUL terminator, or an empty name
	}
	s := string(field[:end])
	var tid TransportID
	switch format {
	case tidFormatISCSIName:
		tid = ISCSIDeviceTransportID(s)
	case tidFormatISCSIPort:
		i := lastIndexSep(s)
		if i <= 0 {
			return bad()
		}
		isid, ok := normISID(s[i+len(isidSep):])
		if !ok {
			return bad()
		}
		s = s[:i]
		tid = iscsiTID(tidFormatISCSIPort, s, isid)
	default:
		return bad()
	}
	if len(s) > MaxISCSINameLen || !printableASCII(s) {
		return bad()
	}
	return tid, 4 + n, nil
}

// lastIndexSep finds the last ",i,0x" in s, ignoring ASCII case, without
// changing byte offsets (strings.ToLower may, for non-ASCII input).
func lastIndexSep(s string) int {
	for i := len(s) - len(isidSep); i >= 0; i-- {
		if s[i] == ',' && s[i+1]|0x20 == 'i' && s[i+2] == ',' && s[i+3] == '0' && s[i+4]|0x20 == 'x' {
			return i
		}
	}
	return -1
}

// normISID validates 12 hex digits and lower-cases them.
func normISID(s string) (string, bool) {
	if len(s) != 12 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return "", false
		}
	}
	return strings.ToLower(s), true
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// IsZero reports whether t is the zero TransportID.
func (t TransportID) IsZero() bool { return t.enc == "" }

// Protocol is the TransportID's protocol identifier.
func (t TransportID) Protocol() ProtocolID {
	if t.enc == "" {
		return ProtocolNone
	}
	return ProtocolID(t.enc[0] & 0x0f)
}

// Len is the length of the encoded TransportID.
func (t TransportID) Len() int { return len(t.enc) }

// AppendTo appends the encoded TransportID to b.
func (t TransportID) AppendTo(b []byte) []byte { return append(b, t.enc...) }

func (t TransportID) iscsi() bool { return t.Protocol() == ProtocolISCSI }

// ISCSIName is the iSCSI name of an iSCSI TransportID ("" for others).
func (t TransportID) ISCSIName() string {
	if !t.iscsi() {
		return ""
	}
	return t.enc[4:t.end]
}

// isidHex is the ISID of an iSCSI format 01b TransportID as lower-case
// hex digits ("" for others).
func (t TransportID) isidHex() string {
	if !t.iscsi() || t.enc[0]>>6 != tidFormatISCSIPort {
		return ""
	}
	i := t.end + len(isidSep)
	return t.enc[i : i+12]
}

// ISID is the ISID of an iSCSI initiator port TransportID (format 01b).
func (t TransportID) ISID() (isid [6]byte, ok bool) {
	h := t.isidHex()
	if h == "" {
		return isid, false
	}
	_, err := hex.Decode(isid[:], []byte(h))
	return isid, err == nil
}

// Device is the TransportID of the initiator device t's port belongs to:
// for an iSCSI port (format 01b) its name alone (format 00b); other
// protocols name ports only, so t itself.
func (t TransportID) Device() TransportID {
	if t.isidHex() == "" {
		return t
	}
	return ISCSIDeviceTransportID(t.ISCSIName())
}

// Equal reports whether a and b name the same initiator port or device:
// iSCSI names compare case-insensitively (ISIDs are canonical hex), other
// TransportIDs byte for byte.
func (a TransportID) Equal(b TransportID) bool {
	if a.enc == "" || b.enc == "" {
		return a.enc == b.enc
	}
	if a.enc[0] != b.enc[0] {
		return false
	}
	if !a.iscsi() {
		return a.enc == b.enc
	}
	return a.isidHex() == b.isidHex() && strings.EqualFold(a.ISCSIName(), b.ISCSIName())
}

// String is a readable form for logs: "<iSCSI name>[,i,0x<ISID>]", or the
// protocol and the encoding in hex.
func (t TransportID) String() string {
	switch {
	case t.enc == "":
		return ""
	case t.iscsi() && t.isidHex() != "":
		return t.ISCSIName() + isidSep + t.isidHex()
	case t.iscsi():
		return t.ISCSIName()
	}
	return fmt.Sprintf("protocol %#x %x", byte(t.Protocol()), t.enc)
}

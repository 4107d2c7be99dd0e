package lu

import (
	"bytes"
	"encoding/binary"

	"github.com/costar-project/costar/stmf"
)

// TransportIDs (SPC-4 7.6.4): how persistent reservation parameter data
// names initiator ports. Only iSCSI's are understood for now (FC later):
//
//	byte 0   FORMAT CODE (bits 7:6) | PROTOCOL IDENTIFIER (bits 3:0) = 5h
//	2..3     ADDITIONAL LENGTH (a multiple of 4, at least 20)
//	4..      format 00b: iSCSI name; format 01b: name ",i,0x" ISID;
//	         NUL-terminated and NUL-padded
const (
	protoIDISCSI  = 0x5
	tidFormatName = 0x00 // iSCSI name only: every initiator port of the device
	tidFormatPort = 0x01 // iSCSI name and ISID: one initiator port

	// maxISCSINameLen is RFC 7143's limit on an iSCSI name.
	maxISCSINameLen = 223
)

// transportID is a decoded TransportID.
type transportID struct {
	name string
	isid string // "" for format 00b
	off  int    // byte offset in the parameter list, for sense data
}

// encodeTransportID builds the iSCSI TransportID of an initiator port
// (format 01b) or, without an ISID, of the initiator device (format 00b).
func encodeTransportID(name, isid string) []byte {
	s := name
	format := byte(tidFormatName)
	if isid != "" {
		s = name + isidSep + isid
		format = tidFormatPort
	}
	n := (len(s) + 1 + 3) &^ 3 // NUL-terminated, padded to a multiple of 4
	if n < 20 {
		n = 20
	}
	b := make([]byte, 4+n)
	b[0] = format<<6 | protoIDISCSI
	binary.BigEndian.PutUint16(b[2:4], uint16(n))
	copy(b[4:], s)
	return b
}

// parseTransportIDs decodes a list of TransportIDs that exactly fills b.
// base is b's offset in the parameter list. A malformed or unsupported
// TransportID is INVALID FIELD IN PARAMETER LIST pointing at it.
func parseTransportIDs(b []byte, base int) ([]transportID, *stmf.Result) {
	var out []transportID
	for off := 0; off < len(b); {
		rest := b[off:]
		bad := fail(invalidParam(base+off, -1))
		if len(rest) < 4 || rest[0]&0x0f != protoIDISCSI {
			return nil, bad
		}
		format := rest[0] >> 6
		n := int(binary.BigEndian.Uint16(rest[2:4]))
		if n < 4 || n > len(rest)-4 {
			return nil, bad
		}
		field := rest[4 : 4+n]
		end := bytes.IndexByte(field, 0)
		if end <= 0 {
			return nil, bad // no NUL terminator, or an empty name
		}
		s := string(field[:end])
		var tid transportID
		switch format {
		case tidFormatName:
			tid = transportID{name: s}
		case tidFormatPort:
			i := lastIndexSep(s)
			if i <= 0 {
				return nil, bad
			}
			isid, ok := normISID(s[i+len(isidSep):])
			if !ok {
				return nil, bad
			}
			tid = transportID{name: s[:i], isid: isid}
		default:
			return nil, bad
		}
		if len(tid.name) > maxISCSINameLen || !validASCII(tid.name) {
			return nil, bad
		}
		tid.off = base + off
		out = append(out, tid)
		if len(out) > maxRegistrations {
			return nil, bad
		}
		off += 4 + n
	}
	return out, nil
}

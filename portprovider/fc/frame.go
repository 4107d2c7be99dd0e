package fc

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// FC-FS-3 frame header: the 24 bytes in front of every frame's payload.

// HeaderLen is the length of an FC frame header.
const HeaderLen = 24

// MaxPayload is the largest frame payload FC-FS allows (2112 bytes).
const MaxPayload = 2112

// R_CTL values this target sends or understands (routing and information
// category in one byte).
const (
	RCtlFCPData    = 0x01 // FC-4 device data, solicited data (FCP_DATA)
	RCtlFCPXferRdy = 0x05 // data descriptor (FCP_XFER_RDY)
	RCtlFCPCmnd    = 0x06 // unsolicited command (FCP_CMND)
	RCtlFCPRsp     = 0x07 // command status (FCP_RSP)
	RCtlELSReq     = 0x22 // extended link service request
	RCtlELSRep     = 0x23 // extended link service reply
	RCtlABTS       = 0x81 // basic link service: abort sequence
	RCtlBAACC      = 0x84
	RCtlBARJT      = 0x85
)

// TYPE values.
const (
	TypeBLS = 0x00
	TypeELS = 0x01
	TypeFCP = 0x08
)

// F_CTL bits (FC-FS-3 table 37).
const (
	FCtlExchResponder = 1 << 23 // we are the exchange's responder
	FCtlSeqResponder  = 1 << 22
	FCtlFirstSeq      = 1 << 21
	FCtlLastSeq       = 1 << 20
	FCtlEndSeq        = 1 << 19
	FCtlSeqInit       = 1 << 16 // transfer sequence initiative
	FCtlRelOffset     = 1 << 3  // Parameter holds the relative offset
)

// UnassignedXID is the OX_ID/RX_ID value for "not assigned yet".
const UnassignedXID = 0xffff

// Header is a decoded FC frame header.
type Header struct {
	RCtl   byte
	DID    uint32 // destination N_Port ID (24 bits)
	CSCtl  byte
	SID    uint32 // source N_Port ID (24 bits)
	Type   byte
	FCtl   uint32 // 24 bits
	SeqID  byte
	DFCtl  byte
	SeqCnt uint16
	OXID   uint16
	RXID   uint16
	Param  uint32 // relative offset for FCP_DATA with FCtlRelOffset
}

// Frame is one FC frame without SOF/EOF and CRC (the adapter's business).
type Frame struct {
	Header
	Payload []byte
}

// ErrShortFrame reports a frame shorter than its header.
var ErrShortFrame = errors.New("fc: frame shorter than its header")

// ParseFrame decodes a frame from b. The payload aliases b.
func ParseFrame(b []byte) (Frame, error) {
	if len(b) < HeaderLen {
		return Frame{}, fmt.Errorf("%w: %d bytes", ErrShortFrame, len(b))
	}
	if len(b)-HeaderLen > MaxPayload {
		return Frame{}, fmt.Errorf("fc: payload of %d bytes exceeds %d", len(b)-HeaderLen, MaxPayload)
	}
	var h Header
	h.RCtl, h.DID = b[0], be24(b[1:])
	h.CSCtl, h.SID = b[4], be24(b[5:])
	h.Type, h.FCtl = b[8], be24(b[9:])
	h.SeqID, h.DFCtl = b[12], b[13]
	h.SeqCnt = binary.BigEndian.Uint16(b[14:])
	h.OXID = binary.BigEndian.Uint16(b[16:])
	h.RXID = binary.BigEndian.Uint16(b[18:])
	h.Param = binary.BigEndian.Uint32(b[20:])
	return Frame{Header: h, Payload: b[HeaderLen:]}, nil
}

// AppendTo appends the encoded frame (header and payload) to b.
func (f *Frame) AppendTo(b []byte) []byte {
	h := &f.Header
	b = append(b, h.RCtl)
	b = put24(b, h.DID)
	b = append(b, h.CSCtl)
	b = put24(b, h.SID)
	b = append(b, h.Type)
	b = put24(b, h.FCtl)
	b = append(b, h.SeqID, h.DFCtl)
	b = binary.BigEndian.AppendUint16(b, h.SeqCnt)
	b = binary.BigEndian.AppendUint16(b, h.OXID)
	b = binary.BigEndian.AppendUint16(b, h.RXID)
	b = binary.BigEndian.AppendUint32(b, h.Param)
	return append(b, f.Payload...)
}

func be24(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }

func put24(b []byte, v uint32) []byte { return append(b, byte(v>>16), byte(v>>8), byte(v)) }

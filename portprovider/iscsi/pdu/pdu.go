// Package pdu is the iSCSI (RFC 7143) wire codec: the 48-byte basic header
// segment, additional header segments, data segments with padding, and the
// CRC32C header and data digests. It also holds the text key=value codec and
// RFC 1982 serial number arithmetic. It knows nothing about sessions.
package pdu

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Opcode is the 6-bit iSCSI opcode.
type Opcode uint8

// Initiator opcodes.
const (
	OpNOPOut      Opcode = 0x00
	OpSCSICmd     Opcode = 0x01
	OpTaskMgmtReq Opcode = 0x02
	OpLoginReq    Opcode = 0x03
	OpTextReq     Opcode = 0x04
	OpDataOut     Opcode = 0x05
	OpLogoutReq   Opcode = 0x06
	OpSNACKReq    Opcode = 0x10
)

// Target opcodes.
const (
	OpNOPIn        Opcode = 0x20
	OpSCSIResp     Opcode = 0x21
	OpTaskMgmtResp Opcode = 0x22
	OpLoginResp    Opcode = 0x23
	OpTextResp     Opcode = 0x24
	OpDataIn       Opcode = 0x25
	OpLogoutResp   Opcode = 0x26
	OpR2T          Opcode = 0x31
	OpAsyncMsg     Opcode = 0x32
	OpReject       Opcode = 0x3f
)

func (o Opcode) String() string {
	switch o {
	case OpNOPOut:
		return "NOP-Out"
	case OpSCSICmd:
		return "SCSI-Command"
	case OpTaskMgmtReq:
		return "TMF-Request"
	case OpLoginReq:
		return "Login-Request"
	case OpTextReq:
		return "Text-Request"
	case OpDataOut:
		return "Data-Out"
	case OpLogoutReq:
		return "Logout-Request"
	case OpSNACKReq:
		return "SNACK"
	case OpNOPIn:
		return "NOP-In"
	case OpSCSIResp:
		return "SCSI-Response"
	case OpTaskMgmtResp:
		return "TMF-Response"
	case OpLoginResp:
		return "Login-Response"
	case OpTextResp:
		return "Text-Response"
	case OpDataIn:
		return "Data-In"
	case OpLogoutResp:
		return "Logout-Response"
	case OpR2T:
		return "R2T"
	case OpAsyncMsg:
		return "Async-Message"
	case OpReject:
		return "Reject"
	}
	return fmt.Sprintf("opcode-0x%02x", uint8(o))
}

// Flag bits in byte 1.
const (
	FlagFinal    = 0x80 // F (and T in login PDUs)
	FlagContinue = 0x40 // C in login/text PDUs
	FlagRead     = 0x40 // R in SCSI Command
	FlagWrite    = 0x20 // W in SCSI Command
	FlagAck      = 0x40 // A in Data-In
	FlagBiOver   = 0x10 // o in SCSI Response
	FlagBiUnder  = 0x08 // u in SCSI Response
	FlagOver     = 0x04 // O
	FlagUnder    = 0x02 // U
	FlagStatus   = 0x01 // S in Data-In
	AttrMask     = 0x07
	ImmediateBit = 0x40 // in byte 0
)

// Common field offsets inside the BHS.
const (
	OffLUN          = 8
	OffITT          = 16
	OffTTT          = 20 // also EDTL (SCSI Command), RefTaskTag (TMF), SNACKTag
	OffEDTL         = 20
	OffCmdSN        = 24 // initiator PDUs
	OffStatSN       = 24 // target PDUs
	OffExpStatSN    = 28 // initiator PDUs
	OffExpCmdSN     = 28 // target PDUs
	OffMaxCmdSN     = 32
	OffRefCmdSN     = 32
	OffDataSN       = 36 // also R2TSN, ExpDataSN
	OffBufferOffset = 40
	OffResidual     = 44 // also Desired Data Transfer Length in R2T
	OffBidiResidual = 40
	OffCDB          = 32
)

// Sizes.
const (
	BHSLen = 48
	// MaxAHSLen is the largest AHS the 8-bit TotalAHSLength can describe.
	MaxAHSLen = 255 * 4
	// MaxDataSegment is the largest DataSegmentLength representable.
	MaxDataSegment = 1<<24 - 1
	DigestLen      = 4
	// ReservedTag is the all-ones task tag meaning "none".
	ReservedTag = 0xffffffff
)

// Errors from the reader.
var (
	ErrHeaderDigest = errors.New("iscsi: header digest mismatch")
	ErrDataDigest   = errors.New("iscsi: data digest mismatch")
	ErrDataTooLong  = errors.New("iscsi: data segment longer than negotiated")
	ErrBadAHS       = errors.New("iscsi: malformed additional header segment")
)

// Header is the 48-byte basic header segment.
type Header [BHSLen]byte

// Opcode returns the opcode.
func (h *Header) Opcode() Opcode { return Opcode(h[0] & 0x3f) }

// Immediate reports the I bit.
func (h *Header) Immediate() bool { return h[0]&ImmediateBit != 0 }

// SetOpcode sets the opcode and the immediate bit.
func (h *Header) SetOpcode(op Opcode, immediate bool) {
	h[0] = byte(op) & 0x3f
	if immediate {
		h[0] |= ImmediateBit
	}
}

// Flags returns byte 1.
func (h *Header) Flags() byte { return h[1] }

// SetFlags sets byte 1.
func (h *Header) SetFlags(f byte) { h[1] = f }

// Final reports the F (or T) bit.
func (h *Header) Final() bool { return h[1]&FlagFinal != 0 }

// TotalAHSLength returns the AHS length in bytes.
func (h *Header) TotalAHSLength() int { return int(h[4]) * 4 }

// DataSegmentLength returns the 24-bit data segment length.
func (h *Header) DataSegmentLength() uint32 {
	return uint32(h[5])<<16 | uint32(h[6])<<8 | uint32(h[7])
}

// SetDataSegmentLength sets the 24-bit data segment length (truncated).
func (h *Header) SetDataSegmentLength(n uint32) {
	h[5], h[6], h[7] = byte(n>>16), byte(n>>8), byte(n)
}

// LUN returns the 8-byte LUN field.
func (h *Header) LUN() (l [8]byte) { copy(l[:], h[OffLUN:OffLUN+8]); return l }

// SetLUN sets the 8-byte LUN field.
func (h *Header) SetLUN(l [8]byte) { copy(h[OffLUN:OffLUN+8], l[:]) }

// U32 reads a big-endian 32-bit field at off.
func (h *Header) U32(off int) uint32 { return binary.BigEndian.Uint32(h[off : off+4]) }

// SetU32 writes a big-endian 32-bit field at off.
func (h *Header) SetU32(off int, v uint32) { binary.BigEndian.PutUint32(h[off:off+4], v) }

// U16 reads a big-endian 16-bit field at off.
func (h *Header) U16(off int) uint16 { return binary.BigEndian.Uint16(h[off : off+2]) }

// SetU16 writes a big-endian 16-bit field at off.
func (h *Header) SetU16(off int, v uint16) { binary.BigEndian.PutUint16(h[off:off+2], v) }

// ITT returns the initiator task tag.
func (h *Header) ITT() uint32 { return h.U32(OffITT) }

// SetITT sets the initiator task tag.
func (h *Header) SetITT(v uint32) { h.SetU32(OffITT, v) }

// ISID returns the 6-byte ISID of a login PDU.
func (h *Header) ISID() (id [6]byte) { copy(id[:], h[8:14]); return id }

// SetISID sets the ISID of a login PDU.
func (h *Header) SetISID(id [6]byte) { copy(h[8:14], id[:]) }

// TSIH of a login PDU.
func (h *Header) TSIH() uint16 { return h.U16(14) }

// SetTSIH sets the TSIH of a login PDU.
func (h *Header) SetTSIH(v uint16) { h.SetU16(14, v) }

// CID of a login or logout request.
func (h *Header) CID() uint16 { return h.U16(20) }

// SetCID sets the CID of a login or logout request.
func (h *Header) SetCID(v uint16) { h.SetU16(20, v) }

// Login stage numbers (CSG/NSG).
const (
	StageSecurity    = 0
	StageOperational = 1
	StageFullFeature = 3
)

// LoginStages returns CSG and NSG of a login PDU.
func (h *Header) LoginStages() (csg, nsg uint8) { return (h[1] >> 2) & 3, h[1] & 3 }

// SetLoginFlags builds byte 1 of a login PDU.
func (h *Header) SetLoginFlags(transit, cont bool, csg, nsg uint8) {
	var f byte
	if transit {
		f |= FlagFinal
	}
	if cont {
		f |= FlagContinue
	}
	h[1] = f | (csg&3)<<2 | nsg&3
}

// CDB16 returns the 16 CDB bytes of a SCSI Command.
func (h *Header) CDB16() []byte { return h[OffCDB : OffCDB+16] }

// Padding returns the number of pad bytes after n data bytes.
func Padding(n uint32) uint32 { return (4 - n&3) & 3 }

// Castagnoli is the CRC32C table used for iSCSI digests.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C updates crc over p (start with 0).
func CRC32C(crc uint32, p []byte) uint32 { return crc32.Update(crc, castagnoli, p) }

var zeroPad [4]byte

// DataDigest computes the data digest over data and its padding.
func DataDigest(data []byte) uint32 {
	c := CRC32C(0, data)
	if p := Padding(uint32(len(data))); p != 0 {
		c = CRC32C(c, zeroPad[:p])
	}
	return c
}

// PutDigest stores a digest in wire order. iSCSI transmits the CRC32C
// register least significant byte first (RFC 7143 B.4 test vectors).
func PutDigest(b []byte, d uint32) { binary.LittleEndian.PutUint32(b, d) }

// GetDigest reads a digest in wire order.
func GetDigest(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// Reader decodes PDUs from a stream. It reuses its own buffers; the header
// and AHS it returns are valid until the next ReadHeader.
type Reader struct {
	R            *bufio.Reader
	HeaderDigest bool
	DataDigest   bool
	// MaxData is the largest DataSegmentLength accepted (our
	// MaxRecvDataSegmentLength); longer segments give ErrDataTooLong.
	MaxData uint32

	ahs  [MaxAHSLen]byte
	dig  [DigestLen]byte
	pad  [4]byte
	skip []byte
}

// NewReader wraps r.
func NewReader(r *bufio.Reader, maxData uint32) *Reader { return &Reader{R: r, MaxData: maxData} }

// ReadHeader reads the BHS, the AHS and the header digest. The returned
// AHS slice aliases the reader's buffer. On ErrDataTooLong the header is
// valid and the data segment has not been consumed.
func (rd *Reader) ReadHeader(h *Header) (ahs []byte, err error) {
	if _, err := io.ReadFull(rd.R, h[:]); err != nil {
		return nil, err
	}
	n := h.TotalAHSLength()
	ahs = rd.ahs[:n]
	if n > 0 {
		if _, err := io.ReadFull(rd.R, ahs); err != nil {
			return nil, unexpected(err)
		}
	}
	if rd.HeaderDigest {
		if _, err := io.ReadFull(rd.R, rd.dig[:]); err != nil {
			return nil, unexpected(err)
		}
		c := CRC32C(CRC32C(0, h[:]), ahs)
		if c != GetDigest(rd.dig[:]) {
			return nil, ErrHeaderDigest
		}
	}
	if h.DataSegmentLength() > rd.MaxData {
		return ahs, fmt.Errorf("%w: %d > %d", ErrDataTooLong, h.DataSegmentLength(), rd.MaxData)
	}
	return ahs, nil
}

// dataLen is what follows h's header on the wire: the data segment, its
// padding and its digest.
func (rd *Reader) dataLen(h *Header) int {
	n := int(h.DataSegmentLength())
	if n == 0 {
		return 0
	}
	n += int(Padding(uint32(n)))
	if rd.DataDigest {
		n += DigestLen
	}
	return n
}

// DataBuffered reports whether the data segment of h (with padding and
// digest) is already buffered, so reading it cannot block.
func (rd *Reader) DataBuffered(h *Header) bool { return rd.R.Buffered() >= rd.dataLen(h) }

// NextBuffered reports the opcode of the next PDU and whether all of it
// (header, AHS, digests, data) is already buffered, without consuming
// anything or blocking.
func (rd *Reader) NextBuffered() (op Opcode, whole bool) {
	if rd.R.Buffered() < BHSLen {
		return 0, false
	}
	b, err := rd.R.Peek(BHSLen)
	if err != nil {
		return 0, false
	}
	h := (*Header)(b)
	n := BHSLen + h.TotalAHSLength() + rd.dataLen(h)
	if rd.HeaderDigest {
		n += DigestLen
	}
	return h.Opcode(), rd.R.Buffered() >= n
}

// ReadData reads the data segment announced by h into dst, which must be
// exactly DataSegmentLength bytes, then the padding and the data digest.
// A digest mismatch consumes the whole segment and returns ErrDataDigest,
// so the stream stays in sync.
func (rd *Reader) ReadData(h *Header, dst []byte) error {
	n := h.DataSegmentLength()
	if uint32(len(dst)) != n {
		return fmt.Errorf("iscsi: data buffer %d bytes for a %d-byte segment", len(dst), n)
	}
	if n == 0 {
		return nil
	}
	if _, err := io.ReadFull(rd.R, dst); err != nil {
		return unexpected(err)
	}
	p := Padding(n)
	if p > 0 {
		if _, err := io.ReadFull(rd.R, rd.pad[:p]); err != nil {
			return unexpected(err)
		}
	}
	if rd.DataDigest {
		if _, err := io.ReadFull(rd.R, rd.dig[:]); err != nil {
			return unexpected(err)
		}
		c := CRC32C(CRC32C(0, dst), rd.pad[:p])
		if c != GetDigest(rd.dig[:]) {
			return ErrDataDigest
		}
	}
	return nil
}

// DiscardData skips the data segment of h (with padding and digest)
// without allocating more than a small scratch buffer.
func (rd *Reader) DiscardData(h *Header) error {
	n := rd.dataLen(h)
	if n == 0 {
		return nil
	}
	if _, err := rd.R.Discard(n); err != nil {
		return unexpected(err)
	}
	return nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendPDU appends a complete PDU (header, AHS, header digest, data,
// padding, data digest) to dst. It is used for small PDUs; the connection
// writer sends large Data-In segments without copying.
func AppendPDU(dst []byte, h *Header, ahs, data []byte, hdrDigest, dataDigest bool) []byte {
	h[4] = byte(len(ahs) / 4)
	h.SetDataSegmentLength(uint32(len(data)))
	dst = append(dst, h[:]...)
	dst = append(dst, ahs...)
	if hdrDigest {
		var d [4]byte
		PutDigest(d[:], CRC32C(CRC32C(0, h[:]), ahs))
		dst = append(dst, d[:]...)
	}
	if len(data) > 0 {
		dst = append(dst, data...)
		dst = append(dst, zeroPad[:Padding(uint32(len(data)))]...)
		if dataDigest {
			var d [4]byte
			PutDigest(d[:], DataDigest(data))
			dst = append(dst, d[:]...)
		}
	}
	return dst
}

// AHS types.
const (
	AHSExtendedCDB  = 1
	AHSBidiReadLen  = 2
	MaxCDBLen       = 16 + 1<<16 // upper bound; real CDBs are at most 260 bytes
	maxExtendedCDB  = 260 - 16
	bidiAHSLength   = 5
	ahsHeaderLength = 3
)

// AHS is the decoded additional header segments of a SCSI Command.
type AHS struct {
	ExtCDB      []byte // CDB bytes beyond the first 16 (aliases the input)
	BidiReadLen uint32
	HasBidi     bool
}

// ParseAHS decodes the AHS area of a SCSI Command. Unknown types are an
// error (the command is rejected).
func ParseAHS(b []byte) (AHS, error) {
	var a AHS
	for len(b) > 0 {
		if len(b) < 4 {
			return a, ErrBadAHS
		}
		l := int(binary.BigEndian.Uint16(b[0:2]))
		typ := b[2]
		total := (ahsHeaderLength + l + 3) &^ 3
		if total > len(b) || l < 1 {
			return a, ErrBadAHS
		}
		spec := b[ahsHeaderLength : ahsHeaderLength+l] // spec[0] is reserved
		switch typ {
		case AHSExtendedCDB:
			if a.ExtCDB != nil || l-1 > maxExtendedCDB {
				return a, ErrBadAHS
			}
			a.ExtCDB = spec[1:]
		case AHSBidiReadLen:
			if a.HasBidi || l != bidiAHSLength {
				return a, ErrBadAHS
			}
			a.BidiReadLen = binary.BigEndian.Uint32(spec[1:5])
			a.HasBidi = true
		default:
			return a, fmt.Errorf("%w: type %d", ErrBadAHS, typ)
		}
		b = b[total:]
	}
	return a, nil
}

// AppendExtCDBAHS appends an extended-CDB AHS carrying ext (CDB bytes
// beyond 16).
func AppendExtCDBAHS(dst, ext []byte) []byte {
	l := len(ext) + 1
	dst = append(dst, byte(l>>8), byte(l), AHSExtendedCDB, 0)
	dst = append(dst, ext...)
	for (ahsHeaderLength+l)&3 != 0 {
		dst = append(dst, 0)
		l++
	}
	return dst
}

// AppendBidiAHS appends a bidirectional expected read-data length AHS.
func AppendBidiAHS(dst []byte, n uint32) []byte {
	dst = append(dst, 0, bidiAHSLength, AHSBidiReadLen, 0)
	dst = binary.BigEndian.AppendUint32(dst, n)
	return dst
}

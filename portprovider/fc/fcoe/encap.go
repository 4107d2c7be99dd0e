package fcoe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/costar-project/costar/portprovider/fc"
)

// FCoE encapsulation (FC-BB-6 7.7): Ethernet header, a 14-byte FCoE
// header (version, reserved, SOF), the FC frame padded to whole words
// (the pad count in F_CTL), the FC CRC (IEEE CRC-32 over header, payload
// and pad, sent least significant byte first as Linux does), EOF and
// three reserved bytes.

// SOF and EOF codes (FC-BB-6 table 7, the FC-FS ordered sets as bytes).
const (
	SOFf  = 0x28
	SOFi2 = 0x2d
	SOFn2 = 0x35
	SOFi3 = 0x2e
	SOFn3 = 0x36

	EOFn  = 0x41
	EOFt  = 0x42
	EOFni = 0x49
	EOFa  = 0x50
)

const (
	fcoeHdrLen     = 14
	fcoeTrailerLen = 8
	fcoeVersion    = 0
	fctlFillMask   = 0x3 // F_CTL bits 1..0: pad bytes at the end of the payload
	// Overhead is what FCoE adds around an FC frame's payload, not counting
	// the Ethernet header: the sum an interface MTU must leave room for.
	Overhead = fcoeHdrLen + fc.HeaderLen + fcoeTrailerLen
)

// errFCoE is wrapped by every FCoE decode error.
var errFCoE = errors.New("fcoe: bad FCoE frame")

// Encap is a decoded FCoE frame.
type Encap struct {
	SOF, EOF byte
	Frame    fc.Frame // payload aliases the input, pad removed
}

// fcCRC is the FC CRC of b as it goes on the wire (little endian).
func fcCRC(b []byte) uint32 { return crc32.ChecksumIEEE(b) }

// AppendFCoE appends a whole Ethernet frame carrying f from src to dst.
// The first frame of a sequence (SEQ_CNT 0) opens it with SOFi3, later
// ones SOFn3; the frame ending the sequence closes with EOFt.
func AppendFCoE(b []byte, dst, src MAC, f *fc.Frame) []byte {
	h := f.Header
	pad := (4 - len(f.Payload)%4) % 4
	h.FCtl = h.FCtl&^fctlFillMask | uint32(pad)
	sof, eof := byte(SOFn3), byte(EOFn)
	if h.SeqCnt == 0 {
		sof = SOFi3
	}
	if h.FCtl&fc.FCtlEndSeq != 0 {
		eof = EOFt
	}
	b = appendEth(b, dst, src, EtherTypeFCoE)
	b = append(b, fcoeVersion<<4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, sof)
	start := len(b)
	g := fc.Frame{Header: h, Payload: f.Payload}
	b = g.AppendTo(b)
	b = append(b, make([]byte, pad)...)
	b = binary.LittleEndian.AppendUint32(b, fcCRC(b[start:]))
	return append(b, eof, 0, 0, 0)
}

// ParseFCoE decodes an FCoE frame (after the Ethernet header). The
// trailer is the last 8 bytes: an FCoE frame is never shorter than the
// Ethernet minimum, so no Ethernet padding follows it. Frames with a bad
// version, CRC, SOF or an aborting EOF are refused.
func ParseFCoE(b []byte) (Encap, error) {
	var e Encap
	if len(b) < fcoeHdrLen+fc.HeaderLen+fcoeTrailerLen {
		return e, fmt.Errorf("%w: %d bytes", errFCoE, len(b))
	}
	if b[0]>>4 != fcoeVersion {
		return e, fmt.Errorf("%w: version %d", errFCoE, b[0]>>4)
	}
	e.SOF = b[13]
	switch e.SOF {
	case SOFf, SOFi2, SOFn2, SOFi3, SOFn3:
	default:
		return e, fmt.Errorf("%w: SOF %#x", errFCoE, e.SOF)
	}
	body := b[fcoeHdrLen : len(b)-fcoeTrailerLen]
	tr := b[len(b)-fcoeTrailerLen:]
	if len(body)%4 != 0 {
		return e, fmt.Errorf("%w: FC frame of %d bytes is not whole words", errFCoE, len(body))
	}
	e.EOF = tr[4]
	switch e.EOF {
	case EOFn, EOFt:
	case EOFni, EOFa:
		return e, fmt.Errorf("%w: aborted frame (EOF %#x)", errFCoE, e.EOF)
	default:
		return e, fmt.Errorf("%w: EOF %#x", errFCoE, e.EOF)
	}
	if got, want := binary.LittleEndian.Uint32(tr), fcCRC(body); got != want {
		return e, fmt.Errorf("%w: CRC %08x, computed %08x", errFCoE, got, want)
	}
	f, err := fc.ParseFrame(body)
	if err != nil {
		return e, fmt.Errorf("%w: %w", errFCoE, err)
	}
	pad := int(f.FCtl & fctlFillMask)
	if pad > len(f.Payload) {
		return e, fmt.Errorf("%w: %d pad bytes in a %d-byte payload", errFCoE, pad, len(f.Payload))
	}
	f.Payload = f.Payload[:len(f.Payload)-pad]
	f.FCtl &^= fctlFillMask
	e.Frame = f
	return e, nil
}

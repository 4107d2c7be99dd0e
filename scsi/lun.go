package scsi

import (
	"encoding/binary"
	"fmt"
)

// MaxLUN is one above the highest LUN COMSTAR allows in a view (flat space).
const MaxLUN = 16384

// LUN is a logical unit number in the single-level space 0..16383.
type LUN uint16

// EncodeLUN returns the 8-byte SAM LUN field for n: peripheral device
// addressing for 0..255 (what ESXi <= 6.5 understands), flat addressing above.
func EncodeLUN(n LUN) [8]byte {
	var b [8]byte
	if n < 256 {
		b[1] = byte(n)
	} else {
		binary.BigEndian.PutUint16(b[0:2], 0x4000|uint16(n&0x3fff))
	}
	return b
}

// DecodeLUN decodes the whole 8-byte LUN field. Only single-level peripheral
// (bus 0) and flat addresses are valid; anything else, including nonzero
// second-level bytes, is reported as not ok so the caller answers LOGICAL
// UNIT NOT SUPPORTED instead of aliasing it onto another LUN.
func DecodeLUN(b [8]byte) (LUN, bool) {
	if binary.BigEndian.Uint64(b[:])&0x0000ffffffffffff != 0 {
		return 0, false
	}
	switch b[0] >> 6 {
	case 0: // peripheral device addressing
		if b[0]&0x3f != 0 {
			return 0, false // bus identifier: we have no buses behind us
		}
		return LUN(b[1]), true
	case 1: // flat space addressing
		return LUN(binary.BigEndian.Uint16(b[0:2]) & 0x3fff), true
	}
	return 0, false
}

// DecodeLUN64 is DecodeLUN for a LUN field held as a big-endian uint64.
func DecodeLUN64(v uint64) (LUN, bool) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return DecodeLUN(b)
}

func (n LUN) String() string { return fmt.Sprintf("%d", uint16(n)) }

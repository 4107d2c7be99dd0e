package lu

import (
	"encoding/binary"
	"math"
)

// The opcode switches the command table replaced, verbatim (constants
// spelled out): the table tests check that every row answers as they did.

// lockRange classifies cdb and returns the blocks [lo, hi) it touches.
// It parses defensively: a short or odd CDB gets lockNone (dispatch will
// reject it). A count of zero touches nothing, except WRITE SAME where it
// means "to the end of the LU".
func lockRangeBefore(cdb []byte) (kind lockKind, lo, hi uint64) {
	if len(cdb) == 0 {
		return lockNone, 0, 0
	}
	var n uint64
	switch op := cdb[0]; op {
	case 0x42:
		// UNMAP's ranges are in its parameter list, unknown at Admit: order
		// it against every write, in arrival order. UNMAP is rare and a
		// hole punch is fast, so the whole-LU entry costs little.
		return lockWrite, 0, math.MaxUint64
	case 0x08, 0x0a:
		if len(cdb) < 6 {
			return lockNone, 0, 0
		}
		lo = uint64(cdb[1]&0x1f)<<16 | uint64(cdb[2])<<8 | uint64(cdb[3])
		n = uint64(cdb[4])
		if n == 0 {
			n = 256
		}
		kind = lockWrite
		if op == 0x08 {
			kind = lockRead
		}
	case 0x28, 0x2a, 0x2e, 0x41:
		if len(cdb) < 10 {
			return lockNone, 0, 0
		}
		lo = uint64(binary.BigEndian.Uint32(cdb[2:6]))
		n = uint64(binary.BigEndian.Uint16(cdb[7:9]))
		kind = lockWrite
		if op == 0x28 {
			kind = lockRead
		}
		if op == 0x41 && n == 0 {
			return lockWrite, lo, math.MaxUint64
		}
	case 0xa8, 0xaa, 0xae:
		if len(cdb) < 12 {
			return lockNone, 0, 0
		}
		lo = uint64(binary.BigEndian.Uint32(cdb[2:6]))
		n = uint64(binary.BigEndian.Uint32(cdb[6:10]))
		kind = lockWrite
		if op == 0xa8 {
			kind = lockRead
		}
	case 0x88, 0x8a, 0x8e, 0x8b, 0x93, 0x89, 0x9c:
		if len(cdb) < 16 {
			return lockNone, 0, 0
		}
		lo = binary.BigEndian.Uint64(cdb[2:10])
		switch op {
		case 0x89:
			n, kind = uint64(cdb[13]), lockAtomic
		case 0x9c:
			n, kind = uint64(binary.BigEndian.Uint16(cdb[12:14])), lockAtomic
		case 0x8b:
			n, kind = uint64(binary.BigEndian.Uint32(cdb[10:14])), lockAtomic
		case 0x88:
			n, kind = uint64(binary.BigEndian.Uint32(cdb[10:14])), lockRead
		default:
			n, kind = uint64(binary.BigEndian.Uint32(cdb[10:14])), lockWrite
			if op == 0x93 && n == 0 {
				return lockWrite, lo, math.MaxUint64
			}
		}
	default:
		return lockNone, 0, 0
	}
	if n == 0 {
		return lockNone, 0, 0
	}
	hi = lo + n
	if hi < lo { // wraps: the command fails LBA OUT OF RANGE; lock to the end
		hi = math.MaxUint64
	}
	return kind, lo, hi
}

// classify returns a command's persistent reservation class and whether
// it is allowed from an I_T nexus other than the holder of a SCSI-2
// reservation (SPC-2 table 10 and annex B, column "reserved by another
// initiator"). cdb has at least the command's length.
func classifyBefore(cdb []byte) (cls cmdClass, scsi2OK bool) {
	sa := byte(0)
	if len(cdb) > 1 {
		sa = cdb[1] & 0x1f
	}
	switch cdb[0] {
	case 0x12, 0xa0, 0x03, 0x25,
		0x4d: // LOG SENSE
		return clsAllowed, true
	case 0x17, 0x57:
		return clsAllowed, true // RELEASE from a non-holder does nothing
	case 0x16, 0x56:
		return clsAllowed, false
	case 0x5e, 0x5f:
		// SPC-2: all PERSISTENT RESERVE commands conflict while a SCSI-2
		// reservation exists, from every initiator (handled by the caller).
		return clsAllowed, false
	case 0x00:
		return clsAllowed, false
	case 0x1b: // START=1 with POWER CONDITION 0 is harmless
		if len(cdb) > 4 && cdb[4]&0x01 != 0 && cdb[4]&0xf0 == 0 {
			return clsAllowed, true
		}
		return clsOther, false
	case 0x1e: // PREVENT ALLOW MEDIUM REMOVAL with PREVENT 0
		if len(cdb) > 4 && cdb[4]&0x03 == 0 {
			return clsAllowed, true
		}
		return clsOther, false
	case 0x9e:
		switch sa {
		case 0x10:
			return clsAllowed, true
		case 0x12: // GET LBA STATUS
			return clsRead, false
		}
		return clsOther, false
	case 0xab: // SERVICE ACTION IN (12): READ MEDIA SERIAL NUMBER
		if sa == 0x01 {
			return clsAllowed, true
		}
		return clsOther, false
	case 0xa3:
		switch sa {
		case 0x05, 0x0a, 0x0b, 0x0e, 0x0f: // REPORT IDENTIFYING INFORMATION, TARGET PORT GROUPS, ALIASES, PRIORITY, TIMESTAMP
			return clsAllowed, true
		case 0x0c, 0x0d: // REPORT SUPPORTED OPERATION CODES / TASK MANAGEMENT FUNCTIONS
			return clsRead, false
		}
		return clsOther, false
	case 0x08, 0x28, 0xa8, 0x88,
		0x2f, 0xaf, 0x8f,
		0x34, 0x90,
		0x1a, 0x5a,
		0x84,       // RECEIVE COPY RESULTS
		0x3c,       // READ BUFFER
		0x1c,       // RECEIVE DIAGNOSTIC RESULTS
		0x37, 0xb7: // READ DEFECT DATA (10), (12)
		return clsRead, false
	}
	return clsOther, false
}

func quickBefore(cdb []byte, bsShift uint, wcd bool) bool {
	if len(cdb) == 0 {
		return false
	}
	var blocks uint64
	write := false
	switch cdb[0] {
	case 0x08, 0x0a:
		if len(cdb) < 6 {
			return false
		}
		blocks = uint64(cdb[4])
		if blocks == 0 {
			blocks = 256
		}
		write = cdb[0] == 0x0a
	case 0x28, 0x2a:
		if len(cdb) < 10 {
			return false
		}
		blocks = uint64(binary.BigEndian.Uint16(cdb[7:9]))
		write = cdb[0] == 0x2a
	case 0xa8, 0xaa:
		if len(cdb) < 12 {
			return false
		}
		blocks = uint64(binary.BigEndian.Uint32(cdb[6:10]))
		write = cdb[0] == 0xaa
	case 0x88, 0x8a:
		if len(cdb) < 16 {
			return false
		}
		blocks = uint64(binary.BigEndian.Uint32(cdb[10:14]))
		write = cdb[0] == 0x8a
	default:
		return false
	}
	if write && (cdb[1]&0x08 != 0 || wcd) { // FUA, or write-through
		return false
	}
	return blocks<<bsShift <= quickMax
}

package lu

import (
	"encoding/binary"
	"math"

	"github.com/costar-project/costar/stmf"
)

// commandSet is one LU's command table: the rows of commandTable that
// apply to it, in table order (REPORT SUPPORTED OPERATION CODES lists
// them so), indexed by opcode. Built once at setup, read-only after.
type commandSet struct {
	rows []command
	head [256]uint8 // 1 + index of the first row with the opcode; 0: none
	next []uint8    // 1 + index of the next row with the same opcode; 0: none
	// sa marks opcodes whose rows carry service actions; implemented,
	// those the LU implements (unknown service actions of those get
	// INVALID FIELD IN CDB rather than INVALID COMMAND OPERATION CODE).
	sa, implemented [256]bool
}

// newCommandSet builds d's command set from table.
func newCommandSet(d *Device, table []command) *commandSet {
	s := &commandSet{}
	for _, c := range table {
		if c.only == nil || c.only(d) {
			s.rows = append(s.rows, c)
		}
	}
	s.next = make([]uint8, len(s.rows))
	var last [256]int
	for i := range s.rows {
		c := &s.rows[i]
		if s.head[c.op] == 0 {
			s.head[c.op] = uint8(i + 1)
		} else {
			s.next[last[c.op]] = uint8(i + 1)
		}
		last[c.op] = i
		if c.sa >= 0 {
			s.sa[c.op] = true
			if c.fn != nil {
				s.implemented[c.op] = true
			}
		}
	}
	return s
}

// find returns the index of the row for op (and sa when the opcode has
// service actions), or -1.
func (s *commandSet) find(op byte, sa int) int {
	for i := int(s.head[op]) - 1; i >= 0; i = int(s.next[i]) - 1 {
		if c := &s.rows[i]; c.sa < 0 || c.sa == sa {
			return i
		}
	}
	return -1
}

// lookup returns the implemented command for op and sa (-1: none), or nil:
// for REPORT SUPPORTED OPERATION CODES and tests.
func (s *commandSet) lookup(op byte, sa int) *command {
	if i := s.find(op, sa); i >= 0 && s.rows[i].fn != nil {
		return &s.rows[i]
	}
	return nil
}

// hasServiceActions reports whether op is dispatched by service action.
func (s *commandSet) hasServiceActions(op byte) bool { return s.implemented[op] }

// Decoded flags.
const (
	decShort = 1 << iota // the CDB is shorter than its command's: no range decoded
	decFUA               // FUA is set (writes with a 10-byte or longer CDB)
)

// cmdUnknown marks a decoded CDB with no row.
const cmdUnknown = math.MaxUint16

// decode finds cdb's row and reads its block range: the one place a CDB's
// LBA and transfer length are parsed.
func (s *commandSet) decode(cdb []byte) stmf.Decoded {
	if len(cdb) == 0 {
		return stmf.Decoded{Cmd: cmdUnknown}
	}
	op, sa := cdb[0], -1
	if s.sa[op] {
		if len(cdb) < 2 {
			return stmf.Decoded{Cmd: cmdUnknown}
		}
		sa = int(cdb[1] & 0x1f)
	}
	i := s.find(op, sa)
	if i < 0 {
		return stmf.Decoded{Cmd: cmdUnknown}
	}
	c := &s.rows[i]
	dec := stmf.Decoded{Cmd: uint16(i + 1)}
	if len(cdb) < c.cdbLen {
		dec.Flags = decShort
		return dec
	}
	switch c.layout {
	case layout6:
		dec.LBA = uint64(cdb[1]&0x1f)<<16 | uint64(cdb[2])<<8 | uint64(cdb[3])
		dec.Blocks = uint32(cdb[4])
		if dec.Blocks == 0 {
			dec.Blocks = 256
		}
		return dec // no FUA bit
	case layout10, layoutWriteSame10:
		dec.LBA = uint64(binary.BigEndian.Uint32(cdb[2:6]))
		dec.Blocks = uint32(binary.BigEndian.Uint16(cdb[7:9]))
	case layout12:
		dec.LBA = uint64(binary.BigEndian.Uint32(cdb[2:6]))
		dec.Blocks = binary.BigEndian.Uint32(cdb[6:10])
	case layout16, layoutWriteSame16:
		dec.LBA = binary.BigEndian.Uint64(cdb[2:10])
		dec.Blocks = binary.BigEndian.Uint32(cdb[10:14])
	case layoutCAW:
		dec.LBA = binary.BigEndian.Uint64(cdb[2:10])
		dec.Blocks = uint32(cdb[13])
	case layoutAtomic16:
		dec.LBA = binary.BigEndian.Uint64(cdb[2:10])
		dec.Blocks = uint32(binary.BigEndian.Uint16(cdb[12:14]))
	default:
		return dec
	}
	if cdb[1]&0x08 != 0 {
		dec.Flags |= decFUA
	}
	return dec
}

// row returns the command a decoded CDB refers to, or nil.
func (s *commandSet) row(dec stmf.Decoded) *command {
	if dec.Cmd == 0 || int(dec.Cmd) > len(s.rows) {
		return nil
	}
	return &s.rows[dec.Cmd-1]
}

// decoded returns t's command (nil: unknown), decoding its CDB unless
// Admit already did (an LU driven without stmf, as in unit tests).
func (d *Device) decoded(t *stmf.Task) *command {
	if t.LUDecoded.Cmd == 0 {
		t.LUDecoded = d.cmds.decode(t.CDB)
	}
	return d.cmds.row(t.LUDecoded)
}

// blockRange is the LBA and transfer length decoded from t's CDB (READ
// and WRITE (6): a length of 0 is already 256).
func blockRange(t *stmf.Task) (lba uint64, n uint32) {
	return t.LUDecoded.LBA, t.LUDecoded.Blocks
}

// lenField is where a block command's TRANSFER LENGTH starts, for sense
// data pointing at it.
func lenField(cdbLen int) int {
	switch cdbLen {
	case 6:
		return 4
	case 10:
		return 7
	case 12:
		return 6
	}
	return 10
}

// span is what the range lock registers for a decoded command: its kind
// and the blocks [lo, hi). A count of zero touches nothing, except WRITE
// SAME where it means "to the end of the LU".
func (c *command) span(dec stmf.Decoded) (kind lockKind, lo, hi uint64) {
	switch {
	case c == nil || c.lock == lockNone:
		return lockNone, 0, 0
	case c.lock == lockWholeLU:
		// Its ranges are in its parameter list, unknown at Admit: order it
		// against every write, in arrival order (UNMAP is rare and a hole
		// punch fast, so the whole-LU entry costs little).
		return lockWrite, 0, math.MaxUint64
	case dec.Flags&decShort != 0:
		return lockNone, 0, 0 // dispatch rejects it
	}
	lo = dec.LBA
	if dec.Blocks == 0 {
		if c.layout == layoutWriteSame10 || c.layout == layoutWriteSame16 {
			return lockWrite, lo, math.MaxUint64
		}
		return lockNone, 0, 0
	}
	hi = lo + uint64(dec.Blocks)
	if hi < lo { // wraps: the command fails LBA OUT OF RANGE; lock to the end
		hi = math.MaxUint64
	}
	return c.lock, lo, hi
}

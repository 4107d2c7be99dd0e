package lu

import "encoding/binary"

// quickMax is the largest transfer Quick accepts: a few page-cache pages.
const quickMax = 64 << 10

// Quick implements stmf.QuickChecker: plain READ and WRITE of at most 64
// KiB without FUA on a write-back LU usually complete in microseconds from
// the page cache, so the transport may run them in its own goroutine.
// Everything that can take long (flushes, synced writes, copies, WRITE
// SAME, UNMAP, large transfers) goes to a worker.
func (d *Device) Quick(cdb []byte) bool {
	if len(cdb) == 0 {
		return false
	}
	var blocks uint64
	write := false
	switch cdb[0] {
	case opRead6, opWrite6:
		if len(cdb) < 6 {
			return false
		}
		blocks = uint64(cdb[4])
		if blocks == 0 {
			blocks = 256
		}
		write = cdb[0] == opWrite6
	case opRead10, opWrite10:
		if len(cdb) < 10 {
			return false
		}
		blocks = uint64(binary.BigEndian.Uint16(cdb[7:9]))
		write = cdb[0] == opWrite10
	case opRead12, opWrite12:
		if len(cdb) < 12 {
			return false
		}
		blocks = uint64(binary.BigEndian.Uint32(cdb[6:10]))
		write = cdb[0] == opWrite12
	case opRead16, opWrite16:
		if len(cdb) < 16 {
			return false
		}
		blocks = uint64(binary.BigEndian.Uint32(cdb[10:14]))
		write = cdb[0] == opWrite16
	default:
		return false
	}
	if write && (cdb[1]&0x08 != 0 || d.wcd.Load()) { // FUA, or write-through
		return false
	}
	return blocks<<d.bsShift <= quickMax
}

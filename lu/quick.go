package lu

import (
	"encoding/binary"

	"github.com/costar-project/costar/scsi"
)

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
	case scsi.OpRead6, scsi.OpWrite6:
		if len(cdb) < 6 {
			return false
		}
		blocks = uint64(cdb[4])
		if blocks == 0 {
			blocks = 256
		}
		write = cdb[0] == scsi.OpWrite6
	case scsi.OpRead10, scsi.OpWrite10:
		if len(cdb) < 10 {
			return false
		}
		blocks = uint64(binary.BigEndian.Uint16(cdb[7:9]))
		write = cdb[0] == scsi.OpWrite10
	case scsi.OpRead12, scsi.OpWrite12:
		if len(cdb) < 12 {
			return false
		}
		blocks = uint64(binary.BigEndian.Uint32(cdb[6:10]))
		write = cdb[0] == scsi.OpWrite12
	case scsi.OpRead16, scsi.OpWrite16:
		if len(cdb) < 16 {
			return false
		}
		blocks = uint64(binary.BigEndian.Uint32(cdb[10:14]))
		write = cdb[0] == scsi.OpWrite16
	default:
		return false
	}
	if write && (cdb[1]&0x08 != 0 || d.wcd.Load()) { // FUA, or write-through
		return false
	}
	return blocks<<d.bsShift <= quickMax
}

package lu

import (
	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// quickMax is the largest transfer Quick accepts: a few page-cache pages.
const quickMax = 64 << 10

// Quick implements stmf.QuickChecker: plain READ and WRITE (rows marked
// inline) of at most 64 KiB without FUA on a write-back LU usually
// complete in microseconds from the page cache, so the transport may run
// them in its own goroutine. Everything that can take long (flushes,
// synced writes, copies, WRITE SAME, UNMAP, large transfers) goes to a
// worker. It reads what Admit decoded.
func (d *Device) Quick(t *stmf.Task) bool {
	c := d.decoded(t)
	dec := t.LUDecoded
	if c == nil || !c.inline || dec.Flags&decShort != 0 {
		return false
	}
	if c.dir == scsi.DirWrite && (dec.Flags&decFUA != 0 || d.wcd.Load()) { // FUA, or write-through
		return false
	}
	if t.InlineNoWait {
		// The caller's goroutine has other work: only a read that waits
		// for no range lock (no entry from Admit) on a store that can
		// tell a page-cache miss (read falls back then, see Execute).
		if nw, ok := d.store.(backing.NoWaitReader); !ok || !nw.NoWait() || c.dir != scsi.DirRead || t.LUPrivate != nil {
			return false
		}
	}
	return uint64(dec.Blocks)<<d.bsShift <= quickMax
}

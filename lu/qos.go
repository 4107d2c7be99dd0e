package lu

import "github.com/costar-project/costar/stmf"

// throttle is a command's cost against stmf's per-LU QoS limits: reads,
// writes and COMPARE AND WRITE count one I/O and the bytes of their
// transfer length; WRITE SAME counts the one block it carries (its range
// may be the whole LU); UNMAP and EXTENDED COPY count one I/O. Commands
// that move no medium data (INQUIRY, TEST UNIT READY, SYNCHRONIZE CACHE,
// PERSISTENT RESERVE IN, ...) are never held.
func (d *Device) throttle(c *command, dec stmf.Decoded) stmf.Throttle {
	switch c.kind {
	case stmf.KindRead, stmf.KindWrite, stmf.KindATS:
		if c.layout == layoutWriteSame10 || c.layout == layoutWriteSame16 {
			return stmf.Throttle{IO: true, Bytes: uint64(d.bs)}
		}
		return stmf.Throttle{IO: true, Bytes: uint64(dec.Blocks) << d.bsShift}
	case stmf.KindUnmap, stmf.KindXCopy:
		return stmf.Throttle{IO: true}
	}
	return stmf.Throttle{}
}

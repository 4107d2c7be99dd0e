package lu

import (
	"encoding/binary"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// testUnitReady: the LU is always ready while open.
func (d *Device) testUnitReady(_ *stmf.Task, _ []byte) *stmf.Result { return good() }

// requestSense: the LU keeps no deferred sense (unit attentions are
// stmf's), so the answer is NO SENSE, in fixed or, with DESC set,
// descriptor format.
func (d *Device) requestSense(_ *stmf.Task, cdb []byte) *stmf.Result {
	var b []byte
	if cdb[1]&0x01 != 0 {
		b = []byte{0x72, byte(scsi.KeyNoSense), 0, 0, 0, 0, 0, 0}
	} else {
		b = (&scsi.Sense{Key: scsi.KeyNoSense}).Bytes()
	}
	return dataIn(truncate(b, uint32(cdb[4])))
}

// startStopUnit: the LU is not removable and is never spun down. STOP
// writes back cached data (unless NO_FLUSH); LOEJ cannot be honoured on a
// non-removable medium; power conditions are accepted and ignored.
func (d *Device) startStopUnit(_ *stmf.Task, cdb []byte) *stmf.Result {
	pc := cdb[4] >> 4
	switch pc {
	case 0x0, 0x1, 0x2, 0x3, 0x5, 0x7, 0xa, 0xb:
	default:
		return fail(invalidField(4, 7))
	}
	if pc != 0 {
		return good() // START and LOEJ are ignored with a power condition
	}
	if cdb[4]&0x02 != 0 { // LOEJ
		return fail(invalidField(4, 1))
	}
	if cdb[4]&0x01 == 0 && cdb[4]&0x04 == 0 { // STOP without NO_FLUSH
		if err := d.flush.flush(); err != nil {
			return d.ioError(err, true, 0)
		}
	}
	return good()
}

// readCapacity10: READ CAPACITY (10).
func (d *Device) readCapacity10(_ *stmf.Task, cdb []byte) *stmf.Result {
	if cdb[8]&0x01 == 0 && binary.BigEndian.Uint32(cdb[2:6]) != 0 { // LBA without PMI
		return fail(invalidField(2, -1))
	}
	last := d.nblocks.Load() - 1
	if last > 0xfffffffe {
		last = 0xffffffff // too big: use READ CAPACITY (16)
	}
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b[0:4], uint32(last))
	binary.BigEndian.PutUint32(b[4:8], d.bs)
	return dataIn(b)
}

// lbppbe is LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT.
func (d *Device) lbppbe() byte {
	if u := d.caps.AllocUnit; u != 0 {
		// The store's allocation unit (a zvol's volblocksize), at most 4 KiB:
		// ESXi knows 512n, 512e and 4Kn, not 16 KiB physical blocks.
		var e byte
		for bs := uint64(d.bs); bs < min(max(u, uint64(d.bs)), physBlockSize); bs <<= 1 {
			e++
		}
		return e
	}
	// Thin LUs report physical = logical: GET LBA STATUS then describes
	// extents at logical-block granularity, which libiscsi's
	// GetLBAStatus.UnmapSingle requires (it assumes one logical block per
	// physical block when it probes LBA i+1). The unmap granularity in VPD
	// B0 still tells initiators to discard in 4 KiB units.
	if d.thin.enabled {
		return 0
	}
	var e byte
	for bs := d.bs; bs < physBlockSize; bs <<= 1 {
		e++
	}
	return e
}

// readCapacity16: SERVICE ACTION IN (16) / READ CAPACITY (16). LBPME and
// LBPRZ for thin LUs only; no protection information.
func (d *Device) readCapacity16(_ *stmf.Task, cdb []byte) *stmf.Result {
	b := make([]byte, 32)
	binary.BigEndian.PutUint64(b[0:8], d.nblocks.Load()-1)
	binary.BigEndian.PutUint32(b[8:12], d.bs)
	b[13] = d.lbppbe() & 0x0f
	b[14] = d.lbpBits() // LBPME, LBPRZ for thin LUs (thin.go)
	return dataIn(truncate(b, binary.BigEndian.Uint32(cdb[10:14])))
}

// reportLUNs: stmf answers REPORT LUNS before an LU sees it; the row
// exists so REPORT SUPPORTED OPERATION CODES lists the command.
func (d *Device) reportLUNs(t *stmf.Task, _ []byte) *stmf.Result { return stmf.ReportLUNs(t) }

// reportTargetPortGroups: stmf answers REPORT TARGET PORT GROUPS (it owns
// the ports and their ALUA states) before an LU sees it; the row exists
// so REPORT SUPPORTED OPERATION CODES lists the command.
func (d *Device) reportTargetPortGroups(t *stmf.Task, _ []byte) *stmf.Result {
	return stmf.ReportTargetPortGroups(t)
}

// Support values of the one-command REPORT SUPPORTED OPERATION CODES format.
const (
	supportNotSupported = 0x1
	supportStandard     = 0x3
)

// reportSupportedOpcodes: MAINTENANCE IN / REPORT SUPPORTED OPERATION CODES.
func (d *Device) reportSupportedOpcodes(_ *stmf.Task, cdb []byte) *stmf.Result {
	rctd := cdb[2]&0x80 != 0
	opts := cdb[2] & 0x07
	reqOp := cdb[3]
	reqSA := int(binary.BigEndian.Uint16(cdb[4:6]))
	alloc := binary.BigEndian.Uint32(cdb[6:10])

	if opts == 0 { // all commands
		per := 8
		if rctd {
			per += 12
		}
		b := make([]byte, 4, 4+len(d.cmds.rows)*per)
		for i := range d.cmds.rows {
			c := &d.cmds.rows[i]
			if c.fn == nil {
				continue // known for its ALUA answer only
			}
			var desc [8]byte
			desc[0] = c.op
			if c.sa >= 0 {
				binary.BigEndian.PutUint16(desc[2:4], uint16(c.sa))
				desc[5] |= 0x01 // SERVACTV
			}
			if rctd {
				desc[5] |= 0x02 // CTDP
			}
			binary.BigEndian.PutUint16(desc[6:8], uint16(c.cdbLen))
			b = append(b, desc[:]...)
			if rctd {
				b = appendTimeouts(b, c)
			}
		}
		binary.BigEndian.PutUint32(b[0:4], uint32(len(b)-4))
		return dataIn(truncate(b, alloc))
	}

	var c *command
	switch opts {
	case 1: // operation code only; invalid for an opcode with service actions
		if d.cmds.hasServiceActions(reqOp) {
			return fail(invalidField(2, 2))
		}
		c = d.cmds.lookup(reqOp, -1)
	case 2: // operation code and service action
		if !d.cmds.hasServiceActions(reqOp) {
			if d.cmds.lookup(reqOp, -1) != nil {
				return fail(invalidField(2, 2))
			}
			break // not supported at all
		}
		c = d.cmds.lookup(reqOp, reqSA)
	case 3: // either: the service action must match, or be 0 without one
		if d.cmds.hasServiceActions(reqOp) {
			c = d.cmds.lookup(reqOp, reqSA)
		} else if reqSA == 0 {
			c = d.cmds.lookup(reqOp, -1)
		}
	default:
		return fail(invalidField(2, 2))
	}
	if c == nil {
		return dataIn(truncate([]byte{0, supportNotSupported, 0, 0}, alloc))
	}
	b := make([]byte, 4, 4+c.cdbLen+12)
	b[1] = supportStandard
	if rctd {
		b[1] |= 0x80 // CTDP
	}
	binary.BigEndian.PutUint16(b[2:4], uint16(c.cdbLen))
	b = append(b, c.usage...)
	if rctd {
		b = appendTimeouts(b, c)
	}
	return dataIn(truncate(b, alloc))
}

// appendTimeouts appends a command timeouts descriptor (length 0Ah).
func appendTimeouts(b []byte, c *command) []byte {
	var td [12]byte
	binary.BigEndian.PutUint16(td[0:2], 0x0a)
	binary.BigEndian.PutUint32(td[4:8], 0) // nominal processing timeout: not specified
	binary.BigEndian.PutUint32(td[8:12], c.timeout)
	return append(b, td[:]...)
}

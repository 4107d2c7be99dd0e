package stmf

import (
	"encoding/binary"

	"github.com/costar-project/costar/scsi"
)

// ReportLUNs is the one REPORT LUNS: the LUN inventory of the task's
// I_T nexus. The framework answers the command itself (it owns the LUN
// maps) before any LU sees it; an LU provider that lists the command in
// REPORT SUPPORTED OPERATION CODES delegates to it. A task an LU runs
// without a session sees only the LUN it was addressed to.
func ReportLUNs(t *Task) *Result {
	cdb := t.CDB
	if len(cdb) < 12 {
		return checkCondition(scsi.IllegalRequest(scsi.ASCInvalidFieldInCDB, 0))
	}
	alloc := binary.BigEndian.Uint32(cdb[6:10])
	if alloc < 16 {
		return checkCondition(scsi.IllegalRequest(scsi.ASCInvalidFieldInCDB, 6))
	}
	var luns []scsi.LUN
	switch cdb[2] {
	case 0x00, 0x02:
		if t.Session != nil {
			luns = t.Session.LUNs()
		} else {
			luns = []scsi.LUN{t.LUN}
		}
	case 0x01: // well-known LUs only: we have none
	default:
		return checkCondition(scsi.IllegalRequest(scsi.ASCInvalidFieldInCDB, 2))
	}
	buf := make([]byte, 8+8*len(luns))
	binary.BigEndian.PutUint32(buf[0:4], uint32(8*len(luns)))
	for i, n := range luns {
		e := scsi.EncodeLUN(n)
		copy(buf[8+8*i:], e[:])
	}
	if uint32(len(buf)) > alloc {
		buf = buf[:alloc]
	}
	return &Result{Status: scsi.StatusGood, Data: buf, TransferLen: uint32(len(buf))}
}

func (s *Session) reportLUNs(t *Task) { t.Complete(ReportLUNs(t)) }

func checkCondition(s *scsi.Sense) *Result {
	return &Result{Status: scsi.StatusCheckCondition, Sense: s.Bytes()}
}

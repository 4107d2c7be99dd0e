package lu

import (
	"encoding/binary"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// Field values of the smaller SPC/SBC commands.
const (
	tpgsImplicit           = 0x10 // standard INQUIRY byte 5: TPGS = 01b
	defectListFormatMask   = 0x07
	defectListReqMask      = 0x18 // REQ_PLIST, REQ_GLIST
	defectListHeader10Len  = 4
	defectListHeader12Len  = 8
	reportTMFsLen          = 4
	reportTMFsExtendedLen  = 16
	reportTMFsExtendedAddl = reportTMFsExtendedLen - 4
)

// preventAllow: PREVENT ALLOW MEDIUM REMOVAL. The medium is not removable
// (RMB=0), so there is nothing to lock: PREVENT 00b and 01b are accepted
// and have no effect; 10b and 11b (medium changer, obsolete) are invalid.
func (d *Device) preventAllow(_ *stmf.Task, cdb []byte) *stmf.Result {
	if cdb[4]&0x02 != 0 {
		return fail(invalidField(4, 1))
	}
	return good()
}

// readDefectData: READ DEFECT DATA (10) and (12). The LU has no defects:
// the header reports the requested lists (PLISTV/GLISTV echo
// REQ_PLIST/REQ_GLIST) in the requested format, each of length zero.
func (d *Device) readDefectData(_ *stmf.Task, cdb []byte) *stmf.Result {
	var b []byte
	var alloc uint32
	if cdb[0] == scsi.OpReadDefectData10 {
		alloc = uint32(binary.BigEndian.Uint16(cdb[7:9]))
		b = make([]byte, defectListHeader10Len)
		b[1] = cdb[2] & (defectListReqMask | defectListFormatMask)
	} else {
		alloc = binary.BigEndian.Uint32(cdb[6:10])
		b = make([]byte, defectListHeader12Len)
		b[1] = cdb[1] & (defectListReqMask | defectListFormatMask)
	}
	return dataIn(truncate(b, alloc))
}

// reportSupportedTMFs: MAINTENANCE IN / REPORT SUPPORTED TASK MANAGEMENT
// FUNCTIONS. stmf implements ABORT TASK, ABORT TASK SET, CLEAR ACA (which
// answers FUNCTION REJECTED as NACA is unsupported, but is decoded),
// CLEAR TASK SET, LOGICAL UNIT RESET, QUERY TASK, TARGET RESET, QUERY
// ASYNCHRONOUS EVENT, QUERY TASK SET and I_T NEXUS RESET. REPTD asks for
// the extended format, whose timeouts are not reported (TMFTMOV=0).
func (d *Device) reportSupportedTMFs(_ *stmf.Task, cdb []byte) *stmf.Result {
	alloc := binary.BigEndian.Uint32(cdb[6:10])
	n := reportTMFsLen
	if cdb[2]&0x80 != 0 { // REPTD
		n = reportTMFsExtendedLen
	}
	b := make([]byte, n)
	b[0] = 0x80 | 0x40 | 0x20 | 0x10 | 0x08 | 0x04 | 0x02 // ATS ATSS CACAS CTSS LURS QTS TRS
	b[1] = 0x04 | 0x02 | 0x01                             // QAES QTSS ITNRS
	if n == reportTMFsExtendedLen {
		b[3] = reportTMFsExtendedAddl
	}
	return dataIn(truncate(b, alloc))
}

// modeParametersChanged raises MODE PARAMETERS CHANGED on every other
// nexus that sees the LU, after a MODE SELECT from t changed a value.
func (d *Device) modeParametersChanged(t *stmf.Task) {
	h := d.hostOf()
	if t == nil || t.Session == nil || h == nil {
		return
	}
	self := &t.Session.Nexus
	h.RaiseUA(scsi.ASCModeParametersChanged, func(n *stmf.Nexus) bool { return n != self })
}

package fc

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/costar-project/costar/scsi"
)

// FCP-4 information units: FCP_CMND in, FCP_XFER_RDY and FCP_RSP out.

// Task management flags of FCP_CMND byte 10 (FCP-4 table 21).
const (
	TMFAbortTaskSet = 0x02
	TMFClearTaskSet = 0x04
	TMFLUNReset     = 0x10
	TMFTargetReset  = 0x20
	TMFClearACA     = 0x40
)

// FCP_RSP_INFO response codes (FCP-4 table 29).
const (
	RspComplete      = 0x00
	RspBadDataLen    = 0x01 // FCP_DATA_LEN different than FCP_BURST_LEN
	RspInvalidCmnd   = 0x02 // FCP_CMND fields invalid
	RspBadDataRO     = 0x03 // FCP_DATA parameter mismatch with FCP_DATA_RO
	RspTMFRejected   = 0x04 // task management function rejected (not supported)
	RspTMFFailed     = 0x05
	RspTMFIncorrectL = 0x09 // task management function incorrect logical unit number
)

// FCP_RSP flags (byte 10).
const (
	rspLenValid = 0x01
	snsLenValid = 0x02
	residOver   = 0x04
	residUnder  = 0x08
)

// fcpCmndMin is FCP_CMND without additional CDB: LUN 8, CRN, attr, TMF,
// flags, CDB 16, FCP_DL 4.
const fcpCmndMin = 32

// Cmnd is a decoded FCP_CMND IU.
type Cmnd struct {
	LUN    [8]byte
	CRN    byte
	Attr   scsi.TaskAttr
	TMF    byte
	Read   bool
	Write  bool
	CDB    []byte // aliases the frame
	DataLn uint32 // FCP_DL
}

var errCmnd = errors.New("fc: invalid FCP_CMND")

// ParseCmnd decodes an FCP_CMND payload. CDB aliases p.
func ParseCmnd(p []byte) (Cmnd, error) {
	var c Cmnd
	if len(p) < fcpCmndMin {
		return c, fmt.Errorf("%w: %d bytes", errCmnd, len(p))
	}
	copy(c.LUN[:], p[:8])
	c.CRN = p[8]
	switch p[9] & 0x07 {
	case 0:
		c.Attr = scsi.TaskSimple
	case 1:
		c.Attr = scsi.TaskHeadOfQueue
	case 2:
		c.Attr = scsi.TaskOrdered
	case 4:
		c.Attr = scsi.TaskACA
	default:
		return c, fmt.Errorf("%w: task attribute %d", errCmnd, p[9]&0x07)
	}
	c.TMF = p[10]
	addl := int(p[11]>>2) * 4
	c.Read, c.Write = p[11]&0x02 != 0, p[11]&0x01 != 0
	end := 12 + 16 + addl
	if len(p) < end+4 {
		return c, fmt.Errorf("%w: %d bytes with %d bytes of additional CDB", errCmnd, len(p), addl)
	}
	c.CDB = p[12:end]
	c.DataLn = binary.BigEndian.Uint32(p[end:])
	if c.Read && c.Write {
		return c, fmt.Errorf("%w: bidirectional commands are not supported", errCmnd)
	}
	if c.TMF != 0 && c.TMF&(c.TMF-1) != 0 {
		return c, fmt.Errorf("%w: several task management flags 0x%02x", errCmnd, c.TMF)
	}
	return c, nil
}

// AppendCmnd encodes an FCP_CMND payload (used by initiators and tests).
func AppendCmnd(b []byte, c *Cmnd) []byte {
	b = append(b, c.LUN[:]...)
	var attr byte
	switch c.Attr {
	case scsi.TaskHeadOfQueue:
		attr = 1
	case scsi.TaskOrdered:
		attr = 2
	case scsi.TaskACA:
		attr = 4
	}
	cdb := c.CDB
	addl := 0
	if len(cdb) > 16 {
		addl = (len(cdb) - 16 + 3) / 4
	}
	var flags byte = byte(addl) << 2
	if c.Read {
		flags |= 0x02
	}
	if c.Write {
		flags |= 0x01
	}
	b = append(b, c.CRN, attr, c.TMF, flags)
	field := make([]byte, 16+4*addl)
	copy(field, cdb)
	b = append(b, field...)
	return binary.BigEndian.AppendUint32(b, c.DataLn)
}

// appendXferRdy encodes FCP_XFER_RDY: DATA_RO and BURST_LEN.
func appendXferRdy(b []byte, ro, burst uint32) []byte {
	b = binary.BigEndian.AppendUint32(b, ro)
	b = binary.BigEndian.AppendUint32(b, burst)
	return append(b, 0, 0, 0, 0)
}

// ParseXferRdy decodes FCP_XFER_RDY (for initiators and tests).
func ParseXferRdy(p []byte) (ro, burst uint32, err error) {
	if len(p) < 8 {
		return 0, 0, fmt.Errorf("fc: FCP_XFER_RDY of %d bytes", len(p))
	}
	return binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:]), nil
}

// Rsp is an FCP_RSP IU.
type Rsp struct {
	Status     scsi.Status
	Over       bool
	Under      bool
	Resid      uint32
	Sense      []byte
	RspValid   bool
	RspCode    byte
	RetryDelay uint16
}

// AppendRsp encodes an FCP_RSP payload (FCP-4 9.5).
func AppendRsp(b []byte, r *Rsp) []byte {
	var flags byte
	if r.RspValid {
		flags |= rspLenValid
	}
	if len(r.Sense) > 0 {
		flags |= snsLenValid
	}
	if r.Over {
		flags |= residOver
	}
	if r.Under {
		flags |= residUnder
	}
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, r.RetryDelay)
	b = append(b, flags, byte(r.Status))
	b = binary.BigEndian.AppendUint32(b, r.Resid)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Sense)))
	if r.RspValid {
		b = binary.BigEndian.AppendUint32(b, 8)
		b = append(b, 0, 0, 0, r.RspCode, 0, 0, 0, 0)
	} else {
		b = binary.BigEndian.AppendUint32(b, 0)
	}
	return append(b, r.Sense...)
}

// ParseRsp decodes an FCP_RSP payload (for initiators and tests).
func ParseRsp(p []byte) (Rsp, error) {
	var r Rsp
	if len(p) < 24 {
		return r, fmt.Errorf("fc: FCP_RSP of %d bytes", len(p))
	}
	flags := p[10]
	r.RetryDelay = binary.BigEndian.Uint16(p[8:])
	r.Status = scsi.Status(p[11])
	r.Over, r.Under = flags&residOver != 0, flags&residUnder != 0
	r.Resid = binary.BigEndian.Uint32(p[12:])
	snsLen, rspLen := uint64(0), uint64(0)
	if flags&snsLenValid != 0 {
		snsLen = uint64(binary.BigEndian.Uint32(p[16:]))
	}
	if flags&rspLenValid != 0 {
		rspLen = uint64(binary.BigEndian.Uint32(p[20:]))
	}
	if 24+rspLen+snsLen > uint64(len(p)) {
		return r, fmt.Errorf("fc: FCP_RSP lengths %d+%d exceed %d bytes", rspLen, snsLen, len(p))
	}
	if rspLen >= 4 {
		r.RspValid, r.RspCode = true, p[24+3]
	}
	r.Sense = p[24+rspLen : 24+rspLen+snsLen]
	return r, nil
}

package fc

import (
	"encoding/binary"
	"fmt"
)

// Extended and basic link service payloads (FC-LS-3) a target answers.

// ELS command codes.
const (
	ELSLSRJT  = 0x01
	ELSLSACC  = 0x02
	ELSPLOGI  = 0x03
	ELSFLOGI  = 0x04
	ELSLOGO   = 0x05
	ELSPRLI   = 0x20
	ELSPRLO   = 0x21
	ELSADISC  = 0x52
	ELSRSCN   = 0x61
	plogiLen  = 116
	prliPage  = 16
	adiscLen  = 28
	logoLen   = 16
	rscnPage  = 4
	minPLOGI  = 36 // through the node name
	fcpType   = 0x08
	minRxSize = 256 // smallest receive data field size FC-FS allows
)

// LS_RJT reason codes and explanations.
const (
	rjtInvalidCmd  = 0x01
	rjtLogicalErr  = 0x03
	rjtUnable      = 0x09
	rjtNotSupp     = 0x0b
	rjtExpNone     = 0x00
	rjtExpLogin    = 0x1e // N_Port login required
	rjtExpInvalLen = 0x29 // invalid payload length
)

// PRLI page flags and response codes.
const (
	prliEstablish   = 0x20 // establish image pair (request) / image pair established (response)
	prliExecuted    = 0x01
	prliPrecluded   = 0x05 // target configuration precludes establishing the image pair
	prliInvalParams = 0x08
)

// PLOGIParams are what a PLOGI tells about a remote N_Port.
type PLOGIParams struct {
	PortName WWN
	NodeName WWN
	RxSize   int // class 3 receive data field size (common one when class 3 is absent)
}

// ParsePLOGI decodes a PLOGI (or PLOGI LS_ACC) payload.
func ParsePLOGI(p []byte) (PLOGIParams, error) {
	var v PLOGIParams
	if len(p) < minPLOGI {
		return v, fmt.Errorf("fc: PLOGI of %d bytes", len(p))
	}
	v.RxSize = int(binary.BigEndian.Uint16(p[10:]) & 0x0fff)
	copy(v.PortName[:], p[20:28])
	copy(v.NodeName[:], p[28:36])
	// Class 3 service parameters (bytes 68..83): valid bit and size.
	if len(p) >= 76 && p[68]&0x80 != 0 {
		if n := int(binary.BigEndian.Uint16(p[74:]) & 0x0fff); n > 0 {
			v.RxSize = n
		}
	}
	if v.RxSize < minRxSize {
		return v, fmt.Errorf("fc: PLOGI receive data field size %d below %d", v.RxSize, minRxSize)
	}
	return v, nil
}

// appendPLOGI encodes our PLOGI service parameters after cmd (LS_ACC or
// PLOGI): class 3 only, continuously increasing relative offset.
func appendPLOGI(b []byte, cmd byte, port, node WWN, rx int) []byte {
	p := make([]byte, plogiLen)
	p[0] = cmd
	p[4], p[5] = 0x20, 0x20                        // FC-PH versions (FC-FS-3)
	binary.BigEndian.PutUint16(p[6:], 10)          // buffer-to-buffer credit
	binary.BigEndian.PutUint16(p[8:], 0x8000)      // continuously increasing relative offset
	binary.BigEndian.PutUint16(p[10:], uint16(rx)) // receive data field size
	binary.BigEndian.PutUint16(p[12:], 0x00ff)     // total concurrent sequences
	binary.BigEndian.PutUint16(p[14:], 0x001f)     // relative offset by information category
	binary.BigEndian.PutUint32(p[16:], 2000)       // E_D_TOV, ms
	copy(p[20:], port[:])
	copy(p[28:], node[:])
	p[68] = 0x80                                   // class 3 valid
	p[69] = 0x08                                   // sequential delivery
	binary.BigEndian.PutUint16(p[74:], uint16(rx)) // class 3 receive data field size
	binary.BigEndian.PutUint16(p[78:], 0x00ff)     // concurrent sequences
	binary.BigEndian.PutUint16(p[80:], 0x0001)     // open sequences per exchange
	return append(b, p...)
}

// AppendPLOGI encodes a PLOGI request (for initiators and tests).
func AppendPLOGI(b []byte, port, node WWN, rx int) []byte {
	return appendPLOGI(b, ELSPLOGI, port, node, rx)
}

// AppendLoginAcc encodes the LS_ACC of a PLOGI or a point-to-point FLOGI
// (the same service parameter layout), for adapters that answer the
// medium's own login (the FIP-encapsulated VN2VN FLOGI).
func AppendLoginAcc(b []byte, port, node WWN, rx int) []byte {
	return appendPLOGI(b, ELSLSACC, port, node, rx)
}

// PRLIPage is one service parameter page of PRLI, PRLO or their LS_ACC.
type PRLIPage struct {
	Type   byte
	Flags  byte // byte 2: establish image pair, response code in bits 3..0
	Params uint32
}

// ParsePRLI decodes the pages of a PRLI, PRLO or LS_ACC payload.
func ParsePRLI(p []byte) ([]PRLIPage, error) {
	if len(p) < 4 {
		return nil, fmt.Errorf("fc: PRLI of %d bytes", len(p))
	}
	plen := int(p[1])
	total := int(binary.BigEndian.Uint16(p[2:]))
	if plen != prliPage || total < 4+prliPage || total > len(p) || (total-4)%prliPage != 0 {
		return nil, fmt.Errorf("fc: PRLI page length %d, payload length %d of %d bytes", plen, total, len(p))
	}
	var pages []PRLIPage
	for off := 4; off+prliPage <= total; off += prliPage {
		q := p[off : off+prliPage]
		pages = append(pages, PRLIPage{Type: q[0], Flags: q[2], Params: binary.BigEndian.Uint32(q[12:])})
	}
	return pages, nil
}

// AppendPRLI encodes a PRLI/PRLO request or reply with the given pages.
func AppendPRLI(b []byte, cmd byte, pages []PRLIPage) []byte {
	b = append(b, cmd, prliPage)
	b = binary.BigEndian.AppendUint16(b, uint16(4+prliPage*len(pages)))
	for _, pg := range pages {
		q := make([]byte, prliPage)
		q[0], q[2] = pg.Type, pg.Flags
		binary.BigEndian.PutUint32(q[12:], pg.Params)
		b = append(b, q...)
	}
	return b
}

// ADISC is the payload of ADISC and its LS_ACC.
type ADISC struct {
	HardAddr uint32
	PortName WWN
	NodeName WWN
	PortID   uint32
}

// ParseADISC decodes an ADISC payload.
func ParseADISC(p []byte) (ADISC, error) {
	var a ADISC
	if len(p) < adiscLen {
		return a, fmt.Errorf("fc: ADISC of %d bytes", len(p))
	}
	a.HardAddr = be24(p[5:])
	copy(a.PortName[:], p[8:16])
	copy(a.NodeName[:], p[16:24])
	a.PortID = be24(p[25:])
	return a, nil
}

// AppendADISC encodes an ADISC request or reply.
func AppendADISC(b []byte, cmd byte, a ADISC) []byte {
	b = append(b, cmd, 0, 0, 0, 0)
	b = put24(b, a.HardAddr)
	b = append(b, a.PortName[:]...)
	b = append(b, a.NodeName[:]...)
	b = append(b, 0)
	return put24(b, a.PortID)
}

// ParseLOGO decodes a LOGO payload: the N_Port ID and name logging out.
func ParseLOGO(p []byte) (id uint32, name WWN, err error) {
	if len(p) < logoLen {
		return 0, name, fmt.Errorf("fc: LOGO of %d bytes", len(p))
	}
	copy(name[:], p[8:16])
	return be24(p[5:]), name, nil
}

// AppendLOGO encodes a LOGO request.
func AppendLOGO(b []byte, id uint32, name WWN) []byte {
	b = append(b, ELSLOGO, 0, 0, 0, 0)
	b = put24(b, id)
	return append(b, name[:]...)
}

// RSCNPage is one affected address of an RSCN: Format 0 port, 1 area,
// 2 domain, 3 fabric.
type RSCNPage struct {
	Format byte
	ID     uint32
}

// Covers reports whether the page's address covers N_Port ID id.
func (p RSCNPage) Covers(id uint32) bool {
	switch p.Format {
	case 0:
		return p.ID == id
	case 1:
		return p.ID>>8 == id>>8
	case 2:
		return p.ID>>16 == id>>16
	default:
		return true
	}
}

// ParseRSCN decodes an RSCN payload's pages.
func ParseRSCN(p []byte) ([]RSCNPage, error) {
	if len(p) < 4 {
		return nil, fmt.Errorf("fc: RSCN of %d bytes", len(p))
	}
	total := int(binary.BigEndian.Uint16(p[2:]))
	if p[1] != rscnPage || total < 4+rscnPage || total > len(p) || total%rscnPage != 0 {
		return nil, fmt.Errorf("fc: RSCN page length %d, payload length %d of %d bytes", p[1], total, len(p))
	}
	var pages []RSCNPage
	for off := 4; off < total; off += rscnPage {
		pages = append(pages, RSCNPage{Format: p[off] & 0x03, ID: be24(p[off+1:])})
	}
	return pages, nil
}

// AppendRSCN encodes an RSCN request.
func AppendRSCN(b []byte, pages []RSCNPage) []byte {
	b = append(b, ELSRSCN, rscnPage)
	b = binary.BigEndian.AppendUint16(b, uint16(4+rscnPage*len(pages)))
	for _, pg := range pages {
		b = append(b, pg.Format&0x03)
		b = put24(b, pg.ID)
	}
	return b
}

func appendLSRJT(b []byte, reason, expl byte) []byte {
	return append(b, ELSLSRJT, 0, 0, 0, 0, reason, expl, 0)
}

// BA_ACC and BA_RJT payloads (FC-FS-3 15.3).
func appendBAACC(b []byte, oxid, rxid uint16) []byte {
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, oxid)
	b = binary.BigEndian.AppendUint16(b, rxid)
	return append(b, 0, 0, 0xff, 0xff)
}

const (
	baRjtLogical = 0x03 // reason: logical error
	baRjtBadXID  = 0x03 // explanation: invalid OX_ID-RX_ID combination
)

func appendBARJT(b []byte) []byte { return append(b, 0, baRjtLogical, baRjtBadXID, 0) }

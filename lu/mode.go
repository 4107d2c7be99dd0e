package lu

import (
	"encoding/binary"
	"math/bits"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// Mode pages.
const (
	pageRWErrorRecovery = 0x01
	pageCaching         = 0x08
	pageControl         = 0x0a
	pageAll             = 0x3f
	subpageAll          = 0xff
)

// modePages lists the pages in the order "all pages" returns them.
var modePages = [...]byte{pageRWErrorRecovery, pageCaching, pageControl}

// Page control values of MODE SENSE.
const (
	pcCurrent    = 0
	pcChangeable = 1
	pcDefault    = 2
	pcSaved      = 3
)

// modePage returns a page (header included) for a page control value, or
// nil for a page the LU does not have.
func (d *Device) modePage(code, pc byte) []byte {
	switch code {
	case pageRWErrorRecovery:
		b := make([]byte, 12)
		b[0], b[1] = pageRWErrorRecovery, 0x0a
		return b
	case pageCaching:
		b := make([]byte, 20)
		b[0], b[1] = pageCaching, 0x12
		switch pc {
		case pcChangeable:
			b[2] = 0x04 // WCE
		case pcDefault:
			if !d.savedWCD.Load() {
				b[2] |= 0x04
			}
		default:
			if !d.wcd.Load() {
				b[2] |= 0x04
			}
		}
		return b
	case pageControl:
		b := make([]byte, 12)
		b[0], b[1] = pageControl, 0x0a
		switch pc {
		case pcChangeable:
			b[4] = 0x08 // SWP
		default:
			b[3] = 0x10             // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering
			b[8], b[9] = 0xff, 0xff // BUSY TIMEOUT PERIOD: unlimited
			if pc == pcCurrent && d.swp.Load() {
				b[4] |= 0x08
			}
		}
		return b
	}
	return nil
}

// modeSense: MODE SENSE (6) and (10).
func (d *Device) modeSense(_ *stmf.Task, cdb []byte) *stmf.Result {
	ten := cdb[0] == scsi.OpModeSense10
	dbd := cdb[1]&0x08 != 0
	llbaa := ten && cdb[1]&0x10 != 0
	pc := cdb[2] >> 6
	page := cdb[2] & 0x3f
	sub := cdb[3]
	var alloc uint32
	if ten {
		alloc = uint32(binary.BigEndian.Uint16(cdb[7:9]))
	} else {
		alloc = uint32(cdb[4])
	}
	if pc == pcSaved {
		s := scsi.NewSense(scsi.KeyIllegalRequest, scsi.ASCSavingParametersNotSupported)
		s.FieldPointer = &scsi.FieldPointer{InCDB: true, Byte: 2, Bit: 7}
		return fail(s)
	}
	if sub != 0 && sub != subpageAll {
		return fail(invalidField(3, -1))
	}
	var pages []byte
	if page == pageAll {
		for _, p := range modePages {
			pages = append(pages, d.modePage(p, pc)...)
		}
	} else {
		p := d.modePage(page, pc)
		if p == nil {
			return fail(invalidField(2, 5))
		}
		pages = p
	}

	dsp := byte(0x10) // DPOFUA: DPO and FUA are supported
	if d.writeProtected() {
		dsp |= 0x80 // WP
	}
	var bd []byte
	if !dbd {
		nb := d.nblocks.Load()
		if llbaa {
			bd = make([]byte, 16)
			if pc != pcChangeable {
				binary.BigEndian.PutUint64(bd[0:8], nb)
				binary.BigEndian.PutUint32(bd[12:16], d.bs)
			}
		} else {
			bd = make([]byte, 8)
			if pc != pcChangeable {
				binary.BigEndian.PutUint32(bd[0:4], uint32(min(nb, 0xffffffff)))
				bd[5], bd[6], bd[7] = byte(d.bs>>16), byte(d.bs>>8), byte(d.bs)
			}
		}
	}
	var b []byte
	if ten {
		b = make([]byte, 8, 8+len(bd)+len(pages))
		b[3] = dsp
		if len(bd) == 16 {
			b[4] = 0x01 // LONGLBA
		}
		binary.BigEndian.PutUint16(b[6:8], uint16(len(bd)))
	} else {
		b = make([]byte, 4, 4+len(bd)+len(pages))
		b[2] = dsp
		b[3] = byte(len(bd))
	}
	b = append(append(b, bd...), pages...)
	if ten {
		binary.BigEndian.PutUint16(b[0:2], uint16(len(b)-2))
	} else {
		b[0] = byte(len(b) - 1)
	}
	return dataIn(truncate(b, alloc))
}

func paramListLengthError() *stmf.Result {
	return fail(scsi.NewSense(scsi.KeyIllegalRequest, scsi.ASCParameterListLengthError))
}

// modeSelect: MODE SELECT (6) and (10). Only bits of the changeable mask
// may differ from the current values: WCE of the caching page (the LU's
// write cache) and SWP of the control page (software write protect).
// Nothing is saved (SP must be 0). The whole list is validated before any
// change is applied.
func (d *Device) modeSelect(t *stmf.Task, cdb []byte) *stmf.Result {
	ten := cdb[0] == scsi.OpModeSelect10
	if cdb[1]&0x01 != 0 { // SP: no saved pages
		return fail(invalidField(1, 0))
	}
	var plen int
	hdr := 4
	if ten {
		plen = int(binary.BigEndian.Uint16(cdb[7:9]))
		hdr = 8
	} else {
		plen = int(cdb[4])
	}
	if plen == 0 {
		return good()
	}
	data, err := dataOut(t)
	if err != nil {
		return dataOutFailed()
	}
	if len(data) < plen || plen < hdr {
		return paramListLengthError()
	}
	p := data[:plen]
	var bdl, mediumOff int
	longLBA := false
	if ten {
		bdl = int(binary.BigEndian.Uint16(p[6:8]))
		longLBA = p[4]&0x01 != 0
		mediumOff = 2
	} else {
		bdl = int(p[3])
		mediumOff = 1
	}
	if p[mediumOff] != 0 {
		return fail(invalidParam(mediumOff, -1))
	}
	if hdr+bdl > len(p) {
		return paramListLengthError()
	}
	if r := d.checkBlockDescriptors(p[hdr:hdr+bdl], hdr, longLBA); r != nil {
		return r
	}

	var setWCE, setSWP *bool
	for off := hdr + bdl; off < len(p); {
		if len(p)-off < 2 {
			return paramListLengthError()
		}
		code := p[off] & 0x3f
		if p[off]&0x40 != 0 { // SPF: the LU has no subpages
			return fail(invalidParam(off, 6))
		}
		n := int(p[off+1])
		if off+2+n > len(p) {
			return paramListLengthError()
		}
		cur := d.modePage(code, pcCurrent)
		if cur == nil {
			return fail(invalidParam(off, 5))
		}
		if n != len(cur)-2 {
			return fail(invalidParam(off+1, -1))
		}
		chg := d.modePage(code, pcChangeable)
		for i := 2; i < len(cur); i++ {
			if diff := (p[off+i] ^ cur[i]) &^ chg[i]; diff != 0 {
				return fail(invalidParam(off+i, bits.Len8(diff)-1))
			}
		}
		switch code {
		case pageCaching:
			v := p[off+2]&0x04 != 0
			setWCE = &v
		case pageControl:
			v := p[off+4]&0x08 != 0
			setSWP = &v
		}
		off += 2 + n
	}
	changed, flush := false, false
	if setSWP != nil {
		changed = d.swp.Swap(*setSWP) != *setSWP
	}
	if setWCE != nil {
		wasOn := !d.wcd.Swap(!*setWCE)
		changed = changed || wasOn != *setWCE
		flush = wasOn && !*setWCE
	}
	if changed {
		d.modeParametersChanged(t) // 2Ah/01h for every other nexus (misc.go)
	}
	if flush {
		// Writes acknowledged with the cache on become durable now.
		if err := d.flush.flush(); err != nil {
			return d.ioError(err, true, 0)
		}
	}
	return good()
}

// checkBlockDescriptors accepts block descriptors that restate the LU's
// geometry (number of blocks 0 = unchanged); base is their offset in the
// parameter list, for field pointers.
func (d *Device) checkBlockDescriptors(bd []byte, base int, long bool) *stmf.Result {
	size := 8
	if long {
		size = 16
	}
	if len(bd)%size != 0 {
		return fail(invalidParam(base-1, -1))
	}
	nb := d.nblocks.Load()
	for off := 0; off < len(bd); off += size {
		desc := bd[off : off+size]
		var blocks uint64
		var blen uint32
		if long {
			blocks = binary.BigEndian.Uint64(desc[0:8])
			blen = binary.BigEndian.Uint32(desc[12:16])
		} else {
			blocks = uint64(binary.BigEndian.Uint32(desc[0:4]))
			blen = uint32(desc[5])<<16 | uint32(desc[6])<<8 | uint32(desc[7])
			if blocks == 0xffffffff && nb >= 0xffffffff {
				blocks = nb
			}
		}
		if blocks != 0 && blocks != nb {
			return fail(invalidParam(base+off, -1))
		}
		if blen != d.bs {
			lenOff := 5
			if long {
				lenOff = 12
			}
			return fail(invalidParam(base+off+lenOff, -1))
		}
	}
	return nil
}

package lu

import (
	"encoding/binary"
	"errors"
	"sync"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (SPC-4 6.4, 6.18): the
// copy manager behind VMware's XCOPY ("full copy") primitive. Copy targets
// are named by identification descriptors (E4h) carrying an NAA
// designator, matched against the GUIDs of the LUs the initiator's session
// can reach; segments are block device to block device (02h).

// Copy manager limits, reported by OPERATING PARAMETERS.
const (
	xcopyMaxCSCDs       = 16   // MAXIMUM CSCD DESCRIPTOR COUNT
	xcopyMaxSegments    = 64   // MAXIMUM SEGMENT DESCRIPTOR COUNT
	xcopyMaxDescListLen = 2048 // MAXIMUM DESCRIPTOR LIST LENGTH (bytes)
	xcopyMaxConcurrent  = 32   // TOTAL / MAXIMUM CONCURRENT COPIES, per LU
	xcopyHeldResults    = 32   // completed copy results kept per LU for COPY STATUS
	xcopyChunk          = 1 << 20
)

// Parameter list layout.
const (
	xcopyHdrLen     = 16
	cscdDescLen     = 32
	b2bSegDescLen   = 28
	descIdentCSCD   = 0xe4
	segBlockToBlock = 0x02
	maxSegBlocks    = 0xffff // BLOCK DEVICE NUMBER OF BLOCKS is 16 bits
)

// Additional sense codes of the copy manager.
const (
	ascOperationInProgress        scsi.ASC = 0x0016
	ascUnreachableCopyTarget      scsi.ASC = 0x0804
	ascCopyTargetNotReachable     scsi.ASC = 0x0d02
	ascTooManyTargetDescriptors   scsi.ASC = 0x2606
	ascUnsupportedTargetDescType  scsi.ASC = 0x2607
	ascTooManySegmentDescriptors  scsi.ASC = 0x2608
	ascUnsupportedSegmentDescType scsi.ASC = 0x2609
)

// Copy status values (COPY STATUS, COPY MANAGER STATUS field).
const (
	copyInProgress   = 0x00
	copyDone         = 0x01
	copyDoneWithErrs = 0x02
)

// cscd is a parsed identification descriptor (copy target).
type cscd struct {
	off      int  // offset in the parameter list, for sense pointers
	named    bool // an LU designator (NAA, 16 bytes)
	guid     stmf.GUID
	blockLen uint32 // DISK BLOCK LENGTH, 0 = not given
}

// b2bSegment is a parsed block device to block device segment descriptor.
type b2bSegment struct {
	off            int
	src, dst       uint16
	dc             bool
	blocks         uint32
	srcLBA, dstLBA uint64
}

// xcopyPlan is a parsed EXTENDED COPY parameter list.
type xcopyPlan struct {
	listID byte
	usage  byte // LIST ID USAGE
	cscds  []cscd
	segs   []b2bSegment
}

func paramListLenError() *scsi.Sense {
	return scsi.NewSense(scsi.KeyIllegalRequest, scsi.ASCParameterListLengthError)
}

// paramSense is ILLEGAL REQUEST with asc and a pointer into the parameter list.
func paramSense(asc scsi.ASC, off int) *scsi.Sense {
	return &scsi.Sense{Key: scsi.KeyIllegalRequest, ASC: asc,
		FieldPointer: &scsi.FieldPointer{Byte: uint16(off), Bit: -1}}
}

func copyAborted(asc scsi.ASC) *stmf.Result { return fail(scsi.NewSense(scsi.KeyCopyAborted, asc)) }

// parseXCopy checks and decodes an EXTENDED COPY (LID1) parameter list.
// Errors in the list itself are ILLEGAL REQUEST; nothing is resolved yet.
func parseXCopy(p []byte) (*xcopyPlan, *scsi.Sense) {
	if len(p) < xcopyHdrLen {
		return nil, paramListLenError()
	}
	pl := &xcopyPlan{listID: p[0], usage: p[1] >> 3 & 3}
	switch pl.usage {
	case 1: // reserved
		return nil, invalidParam(1, 4)
	case 3: // no list identifier: it must be zero
		if pl.listID != 0 {
			return nil, invalidParam(0, -1)
		}
	}
	tdl := int(binary.BigEndian.Uint16(p[2:4]))
	sdl := uint64(binary.BigEndian.Uint32(p[8:12]))
	if binary.BigEndian.Uint32(p[12:16]) != 0 { // inline data: none supported
		return nil, invalidParam(12, -1)
	}
	if uint64(tdl)+sdl > xcopyMaxDescListLen {
		return nil, paramListLenError()
	}
	end := xcopyHdrLen + tdl + int(sdl)
	if end > len(p) {
		return nil, paramListLenError()
	}

	for off := xcopyHdrLen; off < xcopyHdrLen+tdl; off += cscdDescLen {
		if len(pl.cscds) == xcopyMaxCSCDs {
			return nil, paramSense(ascTooManyTargetDescriptors, off)
		}
		if off+cscdDescLen > xcopyHdrLen+tdl {
			return nil, paramListLenError()
		}
		d := p[off : off+cscdDescLen]
		if d[0] != descIdentCSCD {
			return nil, paramSense(ascUnsupportedTargetDescType, off)
		}
		// SPC-4: an identification descriptor names the LU by its
		// designator alone; LU ID TYPE is ignored and NUL is obsolete.
		if d[1]&0x1f != 0 { // PERIPHERAL DEVICE TYPE: block devices only
			return nil, paramSense(ascUnsupportedTargetDescType, off+1)
		}
		dlen := int(d[7])
		if dlen > 16 {
			return nil, invalidParam(off+7, -1)
		}
		c := cscd{off: off, blockLen: uint32(d[29])<<16 | uint32(d[30])<<8 | uint32(d[31])}
		if d[4]&0x0f == codeSetBinary && d[5]&0x30 == assocLU && d[5]&0x0f == desigNAA && dlen == 16 {
			copy(c.guid[:], d[8:24])
			c.named = true
		}
		pl.cscds = append(pl.cscds, c)
	}

	for off := xcopyHdrLen + tdl; off < end; {
		if len(pl.segs) == xcopyMaxSegments {
			return nil, paramSense(ascTooManySegmentDescriptors, off)
		}
		if off+4 > end {
			return nil, paramListLenError()
		}
		dl := 4 + int(binary.BigEndian.Uint16(p[off+2:off+4]))
		if off+dl > end {
			return nil, paramListLenError()
		}
		if p[off] != segBlockToBlock {
			return nil, paramSense(ascUnsupportedSegmentDescType, off)
		}
		if dl != b2bSegDescLen {
			return nil, invalidParam(off+2, -1)
		}
		s := p[off : off+dl]
		pl.segs = append(pl.segs, b2bSegment{
			off:    off,
			src:    binary.BigEndian.Uint16(s[4:6]),
			dst:    binary.BigEndian.Uint16(s[6:8]),
			dc:     s[1]&0x02 != 0,
			blocks: uint32(binary.BigEndian.Uint16(s[10:12])),
			srcLBA: binary.BigEndian.Uint64(s[12:20]),
			dstLBA: binary.BigEndian.Uint64(s[20:28]),
		})
		off += dl
	}
	return pl, nil
}

// copyOp is one EXTENDED COPY known to the copy manager: running, or done
// and held for RECEIVE COPY RESULTS.
type copyOp struct {
	nexus  string
	listID byte
	hold   bool
	status byte
	segs   uint16 // segments processed
	bytes  uint64 // bytes written to copy targets
}

// copyManager tracks the LU's EXTENDED COPY commands per I_T nexus.
type copyManager struct {
	mu      sync.Mutex
	running int
	ops     []*copyOp // oldest first
}

// nexusKey names the I_T nexus of t (list identifiers are per nexus).
func nexusKey(t *stmf.Task) string {
	if t.Session == nil {
		return ""
	}
	return t.Session.Nexus.InitiatorPort + "\x00" + t.Session.Nexus.TargetPort
}

// begin registers a copy. It fails with BUSY when too many copies run,
// and with OPERATION IN PROGRESS when the nexus already runs a copy with
// the same list identifier.
func (m *copyManager) begin(nexus string, pl *xcopyPlan) (*copyOp, *stmf.Result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running >= xcopyMaxConcurrent {
		return nil, &stmf.Result{Status: scsi.StatusBusy}
	}
	op := &copyOp{nexus: nexus, listID: pl.listID, hold: pl.usage == 0, status: copyInProgress}
	if pl.usage != 3 {
		for _, o := range m.ops {
			if o.nexus == nexus && o.listID == pl.listID && o.status == copyInProgress {
				return nil, fail(scsi.NewSense(scsi.KeyIllegalRequest, ascOperationInProgress))
			}
		}
		kept := m.ops[:0]
		for _, o := range m.ops {
			if o.nexus != nexus || o.listID != pl.listID { // a new copy replaces held results
				kept = append(kept, o)
			}
		}
		clear(m.ops[len(kept):])
		m.ops = append(kept, op)
	}
	m.running++
	return op, nil
}

// progress records a processed segment.
func (m *copyManager) progress(op *copyOp, bytes uint64, segDone bool) {
	m.mu.Lock()
	op.bytes += bytes
	if segDone {
		op.segs++
	}
	m.mu.Unlock()
}

// finish ends a copy; held results beyond the limit are dropped, oldest first.
func (m *copyManager) finish(op *copyOp, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.running--
	op.status = copyDone
	if !ok {
		op.status = copyDoneWithErrs
	}
	held := 0
	for _, o := range m.ops {
		if o.status != copyInProgress {
			held++
		}
	}
	kept := m.ops[:0]
	for _, o := range m.ops {
		drop := o == op && !op.hold
		if !drop && o.status != copyInProgress && held > xcopyHeldResults {
			drop = true
		}
		if drop {
			if o.status != copyInProgress {
				held--
			}
			continue
		}
		kept = append(kept, o)
	}
	clear(m.ops[len(kept):])
	m.ops = kept
}

// status returns a snapshot of the newest copy with the list identifier.
func (m *copyManager) status(nexus string, id byte) (copyOp, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.ops) - 1; i >= 0; i-- {
		if o := m.ops[i]; o.nexus == nexus && o.listID == id {
			return *o, true
		}
	}
	return copyOp{}, false
}

// copyTarget is a resolved copy target: an LU held open for the copy.
type copyTarget struct {
	d       *Device
	entered bool
}

// resolve finds the LU a CSCD descriptor names: this LU, or another LU the
// task's session can reach. The LU is held open (enter) until released.
func (d *Device) resolve(t *stmf.Task, c *cscd) (copyTarget, bool) {
	if !c.named {
		return copyTarget{}, false
	}
	if c.guid == d.guid {
		return copyTarget{d: d}, true
	}
	if t.Session == nil {
		return copyTarget{}, false
	}
	lu, ok := t.Session.LU(c.guid)
	if !ok {
		return copyTarget{}, false
	}
	o, ok := lu.(*Device)
	if !ok || !o.enter() {
		return copyTarget{}, false
	}
	return copyTarget{d: o, entered: true}, true
}

// extendedCopy: EXTENDED COPY (LID1). The parameter list is checked in
// full (ILLEGAL REQUEST) before any copy target is resolved or any block
// moves (COPY ABORTED). Segments run in order, in chunks; the command
// stops between chunks once the task is aborted. Each chunk holds the
// destination range lock of its LU while it is written, so it is ordered
// against the LU's other writes and ATS; sources are read without a lock,
// as a READ would be.
func (d *Device) extendedCopy(t *stmf.Task, cdb []byte) *stmf.Result {
	plen := binary.BigEndian.Uint32(cdb[10:14])
	if plen == 0 {
		return good()
	}
	if plen > xcopyHdrLen+xcopyMaxDescListLen {
		return fail(paramListLenError())
	}
	data, err := dataOut(t)
	if err != nil {
		return dataOutFailed()
	}
	p := data[:min(uint64(plen), uint64(len(data)))]
	pl, sense := parseXCopy(p)
	if sense != nil {
		return fail(sense)
	}

	// Resolve every copy target, then check every segment against them.
	targets := make([]copyTarget, len(pl.cscds))
	defer func() {
		for _, c := range targets {
			if c.entered {
				c.d.leave()
			}
		}
	}()
	for i := range pl.cscds {
		c := &pl.cscds[i]
		tg, ok := d.resolve(t, c)
		if !ok {
			return copyAborted(ascCopyTargetNotReachable)
		}
		targets[i] = tg
		if c.blockLen != 0 && c.blockLen != tg.d.bs {
			return fail(invalidParam(c.off+29, -1))
		}
	}
	for i := range pl.segs {
		if r := d.checkSegment(t, &pl.segs[i], targets); r != nil {
			return r
		}
	}

	op, r := d.vaai.copies.begin(nexusKey(t), pl)
	if r != nil {
		return r
	}
	ok := false
	defer func() { d.vaai.copies.finish(op, ok) }()
	for i := range pl.segs {
		if r := d.copySegment(t, &pl.segs[i], targets, op); r != nil {
			return r
		}
	}
	ok = true
	return &stmf.Result{Status: scsi.StatusGood, TransferLen: plen}
}

// segmentBytes returns the bytes a segment moves and checks that they are
// whole blocks of both copy targets.
func segmentBytes(s *b2bSegment, src, dst *Device) (uint64, bool) {
	unit := src.bs
	if s.dc {
		unit = dst.bs
	}
	n := uint64(s.blocks) * uint64(unit)
	return n, n%uint64(src.bs) == 0 && n%uint64(dst.bs) == 0
}

// checkSegment validates a segment against its resolved copy targets.
func (d *Device) checkSegment(t *stmf.Task, s *b2bSegment, targets []copyTarget) *stmf.Result {
	if int(s.src) >= len(targets) || int(s.dst) >= len(targets) {
		return copyAborted(ascUnreachableCopyTarget)
	}
	src, dst := targets[s.src].d, targets[s.dst].d
	n, whole := segmentBytes(s, src, dst)
	if !whole {
		return copyAborted(scsi.ASCNoAdditionalSense)
	}
	if !src.inRange(s.srcLBA, n>>src.bsShift) || !dst.inRange(s.dstLBA, n>>dst.bsShift) {
		return copyAborted(scsi.ASCNoAdditionalSense)
	}
	if dst.writeProtected() {
		return copyAborted(scsi.ASCWriteProtected)
	}
	// The copy reads and writes on behalf of the initiator: the copy
	// targets' reservations apply to its I_T nexus.
	if src != d && src.ioConflicts(t, false) || dst != d && dst.ioConflicts(t, true) {
		return reservationConflict()
	}
	return nil
}

// copySegment moves one segment in chunks. Within one LU a forward copy
// onto a later, overlapping range runs backwards, so every source block
// is read before it is overwritten.
func (d *Device) copySegment(t *stmf.Task, s *b2bSegment, targets []copyTarget, op *copyOp) *stmf.Result {
	src, dst := targets[s.src].d, targets[s.dst].d
	n, _ := segmentBytes(s, src, dst)
	if n == 0 {
		d.vaai.copies.progress(op, 0, true)
		return nil
	}
	srcOff, dstOff := src.byteOff(s.srcLBA), dst.byteOff(s.dstLBA)
	backward := src == dst && s.dstLBA > s.srcLBA && s.dstLBA-s.srcLBA < n>>src.bsShift
	chunk := uint64(xcopyChunk)
	pb := d.bufs.get(int(min(chunk, n)))
	defer pb.release()
	ctx := t.Context()
	dsync := dst.wcd.Load()
	for done := uint64(0); done < n; {
		if hook := d.vaai.copyChunkHook; hook != nil {
			hook()
		}
		if ctx.Err() != nil {
			d.log.Debug("lu: extended copy aborted", "guid", d.guid, "segment_offset", s.off, "copied", done)
			return dataOutFailed() // the task was aborted: this result is dropped
		}
		c := min(chunk, n-done)
		pos := done
		if backward {
			pos = n - done - c
		}
		lo := s.dstLBA + pos>>dst.bsShift
		lk, ok := dst.vaai.locks.lock(ctx, lo, lo+c>>dst.bsShift)
		if !ok {
			return dataOutFailed()
		}
		buf := pb.b[:c]
		err := src.store.ReadAt(buf, srcOff+int64(pos))
		if err != nil {
			dst.vaai.locks.release(lk)
			d.log.Error("lu: extended copy read failed", "guid", src.guid, "lba", s.srcLBA, "err", err)
			return copyAborted(scsi.ASCUnrecoveredReadError)
		}
		if err = dst.checkFence(); err == nil {
			err = dst.store.WriteAt(buf, dstOff+int64(pos), dsync)
		}
		dst.vaai.locks.release(lk)
		if errors.Is(err, backing.ErrFenced) {
			return dst.fenced(err)
		}
		if err != nil {
			d.log.Error("lu: extended copy write failed", "guid", dst.guid, "lba", s.dstLBA, "err", err)
			return copyAborted(scsi.ASCWriteError)
		}
		done += c
		d.vaai.copies.progress(op, c, done == n)
	}
	dst.thinAfterWrite(t)
	return nil
}

// receiveCopyResults: RECEIVE COPY RESULTS, COPY STATUS and OPERATING
// PARAMETERS.
func (d *Device) receiveCopyResults(t *stmf.Task, cdb []byte) *stmf.Result {
	alloc := binary.BigEndian.Uint32(cdb[10:14])
	switch cdb[1] & 0x1f {
	case scsi.SACopyStatus:
		op, ok := d.vaai.copies.status(nexusKey(t), cdb[2])
		if !ok {
			return fail(invalidField(2, -1))
		}
		b := make([]byte, 12)
		binary.BigEndian.PutUint32(b[0:4], 8)
		b[4] = op.status
		binary.BigEndian.PutUint16(b[5:7], op.segs)
		units, count := byte(0), op.bytes // 0: bytes, 1: KiB, 2: MiB, ...
		for count > 0xffffffff {
			units, count = units+1, count>>10
		}
		b[7] = units
		binary.BigEndian.PutUint32(b[8:12], uint32(count))
		return dataIn(truncate(b, alloc))
	case scsi.SAOperatingParams:
		return dataIn(truncate(d.operatingParameters(), alloc))
	}
	return fail(invalidField(1, 4))
}

// operatingParameters is the OPERATING PARAMETERS parameter data.
func (d *Device) operatingParameters() []byte {
	impl := []byte{segBlockToBlock, descIdentCSCD}
	b := make([]byte, 44+len(impl))
	binary.BigEndian.PutUint32(b[0:4], uint32(len(b)-4))
	b[4] = 0x01 // SNLID: LIST ID USAGE 11b is supported
	binary.BigEndian.PutUint16(b[8:10], xcopyMaxCSCDs)
	binary.BigEndian.PutUint16(b[10:12], xcopyMaxSegments)
	binary.BigEndian.PutUint32(b[12:16], xcopyMaxDescListLen)
	binary.BigEndian.PutUint32(b[16:20], uint32(min(uint64(maxSegBlocks)*uint64(d.bs), 0xffffffff))) // MAXIMUM SEGMENT LENGTH
	// MAXIMUM INLINE DATA LENGTH, HELD DATA LIMIT, MAXIMUM STREAM DEVICE TRANSFER SIZE: 0.
	binary.BigEndian.PutUint16(b[34:36], xcopyMaxConcurrent) // TOTAL CONCURRENT COPIES
	b[36] = xcopyMaxConcurrent                               // MAXIMUM CONCURRENT COPIES
	b[37] = byte(d.bsShift)                                  // DATA SEGMENT GRANULARITY (log2 bytes)
	b[43] = byte(len(impl))
	copy(b[44:], impl)
	return b
}

package lu

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// SPC-4 persistent reservations (5.13, 6.16, 6.17).

// Persistent reservation types.
const (
	prTypeWE   = 0x1 // Write Exclusive
	prTypeEA   = 0x3 // Exclusive Access
	prTypeWERO = 0x5 // Write Exclusive – Registrants Only
	prTypeEARO = 0x6 // Exclusive Access – Registrants Only
	prTypeWEAR = 0x7 // Write Exclusive – All Registrants
	prTypeEAAR = 0x8 // Exclusive Access – All Registrants
)

func validPRType(t byte) bool {
	switch t {
	case prTypeWE, prTypeEA, prTypeWERO, prTypeEARO, prTypeWEAR, prTypeEAAR:
		return true
	}
	return false
}

const (
	// maxRegistrations bounds the registrations of one LU; more answer
	// INSUFFICIENT REGISTRATION RESOURCES.
	maxRegistrations = 512
	// proutBasicLen is the length of the basic PERSISTENT RESERVE OUT
	// parameter list.
	proutBasicLen = 24

	// ascInvalidReleaseOfPR is INVALID RELEASE OF PERSISTENT RESERVATION.
	ascInvalidReleaseOfPR scsi.ASC = 0x2604
)

// registration is one registered I_T nexus, or, with allTgPt or an
// initiator device TransportID (iSCSI format 00b), a set of them sharing
// a reservation key. Registrations are immutable once published.
type registration struct {
	key     uint64
	tid     scsi.TransportID // initiator port, or initiator device: all its ports
	tport   string           // target port name (ignored with allTgPt)
	relPort uint16           // relative target port identifier of tport
	allTgPt bool
}

// coversInitiator reports whether the registration's TransportID names the
// initiator port of n or the device it belongs to.
func (g *registration) coversInitiator(n nexusID) bool {
	return g.tid.Equal(n.port) || g.tid.Equal(n.device)
}

// matches reports whether the I_T nexus n is covered by the registration.
func (g *registration) matches(n nexusID) bool {
	return (g.allTgPt || g.tport == n.tport) && g.coversInitiator(n)
}

// overlaps reports whether two registrations cover a common I_T nexus.
func (g *registration) overlaps(o *registration) bool {
	return (g.allTgPt || o.allTgPt || g.tport == o.tport) &&
		(g.tid.Equal(o.tid) || g.tid.Equal(o.tid.Device()) || o.tid.Equal(g.tid.Device()))
}

// prState is the persistent reservation state of an LU. A published
// prState is never modified: changes are made on a clone.
type prState struct {
	gen     uint32 // PRGENERATION
	aptpl   bool   // activate persist through power loss
	regs    []*registration
	resType byte          // 0 = no persistent reservation
	holder  *registration // the holder for types other than all-registrants
}

// clone returns a deep copy (holder remapped).
func (p *prState) clone() *prState {
	c := &prState{gen: p.gen, aptpl: p.aptpl, resType: p.resType}
	c.regs = make([]*registration, len(p.regs))
	for i, g := range p.regs {
		cp := *g
		c.regs[i] = &cp
		if g == p.holder {
			c.holder = &cp
		}
	}
	return c
}

// find returns the registration covering n, or nil.
func (p *prState) find(n nexusID) *registration {
	for _, g := range p.regs {
		if g.matches(n) {
			return g
		}
	}
	return nil
}

func (p *prState) allRegistrantsType() bool {
	return p.resType == prTypeWEAR || p.resType == prTypeEAAR
}

// registrantsType: registrants-only and all-registrants types, which let
// every registered I_T nexus through.
func (p *prState) registrantsType() bool {
	return p.resType >= prTypeWERO && p.resType <= prTypeEAAR
}

func (p *prState) writeExclusiveType() bool {
	return p.resType == prTypeWE || p.resType == prTypeWERO || p.resType == prTypeWEAR
}

// isHolder reports whether registration g holds the persistent reservation.
func (p *prState) isHolder(g *registration) bool {
	if g == nil || p.resType == 0 {
		return false
	}
	return p.allRegistrantsType() || g == p.holder
}

// allows reports whether a command of class cls from nexus n may run
// under the persistent reservation (SPC-4 table 63, SBC-3 table 13).
func (p *prState) allows(n nexusID, cls cmdClass) bool {
	if p == nil || p.resType == 0 || cls == clsAllowed {
		return true
	}
	g := p.find(n)
	if p.isHolder(g) || (g != nil && p.registrantsType()) {
		return true
	}
	return cls == clsRead && p.writeExclusiveType()
}

// remove drops registration g; releasing the reservation when g held it
// (or was the last registrant under an all-registrants type).
func (p *prState) remove(g *registration) {
	for i, x := range p.regs {
		if x == g {
			p.regs = append(p.regs[:i:i], p.regs[i+1:]...)
			break
		}
	}
	if p.resType == 0 {
		return
	}
	if p.allRegistrantsType() {
		if len(p.regs) == 0 {
			p.resType, p.holder = 0, nil
		}
	} else if p.holder == g {
		p.resType, p.holder = 0, nil
	}
}

// reservationKey is the key READ RESERVATION reports (0 for the
// all-registrants types).
func (p *prState) reservationKey() uint64 {
	if p.holder == nil || p.allRegistrantsType() {
		return 0
	}
	return p.holder.key
}

// ---- PERSISTENT RESERVE IN ----

// prIn: PERSISTENT RESERVE IN.
func (d *Device) prIn(_ *stmf.Task, cdb []byte) *stmf.Result {
	alloc := uint32(binary.BigEndian.Uint16(cdb[7:9]))
	d.resv.mu.Lock()
	p := d.resv.pr
	d.resv.mu.Unlock()

	var b []byte
	switch cdb[1] & 0x1f {
	case scsi.PRInReadKeys:
		b = make([]byte, 8, 8+8*len(p.regs))
		for _, g := range p.regs {
			b = binary.BigEndian.AppendUint64(b, g.key)
		}
	case scsi.PRInReadReservation:
		b = make([]byte, 8, 24)
		if p.resType != 0 {
			var r [16]byte
			binary.BigEndian.PutUint64(r[0:8], p.reservationKey())
			r[13] = p.resType // SCOPE 0 (LU_SCOPE)
			b = append(b, r[:]...)
		}
	case scsi.PRInReportCaps:
		b = make([]byte, 8)
		binary.BigEndian.PutUint16(b[0:2], 8)
		b[2] = 0x10 | 0x08 | 0x04 | 0x01 // CRH, SIP_C, ATP_C, PTPL_C
		b[3] = 0x80 | 0x03<<4            // TMV, ALLOW COMMANDS 011b
		if p.aptpl {
			b[3] |= 0x01 // PTPL_A
		}
		b[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02 // WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX
		b[5] = 0x01                             // EX_AC_AR
		return dataIn(truncate(b, alloc))
	case scsi.PRInReadFullStatus:
		b = make([]byte, 8, 8+len(p.regs)*64)
		for _, g := range p.regs {
			b = appendFullStatus(b, p, g)
		}
	default:
		return fail(invalidField(1, 4))
	}
	binary.BigEndian.PutUint32(b[0:4], p.gen)
	binary.BigEndian.PutUint32(b[4:8], uint32(len(b)-8))
	return dataIn(truncate(b, alloc))
}

// appendFullStatus appends a READ FULL STATUS descriptor for g.
func appendFullStatus(b []byte, p *prState, g *registration) []byte {
	var h [24]byte
	binary.BigEndian.PutUint64(h[0:8], g.key)
	if g.allTgPt {
		h[12] |= 0x02
	} else {
		binary.BigEndian.PutUint16(h[18:20], g.relPort)
	}
	if p.isHolder(g) {
		h[12] |= 0x01 // R_HOLDER
		h[13] = p.resType
	}
	binary.BigEndian.PutUint32(h[20:24], uint32(g.tid.Len()))
	b = append(b, h[:]...)
	return g.tid.AppendTo(b)
}

// ---- PERSISTENT RESERVE OUT ----

// proutParams is the decoded parameter list.
type proutParams struct {
	rk, sark uint64
	specIPT  bool
	allTgPt  bool
	aptpl    bool
	tids     []transportID // SPEC_I_PT TransportIDs, or REGISTER AND MOVE's one

	// REGISTER AND MOVE.
	unreg   bool
	relPort uint16
}

// prOutcome collects what must happen after the state change is
// committed: unit attentions and task aborts.
type prOutcome struct {
	uas []prUA
	// aborted are the registrations whose I_T nexuses' tasks PREEMPT AND
	// ABORT aborts.
	aborted []*registration
}

// prUA is a unit attention for the I_T nexuses the registrations cover,
// except the one that caused it. It is data, not a closure, so that a
// replicated change carries it to the other nodes (pr_journal.go).
type prUA struct {
	asc    scsi.ASC
	regs   []*registration
	except nexusID
}

// match reports whether the unit attention is for nexus x.
func (u *prUA) match(x nexusID) bool {
	if x.same(u.except) {
		return false
	}
	for _, g := range u.regs {
		if g.matches(x) {
			return true
		}
	}
	return false
}

// prOut: PERSISTENT RESERVE OUT.
func (d *Device) prOut(t *stmf.Task, cdb []byte) *stmf.Result {
	sa := cdb[1] & 0x1f
	scope, typ := cdb[2]>>4, cdb[2]&0x0f
	plen := binary.BigEndian.Uint32(cdb[5:9])
	switch sa {
	case scsi.PROutReserve, scsi.PROutRelease, scsi.PROutPreempt, scsi.PROutPreemptAbort, scsi.PROutRegisterMove:
		if scope != 0 {
			return fail(invalidField(2, 7))
		}
		if !validPRType(typ) {
			return fail(invalidField(2, 3))
		}
	}
	switch sa {
	case scsi.PROutRegister, scsi.PROutRegisterMove:
		if plen < proutBasicLen {
			return paramListLengthError()
		}
	default:
		if plen != proutBasicLen {
			return paramListLengthError()
		}
	}
	data, err := dataOut(t)
	if err != nil {
		return dataOutFailed()
	}
	if uint64(len(data)) < uint64(plen) {
		return paramListLengthError()
	}
	pl := data[:plen]
	n := nexusOf(t)
	prm, res := parseProutParams(sa, pl, n.proto)
	if res != nil {
		return res
	}

	for attempt := 1; ; attempt++ {
		res, out, err := d.prOutOnce(t, sa, typ, n, prm)
		if err != nil {
			if errors.Is(err, ErrJournalStale) && attempt < journalTries && d.syncReservations(t.Context(), err) == nil {
				continue // another node changed the state first: redo on its state
			}
			return d.notReplicated(err)
		}
		if res.Status == scsi.StatusGood {
			d.prAfter(t, out)
		}
		return res
	}
}

// prOutOnce runs a PERSISTENT RESERVE OUT service action on the current
// state and commits the result. err is a replication failure (the state
// is then unchanged).
func (d *Device) prOutOnce(t *stmf.Task, sa, typ byte, n nexusID, prm *proutParams) (*stmf.Result, *prOutcome, error) {
	r := &d.resv
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.s2 != nil { // SPC-2: PERSISTENT RESERVE OUT conflicts with RESERVE
		return reservationConflict(), nil, nil
	}
	old := r.pr
	p := old.clone()
	out := &prOutcome{}
	var res *stmf.Result
	switch sa {
	case scsi.PROutRegister, scsi.PROutRegisterIgnore:
		res = p.register(n, sa == scsi.PROutRegisterIgnore, prm, out)
	case scsi.PROutReserve:
		res = p.reserve(n, typ, prm)
	case scsi.PROutRelease:
		res = p.release(n, typ, prm, out)
	case scsi.PROutClear:
		res = p.clear(n, prm, out)
	case scsi.PROutPreempt, scsi.PROutPreemptAbort:
		res = p.preempt(n, typ, prm, out)
		if sa == scsi.PROutPreempt {
			out.aborted = nil
		}
	case scsi.PROutRegisterMove:
		res = d.registerMove(t, p, n, prm)
	}
	if res != nil {
		return res, out, nil
	}
	res, err := d.commitPRLocked(t.Context(), old, p, out)
	return res, out, err
}

// commitPRLocked publishes p once it is stored: in the journal when the
// LU replicates its reservations (the journal is then where the state
// persists, APTPL or not, and the shared store's metadata is left to the
// LU's owner), otherwise in the metadata when APTPL asks for it (or
// clearing the stored state when APTPL was turned off). err is a
// replication failure: nothing changed.
func (d *Device) commitPRLocked(ctx context.Context, old, p *prState, out *prOutcome) (*stmf.Result, error) {
	if d.resv.jn != nil {
		if !samePR(old, p) || len(out.uas) > 0 || len(out.aborted) > 0 {
			if res, err := d.replicateLocked(ctx, p, d.resv.s2, out); res != nil || err != nil {
				return res, err
			}
		}
	} else if p.aptpl || old.aptpl {
		var enc []byte
		if p.aptpl {
			var err error
			if enc, err = encodePR(p); err != nil {
				return fail(scsi.NewSense(scsi.KeyIllegalRequest, scsi.ASCInsufficientRegistrationRes)), nil
			}
		}
		if err := d.storePR(enc); err != nil {
			if errors.Is(err, errPRTooLarge) || errors.Is(err, backing.ErrMetaTooLarge) { // a zvol property holds less than a header slot
				return fail(scsi.NewSense(scsi.KeyIllegalRequest, scsi.ASCInsufficientRegistrationRes)), nil
			}
			if errors.Is(err, backing.ErrFenced) {
				return d.fenced(err), nil
			}
			d.log.Error("lu: persisting reservations failed", "guid", d.guid, "err", err)
			return fail(scsi.NewSense(scsi.KeyMediumError, scsi.ASCWriteError)), nil
		}
	}
	d.publishPRLocked(p)
	return good(), nil
}

// samePR reports whether two states are the same (a service action that
// changed nothing, such as the holder reserving again, commits nothing).
func samePR(a, b *prState) bool {
	x, errA := appendPRBody(nil, a, prPersistVersion3, journalMax)
	y, errB := appendPRBody(nil, b, prPersistVersion3, journalMax)
	return errA == nil && errB == nil && bytes.Equal(x, y)
}

// publishPRLocked makes p the LU's persistent reservation state.
func (d *Device) publishPRLocked(p *prState) {
	d.resv.pr = p
	d.resv.publishLocked()
}

// prAfter raises the unit attentions and aborts the tasks a committed
// service action calls for. self, the task that made the change, is not
// aborted; it is nil for a change replicated from another node.
func (d *Device) prAfter(self *stmf.Task, out *prOutcome) {
	h := d.hostOf()
	if h == nil || out == nil || (self != nil && self.Session == nil) {
		return
	}
	for i := range out.uas {
		ua := &out.uas[i]
		h.RaiseUA(ua.asc, func(nx *stmf.Nexus) bool { return ua.match(nexusFrom(nx)) })
	}
	if len(out.aborted) > 0 {
		victims := out.aborted
		h.AbortTasks(func(x *stmf.Task) bool {
			if x == self || x.Session == nil {
				return false
			}
			n := nexusFrom(&x.Session.Nexus)
			for _, g := range victims {
				if g.matches(n) {
					return true
				}
			}
			return false
		})
	}
}

// parseProutParams decodes and checks the parameter list (its length
// already checked against the service action's minimum).
func parseProutParams(sa byte, pl []byte, proto scsi.ProtocolID) (*proutParams, *stmf.Result) {
	prm := &proutParams{rk: binary.BigEndian.Uint64(pl[0:8]), sark: binary.BigEndian.Uint64(pl[8:16])}
	if sa == scsi.PROutRegisterMove {
		prm.unreg = pl[17]&0x02 != 0
		prm.aptpl = pl[17]&0x01 != 0
		prm.relPort = binary.BigEndian.Uint16(pl[18:20])
		tidLen := binary.BigEndian.Uint32(pl[20:24])
		if uint64(tidLen) > uint64(len(pl)-24) {
			return nil, paramListLengthError()
		}
		tids, res := parseTransportIDs(pl[24:24+tidLen], 24, proto)
		if res != nil {
			return nil, res
		}
		if len(tids) != 1 {
			return nil, fail(invalidParam(20, -1))
		}
		prm.tids = tids
		return prm, nil
	}
	prm.specIPT = pl[20]&0x08 != 0
	prm.allTgPt = pl[20]&0x04 != 0
	prm.aptpl = pl[20]&0x01 != 0
	if prm.specIPT && sa != scsi.PROutRegister {
		return nil, fail(invalidParam(20, 3))
	}
	if sa != scsi.PROutRegister && sa != scsi.PROutRegisterIgnore {
		prm.allTgPt = false // ignored by the other service actions
	}
	if !prm.specIPT {
		if len(pl) != proutBasicLen {
			return nil, paramListLengthError()
		}
		return prm, nil
	}
	if len(pl) < proutBasicLen+4 {
		return nil, paramListLengthError()
	}
	tidLen := binary.BigEndian.Uint32(pl[24:28])
	if uint64(tidLen) > uint64(len(pl)-28) {
		return nil, paramListLengthError()
	}
	tids, res := parseTransportIDs(pl[28:28+tidLen], 28, proto)
	if res != nil {
		return nil, res
	}
	prm.tids = tids
	return prm, nil
}

// register: REGISTER and REGISTER AND IGNORE EXISTING KEY.
func (p *prState) register(n nexusID, ignore bool, prm *proutParams, out *prOutcome) *stmf.Result {
	g := p.find(n)
	if g == nil {
		if !ignore && prm.rk != 0 {
			return reservationConflict()
		}
		if prm.sark == 0 {
			p.aptpl = prm.aptpl
			return nil
		}
		add := []*registration{{key: prm.sark, tid: n.port, tport: n.tport, relPort: n.relPort, allTgPt: prm.allTgPt}}
		for _, tid := range prm.tids {
			nr := &registration{key: prm.sark, tid: tid.id, tport: n.tport, relPort: n.relPort, allTgPt: prm.allTgPt}
			if nr.tid.Equal(n.port) {
				continue // the I_T nexus the command came through
			}
			for _, x := range p.regs {
				if x.overlaps(nr) {
					return fail(invalidParam(tid.off, -1)) // already registered
				}
			}
			for _, x := range add {
				if x.overlaps(nr) {
					return fail(invalidParam(tid.off, -1))
				}
			}
			add = append(add, nr)
		}
		if len(p.regs)+len(add) > maxRegistrations {
			return fail(scsi.NewSense(scsi.KeyIllegalRequest, scsi.ASCInsufficientRegistrationRes))
		}
		p.regs = append(p.regs, add...)
		p.aptpl = prm.aptpl
		p.gen++
		return nil
	}
	if !ignore && prm.rk != g.key {
		return reservationConflict()
	}
	if prm.specIPT {
		// SPC-4 table 52: SPEC_I_PT from a registered I_T nexus.
		return fail(scsi.IllegalRequest(scsi.ASCInvalidFieldInCDB, -1))
	}
	if prm.sark == 0 {
		p.unregister(g, n, out)
	} else {
		g.key = prm.sark
	}
	p.aptpl = prm.aptpl
	p.gen++
	return nil
}

// unregister removes the caller's registration g; when that releases a
// registrants-only reservation the other registrants are told.
func (p *prState) unregister(g *registration, n nexusID, out *prOutcome) {
	wasRO := p.holder == g && (p.resType == prTypeWERO || p.resType == prTypeEARO)
	p.remove(g)
	if wasRO {
		out.uas = append(out.uas, p.registeredExcept(scsi.ASCReservationsReleased, n))
	}
}

// registeredExcept is a unit attention for the I_T nexuses registered in
// p other than n (p must not change afterwards: it is a fresh clone being
// committed).
func (p *prState) registeredExcept(asc scsi.ASC, n nexusID) prUA {
	return prUA{asc: asc, regs: append([]*registration(nil), p.regs...), except: n}
}

// callerReg returns the caller's registration if its key matches rk;
// otherwise the result is RESERVATION CONFLICT.
func (p *prState) callerReg(n nexusID, rk uint64) (*registration, *stmf.Result) {
	g := p.find(n)
	if g == nil || g.key != rk {
		return nil, reservationConflict()
	}
	return g, nil
}

// reserve: RESERVE.
func (p *prState) reserve(n nexusID, typ byte, prm *proutParams) *stmf.Result {
	g, res := p.callerReg(n, prm.rk)
	if res != nil {
		return res
	}
	if p.resType != 0 {
		if p.isHolder(g) && p.resType == typ {
			return nil
		}
		return reservationConflict()
	}
	p.resType, p.holder = typ, g
	return nil
}

// release: RELEASE.
func (p *prState) release(n nexusID, typ byte, prm *proutParams, out *prOutcome) *stmf.Result {
	g, res := p.callerReg(n, prm.rk)
	if res != nil {
		return res
	}
	if p.resType == 0 || !p.isHolder(g) {
		return nil
	}
	if p.resType != typ {
		return fail(scsi.NewSense(scsi.KeyIllegalRequest, ascInvalidReleaseOfPR))
	}
	notify := p.registrantsType()
	p.resType, p.holder = 0, nil
	if notify {
		out.uas = append(out.uas, p.registeredExcept(scsi.ASCReservationsReleased, n))
	}
	return nil
}

// clear: CLEAR removes every registration and the reservation.
func (p *prState) clear(n nexusID, prm *proutParams, out *prOutcome) *stmf.Result {
	if _, res := p.callerReg(n, prm.rk); res != nil {
		return res
	}
	out.uas = append(out.uas, p.registeredExcept(scsi.ASCReservationsPreempted, n))
	p.regs = nil
	p.resType, p.holder = 0, nil
	p.gen++
	return nil
}

// preempt: PREEMPT and PREEMPT AND ABORT (SPC-4 5.13.11.4).
func (p *prState) preempt(n nexusID, typ byte, prm *proutParams, out *prOutcome) *stmf.Result {
	g, res := p.callerReg(n, prm.rk)
	if res != nil {
		return res
	}
	var removed []*registration
	// drop removes every registration but the caller's that pick selects.
	drop := func(pick func(*registration) bool) {
		kept := p.regs[:0:0]
		for _, x := range p.regs {
			if x != g && pick(x) {
				removed = append(removed, x)
				continue
			}
			kept = append(kept, x)
		}
		p.regs = kept
	}
	byKey := func(x *registration) bool { return x.key == prm.sark }

	switch {
	case p.resType != 0 && p.allRegistrantsType() && prm.sark == 0:
		// Preempt an all-registrants reservation: everyone else goes and
		// the caller holds a new reservation of the requested type.
		drop(func(*registration) bool { return true })
		p.resType, p.holder = typ, g
	case p.resType != 0 && !p.allRegistrantsType() && p.holder.key == prm.sark:
		// Preempt the holder: its key's registrations go (not the
		// caller's), the caller holds the new reservation.
		oldType := p.resType
		drop(byKey)
		p.resType, p.holder = typ, g
		if oldType != typ {
			out.uas = append(out.uas, p.registeredExcept(scsi.ASCReservationsReleased, n))
		}
	default:
		// No reservation, or it is not the one being preempted: only
		// registrations are removed.
		if prm.sark == 0 {
			return fail(invalidParam(8, -1))
		}
		drop(byKey)
		if len(removed) == 0 {
			return reservationConflict()
		}
	}
	if len(removed) > 0 {
		out.uas = append(out.uas, prUA{asc: scsi.ASCRegistrationsPreempted, regs: removed, except: n})
		out.aborted = removed
	}
	p.gen++
	return nil
}

// registerMove: REGISTER AND MOVE moves the caller's reservation to the
// I_T nexus named by the TransportID and RELATIVE TARGET PORT IDENTIFIER.
func (d *Device) registerMove(t *stmf.Task, p *prState, n nexusID, prm *proutParams) *stmf.Result {
	g, res := p.callerReg(n, prm.rk)
	if res != nil {
		return res
	}
	if p.resType == 0 || p.allRegistrantsType() || !p.isHolder(g) {
		return reservationConflict()
	}
	if prm.sark == 0 {
		return fail(invalidParam(8, -1))
	}
	tport, ok := d.targetPortByRelID(t, prm.relPort)
	if !ok {
		return fail(invalidParam(18, -1))
	}
	tid := prm.tids[0].id
	dst := nexusID{proto: tid.Protocol(), port: tid, device: tid.Device(), tport: tport, relPort: prm.relPort}
	if tport == n.tport && (&registration{tid: tid}).coversInitiator(n) {
		return fail(invalidParam(24, -1)) // moving to the caller's own I_T nexus
	}
	dg := p.find(dst)
	if dg == g {
		// The destination is covered by the caller's own registration
		// (ALL_TG_PT or a name-only TransportID): nothing would move.
		return fail(invalidParam(24, -1))
	}
	if dg == nil {
		if len(p.regs) >= maxRegistrations {
			return fail(scsi.NewSense(scsi.KeyIllegalRequest, scsi.ASCInsufficientRegistrationRes))
		}
		dg = &registration{key: prm.sark, tid: tid, tport: tport, relPort: prm.relPort}
		p.regs = append(p.regs, dg)
	}
	p.holder = dg
	if prm.unreg {
		p.remove(g) // g no longer holds the reservation: only the registration goes
	}
	p.aptpl = prm.aptpl
	p.gen++
	return nil
}

// targetPortByRelID finds the name of the target port with a relative
// target port identifier: the task's own, or one the host knows.
func (d *Device) targetPortByRelID(t *stmf.Task, rel uint16) (string, bool) {
	if t.Session != nil && t.Session.Nexus.RelativePortID == rel && t.Session.Nexus.TargetPort != "" {
		return t.Session.Nexus.TargetPort, true
	}
	if h := d.hostOf(); t.Session != nil && h != nil {
		return h.TargetPort(rel)
	}
	return "", false
}

// CDB usage data for REPORT SUPPORTED OPERATION CODES.
var (
	prinUsage        = []byte{scsi.OpPRIn, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0}
	proutUsage       = []byte{scsi.OpPROut, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0}
	proutUsageNoType = []byte{scsi.OpPROut, 0x1f, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0}
)

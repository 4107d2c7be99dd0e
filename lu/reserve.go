package lu

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// Reservations: SCSI-2 RESERVE/RELEASE (SPC-2) and SPC-4 persistent
// reservations (pr.go), and the reservation conflict check every command
// passes before its handler runs.
//
// The two kinds exclude each other: RESERVE conflicts while persistent
// registrations exist and PERSISTENT RESERVE IN/OUT conflict while a
// SCSI-2 reservation exists (SPC-2 5.5.1, SPC-4 5.13.3: we set CRH).
//
// The command path reads one atomic pointer: nil when nothing is reserved
// (the common case), otherwise an immutable snapshot of the reservation.
// Changes are serialised by reservations.mu and published copy-on-write.

// nexusID identifies an I_T nexus: the SCSI initiator port, by the
// TransportIDs the port provider supplied, and the SCSI target port.
type nexusID struct {
	proto   scsi.ProtocolID
	port    scsi.TransportID // initiator port
	device  scsi.TransportID // initiator device: what a name-only registration covers
	tport   string           // SCSI target port name
	relPort uint16           // relative target port identifier
}

func nexusFrom(n *stmf.Nexus) nexusID {
	return nexusID{proto: n.Protocol, port: n.InitiatorPortID, device: n.InitiatorDeviceID,
		tport: n.TargetPort, relPort: n.RelativePortID}
}

// nexusOf is the I_T nexus a task came through (the zero nexusID for a
// task without a session, as in unit tests).
func nexusOf(t *stmf.Task) nexusID {
	if t.Session == nil {
		return nexusID{}
	}
	return nexusFrom(&t.Session.Nexus)
}

// same reports whether a and b are the same I_T nexus.
func (a nexusID) same(b nexusID) bool {
	return a.tport == b.tport && a.port.Equal(b.port)
}

// reservations is an LU's reservation state.
type reservations struct {
	mu sync.Mutex   // serialises every change; held across PR metadata writes
	s2 *nexusID     // SCSI-2 reservation holder, nil when none
	pr *prState     // persistent reservation state, never nil once set up
	jn *journalLink // nil: not replicated (single node)

	// view is what the command path checks: nil when nothing is reserved.
	view atomic.Pointer[resvView]
}

// resvView is an immutable snapshot for the conflict check.
type resvView struct {
	s2 *nexusID
	pr *prState
}

// publishLocked makes the current state visible to the command path.
func (r *reservations) publishLocked() {
	if r.s2 == nil && (r.pr == nil || r.pr.resType == 0) {
		r.view.Store(nil)
		return
	}
	r.view.Store(&resvView{s2: r.s2, pr: r.pr})
}

// reservationConflict is the RESERVATION CONFLICT status.
func reservationConflict() *stmf.Result {
	return &stmf.Result{Status: scsi.StatusReservationConflict}
}

// Command classes for the persistent reservation conflict check, from
// SPC-4 table 63 and SBC-3 table 13 (with ALLOW COMMANDS 011b, which we
// report: TEST UNIT READY passes every type, and MODE SENSE, RECEIVE COPY
// RESULTS, REPORT SUPPORTED OPERATION CODES / TASK MANAGEMENT FUNCTIONS
// and READ DEFECT DATA pass the Write Exclusive types like reads). Each
// command's class is in its table row (command.resv).
type cmdClass uint8

const (
	// clsOther conflicts for every I_T nexus that is not the holder (or,
	// for registrants-only and all-registrants types, not registered):
	// writes, SYNCHRONIZE CACHE, MODE SELECT, and anything unknown.
	clsOther cmdClass = iota
	// clsRead is allowed through the Write Exclusive types and conflicts
	// with the Exclusive Access types.
	clsRead
	// clsAllowed never conflicts with a persistent reservation. PERSISTENT
	// RESERVE OUT, RESERVE and RELEASE are in this class because their own
	// processing decides.
	clsAllowed
)

// reservationCheck returns RESERVATION CONFLICT when the command may not
// run from its I_T nexus, or nil. With nothing reserved it is one atomic
// load.
func (d *Device) reservationCheck(t *stmf.Task, c *command, cdb []byte) *stmf.Result {
	v := d.resv.view.Load()
	if v == nil {
		return nil
	}
	cls, scsi2OK := c.classify(cdb)
	n := nexusOf(t)
	if v.s2 != nil {
		if c.resv == resvPRCommand {
			return reservationConflict()
		}
		if scsi2OK || v.s2.same(n) {
			return nil
		}
		return reservationConflict()
	}
	if v.pr.allows(n, cls) {
		return nil
	}
	return reservationConflict()
}

// ioConflicts reports whether reading (write false) or writing the LU's
// medium on behalf of t's I_T nexus conflicts with a reservation. It is
// for copy managers (EXTENDED COPY) that reach this LU without a command
// of their own.
func (d *Device) ioConflicts(t *stmf.Task, write bool) bool {
	v := d.resv.view.Load()
	if v == nil {
		return false
	}
	n := nexusOf(t)
	if v.s2 != nil {
		return !v.s2.same(n)
	}
	cls := clsRead
	if write {
		cls = clsOther
	}
	return !v.pr.allows(n, cls)
}

// Reset implements stmf.Resetter: a LUN or target reset (nexus nil) and
// the loss or reset of the holder's I_T nexus release a SCSI-2
// reservation. Persistent reservations are not affected (SPC-4 5.13.1).
// A replicated release that the journal does not take is still made here
// (SPC requires it) and logged; the next change this node commits carries
// it.
func (d *Device) Reset(nexus *stmf.Nexus) {
	r := &d.resv
	ctx := context.Background()
	r.mu.Lock()
	if r.jn != nil {
		ctx = r.jn.ctx
	}
	r.mu.Unlock()
	_, err := d.replicated(ctx, func() (*stmf.Result, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.s2 == nil || nexus != nil && !r.s2.same(nexusFrom(nexus)) {
			return nil, nil
		}
		_, err := d.replicateLocked(ctx, r.pr, nil, nil)
		if err == nil || !errors.Is(err, ErrJournalStale) {
			r.s2 = nil
			r.publishLocked()
		}
		return nil, err
	})
	if err == nil {
		return
	}
	if errors.Is(err, ErrJournalStale) { // lost every race: release here all the same
		r.mu.Lock()
		if r.s2 != nil && (nexus == nil || r.s2.same(nexusFrom(nexus))) {
			r.s2 = nil
			r.publishLocked()
		}
		r.mu.Unlock()
	}
	if !errors.Is(err, errNotReplicating) {
		d.log.Error("lu: release of the SCSI-2 reservation not replicated", "guid", d.guid, "err", err)
	}
}

// checkReserveReleaseCDB rejects third-party and extent reservations,
// which SPC-2 made obsolete: 3RDPTY (bit 4), LONGID (bit 1, 10-byte CDBs)
// and EXTENT (bit 0) of byte 1.
func checkReserveReleaseCDB(cdb []byte) *stmf.Result {
	if cdb[1]&0x10 != 0 {
		return fail(invalidField(1, 4))
	}
	if len(cdb) == 10 && cdb[1]&0x02 != 0 {
		return fail(invalidField(1, 1))
	}
	if cdb[1]&0x01 != 0 {
		return fail(invalidField(1, 0))
	}
	return nil
}

// crhLocked applies SPC-4's exceptions to SPC-2 RESERVE and RELEASE while
// persistent registrations exist: from the persistent reservation holder,
// or from a registrant under a registrants-only or all-registrants type,
// the command completes with GOOD and changes nothing; from anyone else
// it conflicts. handled is false when no registration exists (SPC-2 rules
// apply).
func (r *reservations) crhLocked(n nexusID) (res *stmf.Result, handled bool) {
	p := r.pr
	if len(p.regs) == 0 {
		return nil, false
	}
	reg := p.find(n)
	if reg != nil && p.resType != 0 && (p.isHolder(reg) || p.registrantsType()) {
		return good(), true
	}
	return reservationConflict(), true
}

// reserve: RESERVE (6) and RESERVE (10), logical unit reservations only.
func (d *Device) reserve(t *stmf.Task, cdb []byte) *stmf.Result {
	if r := checkReserveReleaseCDB(cdb); r != nil {
		return r
	}
	n := nexusOf(t)
	r := &d.resv
	res, err := d.replicated(t.Context(), func() (*stmf.Result, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if res, ok := r.crhLocked(n); ok {
			return res, nil
		}
		if r.s2 != nil {
			if r.s2.same(n) {
				return good(), nil // the holder may reserve again
			}
			return reservationConflict(), nil
		}
		if _, err := d.replicateLocked(t.Context(), r.pr, &n, nil); err != nil {
			return nil, err
		}
		r.s2 = &n
		r.publishLocked()
		return good(), nil
	})
	if err != nil {
		return d.notReplicated(err)
	}
	return res
}

// release: RELEASE (6) and RELEASE (10). Releasing a reservation held by
// another I_T nexus, or none, is not an error and changes nothing.
func (d *Device) release(t *stmf.Task, cdb []byte) *stmf.Result {
	if r := checkReserveReleaseCDB(cdb); r != nil {
		return r
	}
	n := nexusOf(t)
	r := &d.resv
	res, err := d.replicated(t.Context(), func() (*stmf.Result, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if res, ok := r.crhLocked(n); ok {
			return res, nil
		}
		if r.s2 != nil && r.s2.same(n) {
			if _, err := d.replicateLocked(t.Context(), r.pr, nil, nil); err != nil {
				return nil, err
			}
			r.s2 = nil
			r.publishLocked()
		}
		return good(), nil
	})
	if err != nil {
		return d.notReplicated(err)
	}
	return res
}

package lu

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// Replicated reservations: in a cluster every change of an LU's
// reservation state (PERSISTENT RESERVE OUT, RESERVE, RELEASE and the
// implicit release of a SCSI-2 reservation) is committed to a journal
// shared by the nodes before the command answers GOOD, and every node
// applies the changes the others commit, raising the unit attentions SPC
// asks for on its own sessions. The conflict check on the command path
// never touches the journal: it reads the published snapshot as always.

// JournalEntry is one stored version of an LU's reservation state.
type JournalEntry struct {
	State []byte // version 3 encoding; empty: no reservation state
	Rev   int64  // the journal's revision of the state; 0: none stored
}

// ReservationJournal stores the reservation state of LUs, one entry per
// LU, shared by the nodes of a cluster (internal/cluster has the etcd
// implementation).
type ReservationJournal interface {
	// Commit stores state for guid if the stored revision is still prev
	// (0: nothing stored) and returns the new revision. It fails with an
	// error wrapping ErrJournalStale when another writer got there first.
	Commit(ctx context.Context, guid stmf.GUID, state []byte, prev int64) (int64, error)
	// Load returns the stored state (Rev 0 when there is none).
	Load(ctx context.Context, guid stmf.GUID) (JournalEntry, error)
	// Watch delivers every state stored after revision after, in order,
	// until ctx is done (then the channel is closed). A deleted entry
	// arrives with an empty State.
	Watch(ctx context.Context, guid stmf.GUID, after int64) <-chan JournalEntry
}

// ErrJournalStale: the journal holds a newer state than the one a change
// was made on.
var ErrJournalStale = errors.New("lu: reservation state changed on another node")

// StaleError is ErrJournalStale with the entry the journal holds, so that
// the change can be redone at once even when the watch lags.
type StaleError struct {
	Current JournalEntry // Rev 0: not known
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("%v (now at revision %d)", ErrJournalStale, e.Current.Rev)
}

// Is makes errors.Is(err, ErrJournalStale) hold.
func (e *StaleError) Is(target error) bool { return target == ErrJournalStale }

// errNotReplicating: the LU stopped replicating its reservations
// (StopReplicating, Close); changes are refused rather than kept only here.
var errNotReplicating = errors.New("lu: reservations are no longer replicated")

const (
	// journalTries bounds the attempts of a change that keeps losing the
	// race to other nodes.
	journalTries = 16
	// journalCommitTimeout bounds one commit; an initiator retries the
	// command (NOT READY, TRANSITIONING) rather than wait longer.
	journalCommitTimeout = 5 * time.Second
	// journalWatchGrace is how long a change that lost a race waits for
	// the watch to bring the newer state (each change in order, with its
	// notifications) before taking the state the journal answered with.
	journalWatchGrace = 100 * time.Millisecond
	// journalMax bounds one encoded state: well under etcd's default
	// request limit (1.5 MiB) with 512 registrations of maximal names.
	journalMax = 1 << 20
)

// journalLink is an LU's connection to its journal (reservations.jn).
type journalLink struct {
	j    ReservationJournal
	rev  int64           // the revision the published state corresponds to
	ctx  context.Context // done: replication stopped
	stop context.CancelFunc
	// advanced is closed (and replaced) whenever rev moves on.
	advanced chan struct{}
}

// setRevLocked records a new revision and wakes syncReservations.
func (jn *journalLink) setRevLocked(rev int64) {
	jn.rev = rev
	close(jn.advanced)
	jn.advanced = make(chan struct{})
}

// ReplicateReservations makes the LU keep its reservation state in j: the
// state stored there replaces the local one (the metadata's APTPL state
// seeds an empty journal), every change is committed to j before GOOD, and
// the changes other nodes commit are applied, with their unit attentions,
// until StopReplicating or Close. ctx bounds the loading only (and
// journalCommitTimeout at most). A cluster node calls it when it opens an
// LU, before the LU is registered with stmf, owner or not: PERSISTENT
// RESERVE IN and OUT run on standby ports too.
func (d *Device) ReplicateReservations(ctx context.Context, j ReservationJournal) error {
	r := &d.resv
	r.mu.Lock()
	switch {
	case d.state.Load()&closingBit != 0:
		r.mu.Unlock()
		return errClosed
	case r.jn != nil:
		r.mu.Unlock()
		return fmt.Errorf("lu: %s already replicates its reservations", d.guid)
	}
	lctx, cancel := context.WithTimeout(ctx, journalCommitTimeout)
	defer cancel()
	e, err := j.Load(lctx, d.guid)
	if err == nil && e.Rev == 0 {
		e, err = d.seedJournalLocked(lctx, j)
	}
	if err != nil {
		r.mu.Unlock()
		return fmt.Errorf("lu: loading the reservations of %s: %w", d.guid, err)
	}
	st, err := decodeJournal(e.State)
	if err != nil {
		r.mu.Unlock()
		return fmt.Errorf("lu: reservations of %s in the journal: %w", d.guid, err)
	}
	life, stop := context.WithCancel(context.WithoutCancel(ctx))
	r.jn = &journalLink{j: j, rev: e.Rev, ctx: life, stop: stop, advanced: make(chan struct{})}
	r.pr, r.s2 = st.pr, st.s2
	r.publishLocked()
	r.mu.Unlock()
	go d.watchJournal(life, j, e.Rev)
	return nil
}

// seedJournalLocked stores the local state in an empty journal; when
// another node seeds it first, its state is the one returned.
func (d *Device) seedJournalLocked(ctx context.Context, j ReservationJournal) (JournalEntry, error) {
	enc, err := encodeJournal(d.resv.pr, d.resv.s2, nil)
	if err != nil {
		return JournalEntry{}, err
	}
	rev, err := j.Commit(ctx, d.guid, enc, 0)
	if errors.Is(err, ErrJournalStale) {
		return j.Load(ctx, d.guid)
	}
	return JournalEntry{State: enc, Rev: rev}, err
}

// StopReplicating stops committing and watching: a node handing the LU
// over calls it before its sessions end, so that their ends do not
// release SCSI-2 reservations on the node taking over. Reservation
// changes are refused afterwards.
func (d *Device) StopReplicating() {
	r := &d.resv
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.jn != nil {
		r.jn.stop()
	}
}

// watchJournal applies the states other nodes commit.
func (d *Device) watchJournal(ctx context.Context, j ReservationJournal, after int64) {
	for e := range j.Watch(ctx, d.guid, after) {
		if err := d.applyJournal(e, true); err != nil {
			d.log.Error("lu: cannot apply replicated reservations", "guid", d.guid, "rev", e.Rev, "err", err)
		}
	}
}

// syncReservations catches up with the journal after a commit lost a race
// (stale is the commit's error): the watch normally brings the newer state
// within milliseconds, each change in order with its notifications; if it
// does not, the state the journal answered with (or loads now) is applied
// and only its own change's notifications are raised.
func (d *Device) syncReservations(ctx context.Context, stale error) error {
	var se *StaleError
	target := int64(0) // 0: any newer revision
	if errors.As(stale, &se) {
		target = se.Current.Rev
	}
	r := &d.resv
	r.mu.Lock()
	jn := r.jn
	if jn == nil {
		r.mu.Unlock()
		return nil
	}
	if target == 0 {
		target = jn.rev + 1
	}
	grace := time.NewTimer(journalWatchGrace)
	defer grace.Stop()
	for jn.rev < target {
		advanced := jn.advanced
		r.mu.Unlock()
		select {
		case <-advanced:
		case <-grace.C:
			if se != nil && se.Current.Rev > 0 {
				return d.applyJournal(se.Current, true)
			}
			lctx, cancel := context.WithTimeout(ctx, journalCommitTimeout)
			defer cancel()
			e, err := jn.j.Load(lctx, d.guid)
			if err != nil {
				return err
			}
			return d.applyJournal(e, true)
		case <-ctx.Done():
			return ctx.Err()
		}
		r.mu.Lock()
	}
	r.mu.Unlock()
	return nil
}

// applyJournal publishes a state stored at a revision newer than the
// local one, and raises the notifications of its change when notify is
// set. Older or equal revisions (this node's own commits) are ignored.
func (d *Device) applyJournal(e JournalEntry, notify bool) error {
	st, err := decodeJournal(e.State)
	if err != nil {
		return err
	}
	r := &d.resv
	r.mu.Lock()
	if r.jn == nil || e.Rev <= r.jn.rev {
		r.mu.Unlock()
		return nil
	}
	r.jn.setRevLocked(e.Rev)
	r.pr, r.s2 = st.pr, st.s2
	r.publishLocked()
	r.mu.Unlock()
	if notify {
		d.prAfter(nil, st.change)
	}
	return nil
}

// replicateLocked commits the state (p, s2) and the change out to the
// journal, if there is one. res is an answer for the initiator (the state
// cannot be encoded), err a replication failure.
func (d *Device) replicateLocked(ctx context.Context, p *prState, s2 *nexusID, out *prOutcome) (*stmf.Result, error) {
	jn := d.resv.jn
	if jn == nil {
		return nil, nil
	}
	if jn.ctx.Err() != nil {
		return nil, errNotReplicating
	}
	enc, err := encodeJournal(p, s2, out)
	if err != nil {
		return fail(scsi.NewSense(scsi.KeyIllegalRequest, scsi.ASCInsufficientRegistrationRes)), nil
	}
	cctx, cancel := context.WithTimeout(ctx, journalCommitTimeout)
	defer cancel()
	rev, err := jn.j.Commit(cctx, d.guid, enc, jn.rev)
	if err != nil {
		return nil, err
	}
	jn.setRevLocked(rev)
	return nil, nil
}

// notReplicated is the answer to a change the journal did not take: the
// LU is in transition as far as the initiator can tell, and it retries.
func (d *Device) notReplicated(err error) *stmf.Result {
	d.log.Warn("lu: reservation change not replicated", "guid", d.guid, "err", err)
	return fail(scsi.NewSense(scsi.KeyNotReady, scsi.ASCLUNotAccessibleTransitioning))
}

// replicated retries a change (RESERVE, RELEASE, implicit release) that
// lost a race to another node on the journal's newer state. once returns
// a replication failure as err.
func (d *Device) replicated(ctx context.Context, once func() (*stmf.Result, error)) (*stmf.Result, error) {
	for attempt := 1; ; attempt++ {
		res, err := once()
		if err != nil && errors.Is(err, ErrJournalStale) && attempt < journalTries && d.syncReservations(ctx, err) == nil {
			continue
		}
		return res, err
	}
}

package lu

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// memJournal is an in-memory ReservationJournal shared by the devices of
// a test, as etcd is shared by the nodes of a cluster.
type memJournal struct {
	mu       sync.Mutex
	rev      int64
	entries  map[stmf.GUID]JournalEntry
	watchers map[*memWatch]bool
	commits  int
	loads    int
	fail     []error                   // returned by the next commits, in order
	onCommit func(guid stmf.GUID) bool // runs before a commit is stored; false drops it silently
	// plainStale: a lost race answers ErrJournalStale without the stored
	// entry (the device then loads it).
	plainStale bool
}

// errStaleNow, given to failNext, answers a StaleError with the stored
// entry although the commit's revision is current.
var errStaleNow = errors.New("stale now")

type memWatch struct {
	guid stmf.GUID
	ch   chan JournalEntry
}

func newMemJournal() *memJournal {
	return &memJournal{entries: map[stmf.GUID]JournalEntry{}, watchers: map[*memWatch]bool{}}
}

func (m *memJournal) Commit(_ context.Context, guid stmf.GUID, state []byte, prev int64) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.fail) > 0 {
		err := m.fail[0]
		m.fail = m.fail[1:]
		if err == errStaleNow {
			err = &StaleError{Current: m.entries[guid]}
		}
		return 0, err
	}
	if cur := m.entries[guid]; cur.Rev != prev {
		if m.plainStale {
			return 0, fmt.Errorf("stored %d, had %d: %w", cur.Rev, prev, ErrJournalStale)
		}
		return 0, fmt.Errorf("had %d: %w", prev, &StaleError{Current: cur})
	}
	if m.onCommit != nil && !m.onCommit(guid) {
		return 0, errors.New("commit dropped")
	}
	m.rev++
	e := JournalEntry{State: append([]byte(nil), state...), Rev: m.rev}
	m.entries[guid] = e
	m.commits++
	for w := range m.watchers {
		if w.guid == guid {
			w.ch <- e // buffered generously: tests make few changes
		}
	}
	return m.rev, nil
}

func (m *memJournal) Load(_ context.Context, guid stmf.GUID) (JournalEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loads++
	return m.entries[guid], nil
}

func (m *memJournal) Watch(ctx context.Context, guid stmf.GUID, after int64) <-chan JournalEntry {
	w := &memWatch{guid: guid, ch: make(chan JournalEntry, 1024)}
	m.mu.Lock()
	m.watchers[w] = true
	if e := m.entries[guid]; e.Rev > after { // committed before the watch began
		w.ch <- e
	}
	m.mu.Unlock()
	go func() {
		<-ctx.Done()
		m.mu.Lock()
		delete(m.watchers, w)
		close(w.ch)
		m.mu.Unlock()
	}()
	return w.ch
}

// stored returns the decoded state of guid.
func (m *memJournal) stored(t *testing.T, guid stmf.GUID) journalState {
	t.Helper()
	m.mu.Lock()
	e := m.entries[guid]
	m.mu.Unlock()
	st, err := decodeJournal(e.State)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (m *memJournal) commitCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.commits
}

func (m *memJournal) loadCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.loads
}

func (m *memJournal) failNext(errs ...error) {
	m.mu.Lock()
	m.fail = append(m.fail, errs...)
	m.mu.Unlock()
}

// deafJournal hides the other nodes' changes from a device (its watch
// never delivers), so that its next commit is stale.
type deafJournal struct{ *memJournal }

func (deafJournal) Watch(ctx context.Context, _ stmf.GUID, _ int64) <-chan JournalEntry {
	ch := make(chan JournalEntry)
	go func() { <-ctx.Done(); close(ch) }()
	return ch
}

const journalGUID = "600144f0123456780000000000000001"

// newJournalEnv is an LU named journalGUID replicating through j, in its
// own framework with target ports tpgt and tpgt+1 (a node).
func newJournalEnv(t *testing.T, j ReservationJournal, tpgt uint16) *prEnv {
	t.Helper()
	guid, err := stmf.ParseGUID(journalGUID)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	d, err := createFile(context.Background(), fileConfig{DataFile: filepath.Join(dir, "lu.img"), Size: 1 << 20, GUID: guid}, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := d.ReplicateReservations(ctx, j); err != nil {
		t.Fatal(err)
	}
	fw := stmf.New(quietLog())
	if err := fw.RegisterLU(d); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.AddView(d.GUID(), stmf.ViewEntry{}, true); err != nil {
		t.Fatal(err)
	}
	e := &prEnv{t: t, d: d, fw: fw}
	for i := range uint16(2) {
		p, err := fw.RegisterPort(iscsiPortSpec(prTarget, tpgt+i))
		if err != nil {
			t.Fatal(err)
		}
		e.ports = append(e.ports, p)
	}
	return e
}

// eventually polls cond for up to five seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// genOf is the device's PRGENERATION (read under the lock).
func genOf(d *Device) uint32 {
	d.resv.mu.Lock()
	defer d.resv.mu.Unlock()
	return d.resv.pr.gen
}

// TestReplicatedCommitsBeforeGood: every reservation change is committed to
// the journal while the old state is still the published one, and the
// committed state is the one the device then shows.
func TestReplicatedCommitsBeforeGood(t *testing.T) {
	res6 := []byte{scsi.OpReserve6, 0, 0, 0, 0, 0}
	rel6 := []byte{scsi.OpRelease6, 0, 0, 0, 0, 0}
	tidB := tidBytes(prInitB, "000000000002")
	cases := []struct {
		name  string
		setup func(e *prEnv, a, b *stmf.Session)
		do    func(e *prEnv, a, b *stmf.Session) resp
	}{
		{"register", nil, func(e *prEnv, a, _ *stmf.Session) resp { return e.prout(a, scsi.PROutRegister, 0, 0, 1, 0) }},
		{"register-ignore", nil, func(e *prEnv, a, _ *stmf.Session) resp {
			return e.prout(a, scsi.PROutRegisterIgnore, 0, 0, 1, 0)
		}},
		{"register-spec-i-pt", nil, func(e *prEnv, a, _ *stmf.Session) resp {
			return e.prout(a, scsi.PROutRegister, 0, 0, 1, pfSpecIPT, tidB)
		}},
		{"unregister", func(e *prEnv, a, _ *stmf.Session) { e.mustProut(a, scsi.PROutRegister, 0, 0, 1, 0) },
			func(e *prEnv, a, _ *stmf.Session) resp { return e.prout(a, scsi.PROutRegister, 0, 1, 0, 0) }},
		{"reserve", func(e *prEnv, a, _ *stmf.Session) { e.mustProut(a, scsi.PROutRegister, 0, 0, 1, 0) },
			func(e *prEnv, a, _ *stmf.Session) resp { return e.prout(a, scsi.PROutReserve, prTypeWE, 1, 0, 0) }},
		{"release", func(e *prEnv, a, _ *stmf.Session) {
			e.mustProut(a, scsi.PROutRegister, 0, 0, 1, 0)
			e.mustProut(a, scsi.PROutReserve, prTypeWE, 1, 0, 0)
		}, func(e *prEnv, a, _ *stmf.Session) resp { return e.prout(a, scsi.PROutRelease, prTypeWE, 1, 0, 0) }},
		{"clear", func(e *prEnv, a, _ *stmf.Session) { e.mustProut(a, scsi.PROutRegister, 0, 0, 1, 0) },
			func(e *prEnv, a, _ *stmf.Session) resp { return e.prout(a, scsi.PROutClear, 0, 1, 0, 0) }},
		{"preempt", func(e *prEnv, a, b *stmf.Session) {
			e.mustProut(a, scsi.PROutRegister, 0, 0, 1, 0)
			e.mustProut(b, scsi.PROutRegister, 0, 0, 2, 0)
			e.mustProut(b, scsi.PROutReserve, prTypeWE, 2, 0, 0)
		}, func(e *prEnv, a, _ *stmf.Session) resp { return e.prout(a, scsi.PROutPreempt, prTypeEA, 1, 2, 0) }},
		{"preempt-abort", func(e *prEnv, a, b *stmf.Session) {
			e.mustProut(a, scsi.PROutRegister, 0, 0, 1, 0)
			e.mustProut(b, scsi.PROutRegister, 0, 0, 2, 0)
		}, func(e *prEnv, a, _ *stmf.Session) resp { return e.prout(a, scsi.PROutPreemptAbort, prTypeEA, 1, 2, 0) }},
		{"register-and-move", func(e *prEnv, a, _ *stmf.Session) {
			e.mustProut(a, scsi.PROutRegister, 0, 0, 1, 0)
			e.mustProut(a, scsi.PROutReserve, prTypeWE, 1, 0, 0)
		}, func(e *prEnv, a, _ *stmf.Session) resp {
			p := moveParam(1, 7, false, false, 1, tidB)
			return e.run(a, proutCDB(scsi.PROutRegisterMove, 0, prTypeWE, uint32(len(p))), p)
		}},
		{"reserve6", nil, func(e *prEnv, a, _ *stmf.Session) resp { return e.run(a, res6, nil) }},
		{"release6", func(e *prEnv, a, _ *stmf.Session) { expectGood(e.t, "RESERVE", e.run(a, res6, nil)) },
			func(e *prEnv, a, _ *stmf.Session) resp { return e.run(a, rel6, nil) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := newMemJournal()
			e := newJournalEnv(t, j, 1)
			a, b := e.session(0, prInitA, 1), e.session(0, prInitB, 2)
			if tc.setup != nil {
				tc.setup(e, a, b)
			}
			before := j.commitCount()
			e.d.resv.mu.Lock()
			viewBefore, prBefore := e.d.resv.view.Load(), e.d.resv.pr
			e.d.resv.mu.Unlock()
			var unpublished bool
			j.onCommit = func(stmf.GUID) bool {
				// The committing goroutine holds resv.mu: the published
				// state must still be the one the command started from.
				unpublished = e.d.resv.view.Load() == viewBefore && e.d.resv.pr == prBefore
				return true
			}
			expectGood(t, tc.name, tc.do(e, a, b))
			if got := j.commitCount(); got != before+1 {
				t.Fatalf("%d commits, want 1", got-before)
			}
			if !unpublished {
				t.Fatal("the change was published before the journal took it")
			}
			st := j.stored(t, e.d.GUID())
			e.d.resv.mu.Lock()
			local, _ := encodeJournal(e.d.resv.pr, e.d.resv.s2, nil)
			e.d.resv.mu.Unlock()
			stored, _ := encodeJournal(st.pr, st.s2, nil)
			if string(local) != string(stored) {
				t.Fatalf("journal holds\n% x\nthe device shows\n% x", stored, local)
			}
		})
	}
}

// TestReplicatedCommitFailure: a change the journal does not take answers
// NOT READY (transitioning, so the initiator retries) and changes nothing;
// so does one that keeps losing races.
func TestReplicatedCommitFailure(t *testing.T) {
	down := errors.New("etcd: no leader")
	alwaysStale := make([]error, journalTries)
	for i := range alwaysStale {
		alwaysStale[i] = errStaleNow
	}
	for _, tc := range []struct {
		name string
		errs []error
	}{
		{"unreachable", []error{down}},
		{"always stale", alwaysStale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := newMemJournal()
			e := newJournalEnv(t, j, 1)
			a, b := e.session(0, prInitA, 1), e.session(0, prInitB, 2)
			e.mustProut(a, scsi.PROutRegister, 0, 0, 1, 0)
			gen, keys := e.readKeys(a)

			j.failNext(tc.errs...)
			expectSense(t, "REGISTER", e.prout(b, scsi.PROutRegister, 0, 0, 2, 0), scsi.KeyNotReady, scsi.ASCLUNotAccessibleTransitioning)
			if g, k := e.readKeys(a); g != gen || !reflect.DeepEqual(k, keys) {
				t.Fatalf("after a failed commit: generation %d keys %v, want %d %v", g, k, gen, keys)
			}
			j.failNext(tc.errs...)
			expectSense(t, "PR RESERVE", e.prout(a, scsi.PROutReserve, prTypeEA, 1, 0, 0), scsi.KeyNotReady, scsi.ASCLUNotAccessibleTransitioning)
			if held, _, _ := e.readReservation(a); held {
				t.Fatal("a reservation the journal did not take is held")
			}
			expectGood(t, "WRITE from B", e.run(b, write10CDB, block512))

			e.mustProut(a, scsi.PROutClear, 0, 1, 0, 0)
			j.failNext(tc.errs...)
			expectSense(t, "RESERVE(6)", e.run(a, []byte{scsi.OpReserve6, 0, 0, 0, 0, 0}, nil), scsi.KeyNotReady, scsi.ASCLUNotAccessibleTransitioning)
			expectGood(t, "WRITE from B after the failed RESERVE", e.run(b, write10CDB, block512))
			if st := j.stored(t, e.d.GUID()); st.s2 != nil || len(st.pr.regs) != 0 {
				t.Fatalf("journal holds %d registrations and SCSI-2 holder %v", len(st.pr.regs), st.s2)
			}
		})
	}
}

// TestReplicatedStaleRedone: a node that has not seen another node's change
// commits on a stale revision; the change is redone on the newer state
// and neither is lost.
func TestReplicatedStaleRedone(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain=%v", plain), func(t *testing.T) {
			j := newMemJournal()
			j.plainStale = plain
			na := newJournalEnv(t, j, 1)
			nb := newJournalEnv(t, deafJournal{j}, 3)
			x, y := na.session(0, prInitA, 1), nb.session(0, prInitB, 2)
			na.mustProut(x, scsi.PROutRegister, 0, 0, 1, 0)
			nb.mustProut(y, scsi.PROutRegister, 0, 0, 2, 0) // B never saw key 1
			for _, n := range []struct {
				e *prEnv
				s *stmf.Session
			}{{na, x}, {nb, y}} {
				eventually(t, "both keys on both nodes", func() bool {
					gen, keys := n.e.readKeys(n.s)
					return gen == 2 && reflect.DeepEqual(keys, []uint64{1, 2})
				})
			}
		})
	}
}

// TestReplicatedRemoteUAs: a change committed on one node reaches the other
// node's sessions with the unit attentions SPC asks for, and the tasks
// PREEMPT AND ABORT aborts there are aborted.
func TestReplicatedRemoteUAs(t *testing.T) {
	j := newMemJournal()
	na := newJournalEnv(t, j, 1) // ports 1, 2
	nb := newJournalEnv(t, j, 3) // ports 3, 4
	x, w := na.session(0, prInitA, 1), na.session(0, prInitC, 3)
	y, z := nb.session(0, prInitB, 2), nb.session(0, prInitC, 4)
	na.clearUAs(x, w)
	nb.clearUAs(y, z)
	na.mustProut(x, scsi.PROutRegister, 0, 0, 1, 0)
	na.mustProut(w, scsi.PROutRegister, 0, 0, 3, 0)
	na.mustProut(x, scsi.PROutReserve, prTypeWERO, 1, 0, 0)
	eventually(t, "node B sees the reservation", func() bool {
		held, key, typ := nb.readReservation(y)
		return held && key == 1 && typ == prTypeWERO
	})
	nb.mustProut(y, scsi.PROutRegister, 0, 0, 2, 0)
	nb.mustProut(z, scsi.PROutRegister, 0, 0, 4, 0)
	eventually(t, "node A sees four keys", func() bool { _, k := na.readKeys(x); return len(k) == 4 })

	// X's write is waiting for its Data-Out when B preempts X with abort.
	victim := na.start(x, 10, write10CDB, nil, true)
	nb.mustProut(y, scsi.PROutPreemptAbort, prTypeWE, 2, 1, 0)
	if r := victim.wait(t); r != nil {
		t.Fatalf("the preempted task on node A completed with %v", r.Status)
	}
	eventually(t, "node A sees the preemption", func() bool {
		held, key, typ := na.readReservation(w)
		return held && key == 2 && typ == prTypeWE
	})
	for _, tc := range []struct {
		name string
		n    *prEnv
		s    *stmf.Session
		want []scsi.ASC
	}{
		{"X on A (preempted)", na, x, []scsi.ASC{scsi.ASCRegistrationsPreempted}},
		{"W on A (type changed)", na, w, []scsi.ASC{scsi.ASCReservationsReleased}},
		{"Y on B (the preemptor)", nb, y, nil},
		{"Z on B (type changed)", nb, z, []scsi.ASC{scsi.ASCReservationsReleased}},
	} {
		if got := tc.n.pendingUAs(tc.s); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: unit attentions %04x, want %04x", tc.name, got, tc.want)
		}
	}
	expectConflict(t, "WRITE from X on A", na.run(x, write10CDB, block512))

	nb.mustProut(y, scsi.PROutClear, 0, 2, 0, 0)
	eventually(t, "node A sees the clear", func() bool { _, k := na.readKeys(w); return len(k) == 0 })
	if got := na.pendingUAs(w); !reflect.DeepEqual(got, []scsi.ASC{scsi.ASCReservationsPreempted}) {
		t.Errorf("W on A after CLEAR: unit attentions %04x, want RESERVATIONS PREEMPTED", got)
	}
	if got := na.pendingUAs(x); got != nil {
		t.Errorf("X on A (no longer registered) after CLEAR: unit attentions %04x, want none", got)
	}
}

// TestReplicatedImplicitRelease: the loss of the holder's I_T nexus and a
// LUN reset release a SCSI-2 reservation in the journal too, and the
// other node lets everyone write again.
func TestReplicatedImplicitRelease(t *testing.T) {
	res6 := []byte{scsi.OpReserve6, 0, 0, 0, 0, 0}
	for _, how := range []string{"nexus loss", "lun reset"} {
		t.Run(how, func(t *testing.T) {
			j := newMemJournal()
			na, nb := newJournalEnv(t, j, 1), newJournalEnv(t, j, 3)
			x, y := na.session(0, prInitA, 1), nb.session(0, prInitB, 2)
			expectGood(t, "RESERVE", na.run(x, res6, nil))
			eventually(t, "node B sees the SCSI-2 reservation", func() bool {
				return nb.run(y, write10CDB, block512).status == scsi.StatusReservationConflict
			})
			if how == "nexus loss" {
				x.Close()
			} else {
				na.d.Reset(nil)
			}
			if st := j.stored(t, na.d.GUID()); st.s2 != nil {
				t.Fatalf("journal still holds the SCSI-2 reservation of %v", st.s2.port)
			}
			eventually(t, "node B sees the release", func() bool {
				return nb.run(y, write10CDB, block512).status == scsi.StatusGood
			})
		})
	}
}

// TestReplicatedTakeover: a device that starts replicating loads the
// journal's state (not its metadata's) and keeps registrations of I_T
// nexuses it has never seen; after StopReplicating changes are refused.
func TestReplicatedTakeover(t *testing.T) {
	j := newMemJournal()
	na := newJournalEnv(t, j, 1)
	x := na.session(0, prInitA, 1)
	na.mustProut(x, scsi.PROutRegister, 0, 0, 1, 0)
	na.mustProut(x, scsi.PROutReserve, prTypeWE, 1, 0, 0)
	na.d.StopReplicating()
	expectSense(t, "REGISTER after StopReplicating", na.prout(x, scsi.PROutRegister, 0, 1, 5, 0),
		scsi.KeyNotReady, scsi.ASCLUNotAccessibleTransitioning)

	nb := newJournalEnv(t, j, 3)
	y := nb.session(0, prInitB, 2)
	if held, key, typ := nb.readReservation(y); !held || key != 1 || typ != prTypeWE {
		t.Fatalf("taken over reservation: held %v key %d type %d", held, key, typ)
	}
	expectConflict(t, "WRITE from Y", nb.run(y, write10CDB, block512))
	// X comes back through node B's port 3 (registered through port 1):
	// its registration names node A's port, so it is not the holder here.
	x2 := nb.session(0, prInitA, 1)
	expectConflict(t, "WRITE from X through another port", nb.run(x2, write10CDB, block512))
	if err := nb.d.ReplicateReservations(context.Background(), j); err == nil {
		t.Fatal("a second ReplicateReservations succeeded")
	}
}

// TestReplicatedOnlyChangesTouchJournal: commands that change nothing
// (reads, writes, conflicts, PERSISTENT RESERVE IN, a RESERVE the holder
// repeats) never reach the journal; with a journal, APTPL state lives in
// the journal, not in the shared store's metadata.
func TestReplicatedOnlyChangesTouchJournal(t *testing.T) {
	j := newMemJournal()
	e := newJournalEnv(t, j, 1)
	x, y := e.session(0, prInitA, 1), e.session(0, prInitB, 2)
	e.mustProut(x, scsi.PROutRegister, 0, 0, 1, pfAPTPL)
	e.mustProut(x, scsi.PROutReserve, prTypeWE, 1, 0, 0)
	commits, loads := j.commitCount(), j.loadCount()
	for range 20 {
		expectGood(t, "WRITE from the holder", e.run(x, write10CDB, block512))
		expectGood(t, "READ from Y", e.run(y, read10CDB, nil))
		expectConflict(t, "WRITE from Y", e.run(y, write10CDB, block512))
		e.readKeys(y)
		e.readReservation(y)
		e.mustProut(x, scsi.PROutReserve, prTypeWE, 1, 0, 0) // the holder again: no change
	}
	if c, l := j.commitCount(), j.loadCount(); c != commits || l != loads {
		t.Fatalf("commands that change nothing made %d commits and %d loads", c-commits, l-loads)
	}
	if st := j.stored(t, e.d.GUID()); !st.pr.aptpl || len(st.pr.regs) != 1 {
		t.Fatalf("journal: APTPL %v with %d registrations", st.pr.aptpl, len(st.pr.regs))
	}
	md, err := e.d.store.LoadMeta()
	if err != nil {
		t.Fatal(err)
	}
	if len(md.PR) != 0 {
		t.Fatalf("a replicating LU wrote %d bytes of reservations into the shared metadata", len(md.PR))
	}
}

// TestReplicatedCodec: the version 3 encoding round-trips and rejects every
// truncation.
func TestReplicatedCodec(t *testing.T) {
	a := iscsiInitiator(prInitA, 1)
	b := iscsiInitiator(prInitB, 2)
	ra := &registration{key: 1, tid: a.PortID, tport: "tp1", relPort: 1}
	rb := &registration{key: 2, tid: b.DeviceID, tport: "tp2", relPort: 2, allTgPt: true}
	p := &prState{gen: 7, aptpl: true, regs: []*registration{ra, rb}, resType: prTypeWERO, holder: ra}
	nx := nexusID{proto: scsi.ProtocolISCSI, port: a.PortID, device: a.DeviceID, tport: "tp1", relPort: 1}
	out := &prOutcome{uas: []prUA{{asc: scsi.ASCRegistrationsPreempted, regs: []*registration{rb}, except: nx}},
		aborted: []*registration{rb}}
	for _, tc := range []struct {
		name string
		s2   *nexusID
		out  *prOutcome
	}{{"plain", nil, nil}, {"scsi-2", &nx, nil}, {"change", nil, out}} {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := encodeJournal(p, tc.s2, tc.out)
			if err != nil {
				t.Fatal(err)
			}
			st, err := decodeJournal(enc)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := encodeJournal(st.pr, st.s2, st.change)
			if string(again) != string(enc) {
				t.Fatalf("round trip changed the encoding:\n% x\n% x", enc, again)
			}
			if (tc.s2 == nil) != (st.s2 == nil) || tc.s2 != nil && (!st.s2.same(*tc.s2) || st.s2.device != tc.s2.device) {
				t.Fatalf("SCSI-2 holder %+v, want %+v", st.s2, tc.s2)
			}
			if tc.out != nil && (st.change == nil || !st.change.uas[0].match(nexusID{port: b.PortID, device: b.DeviceID, tport: "tp9"}) ||
				st.change.uas[0].match(nx)) {
				t.Fatal("decoded unit attention matches the wrong nexuses")
			}
			if q, err := decodePR(enc); err != nil || q.gen != 7 || q.holder == nil || q.holder.key != 1 {
				t.Fatalf("decodePR of version 3: %+v, %v", q, err)
			}
			for i := 1; i < len(enc); i++ {
				if _, err := decodeJournal(enc[:i]); err == nil {
					t.Fatalf("truncated to %d bytes: decoded", i)
				}
			}
			if _, err := decodeJournal(append(enc, 0)); err == nil {
				t.Fatal("trailing byte: decoded")
			}
		})
	}
}

// FuzzDecodeJournal: whatever a journal holds, decoding never panics and
// what decodes re-encodes to a state that decodes the same.
func FuzzDecodeJournal(f *testing.F) {
	a := iscsiInitiator(prInitA, 1)
	g := &registration{key: 1, tid: a.PortID, tport: "tp1", relPort: 1}
	p := &prState{gen: 3, regs: []*registration{g}, resType: prTypeEA, holder: g}
	nx := nexusID{port: a.PortID, device: a.DeviceID, tport: "tp1", relPort: 1}
	for _, out := range []*prOutcome{nil, {uas: []prUA{{asc: scsi.ASCReservationsPreempted, regs: []*registration{g}, except: nx}}, aborted: []*registration{g}}} {
		enc, err := encodeJournal(p, &nx, out)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeJournal(b)
		if err != nil {
			return
		}
		enc, err := encodeJournal(st.pr, st.s2, st.change)
		if err != nil {
			t.Fatalf("decoded state does not encode: %v", err)
		}
		again, err := decodeJournal(enc)
		if err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if enc2, _ := encodeJournal(again.pr, again.s2, again.change); string(enc2) != string(enc) {
			t.Fatal("encoding not stable")
		}
	})
}

// TestReplicatedSeedFromMetadata: an LU that joins a cluster with APTPL
// state in its metadata seeds an empty journal with it; a journal that
// already holds a state wins over the metadata.
func TestReplicatedSeedFromMetadata(t *testing.T) {
	guid, err := stmf.ParseGUID(journalGUID)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "lu.img")
	d, err := createFile(context.Background(), fileConfig{DataFile: file, Size: 1 << 20, GUID: guid}, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	e := newPREnvDisk(t, d)
	x := e.session(0, prInitA, 1)
	e.mustProut(x, scsi.PROutRegister, 0, 0, 7, pfAPTPL)

	j := newMemJournal()
	if err := d.ReplicateReservations(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	if st := j.stored(t, guid); !st.pr.aptpl || len(st.pr.regs) != 1 || st.pr.regs[0].key != 7 {
		t.Fatalf("seeded journal: APTPL %v, %d registrations", st.pr.aptpl, len(st.pr.regs))
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// Another cluster's journal holds an empty state: it wins over the
	// key the metadata still holds.
	other := newMemJournal()
	empty, _ := encodeJournal(&prState{}, nil, nil)
	if _, err := other.Commit(context.Background(), guid, empty, 0); err != nil {
		t.Fatal(err)
	}
	d2, err := importFile(context.Background(), file, "", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.Close() })
	if genOf(d2) == 0 {
		t.Fatal("the reopened LU lost its APTPL state before joining")
	}
	if err := d2.ReplicateReservations(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	d2.resv.mu.Lock()
	n := len(d2.resv.pr.regs)
	d2.resv.mu.Unlock()
	if n != 0 {
		t.Fatalf("the journal's empty state did not replace the metadata's: %d registrations", n)
	}
}

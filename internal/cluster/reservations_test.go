package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/cluster/clustertest"
	"github.com/costar-project/costar/lu"
	"github.com/costar-project/costar/lu/backing/filestore"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func resvGUID(t *testing.T) stmf.GUID {
	t.Helper()
	g, err := stmf.ParseGUID("600144f0c0ffee000000000000000001")
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// next receives one entry or fails after five seconds.
func nextEntry(t *testing.T, ch <-chan lu.JournalEntry) lu.JournalEntry {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("watch closed")
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no watch event in 5 s")
	}
	return lu.JournalEntry{}
}

// TestReservationsJournal: commits are compare-and-swap on the revision
// the writer saw, Load returns the latest, Watch delivers each change in
// order (a deletion as an empty state) and closes with its context.
func TestReservationsJournal(t *testing.T) {
	ctx := context.Background()
	j := NewReservationJournal(clustertest.StartClient(t), "/test/resv/", quietLog())
	guid := resvGUID(t)

	if e, err := j.Load(ctx, guid); err != nil || e.Rev != 0 || e.State != nil {
		t.Fatalf("Load of nothing: %+v, %v", e, err)
	}
	r1, err := j.Commit(ctx, guid, []byte("one"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Commit(ctx, guid, []byte("lost"), 0); !errors.Is(err, lu.ErrJournalStale) {
		t.Fatalf("second writer from revision 0: %v, want ErrJournalStale", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := j.Watch(wctx, guid, r1)
	r2, err := j.Commit(ctx, guid, []byte("two"), r1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Commit(ctx, guid, []byte("stale"), r1); !errors.Is(err, lu.ErrJournalStale) {
		t.Fatalf("writer at an old revision: %v, want ErrJournalStale", err)
	}
	if e, err := j.Load(ctx, guid); err != nil || e.Rev != r2 || string(e.State) != "two" {
		t.Fatalf("Load: %+v, %v; want two at %d", e, err, r2)
	}
	if e := nextEntry(t, ch); e.Rev != r2 || string(e.State) != "two" {
		t.Fatalf("watch: %+v, want two at %d", e, r2)
	}
	r3, err := j.Commit(ctx, guid, []byte("three"), r2)
	if err != nil {
		t.Fatal(err)
	}
	if e := nextEntry(t, ch); e.Rev != r3 || string(e.State) != "three" {
		t.Fatalf("watch: %+v, want three at %d", e, r3)
	}
	// A watch from an older revision replays what it missed.
	early := j.Watch(wctx, guid, r1)
	if e := nextEntry(t, early); e.Rev != r2 {
		t.Fatalf("replayed %+v, want revision %d", e, r2)
	}
	if e := nextEntry(t, early); e.Rev != r3 {
		t.Fatalf("replayed %+v, want revision %d", e, r3)
	}
	if err := j.Delete(ctx, guid); err != nil {
		t.Fatal(err)
	}
	if e := nextEntry(t, ch); e.Rev <= r3 || len(e.State) != 0 {
		t.Fatalf("deletion: %+v", e)
	}
	cancel()
	select {
	case _, ok := <-ch:
		for ok {
			_, ok = <-ch
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch not closed after its context ended")
	}
}

// TestReservationsWatchCompacted: a watch from a revision etcd compacted
// away delivers the current state, then the changes after it.
func TestReservationsWatchCompacted(t *testing.T) {
	ctx := context.Background()
	cli := clustertest.StartClient(t)
	j := NewReservationJournal(cli, "", quietLog())
	guid := resvGUID(t)
	var rev int64
	for i := range 5 {
		var err error
		if rev, err = j.Commit(ctx, guid, fmt.Appendf(nil, "s%d", i), rev); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := j.Watch(wctx, guid, 1)
	if e := nextEntry(t, ch); e.Rev != rev || string(e.State) != "s4" {
		t.Fatalf("after compaction: %+v, want s4 at %d", e, rev)
	}
	r, err := j.Commit(ctx, guid, []byte("s5"), rev)
	if err != nil {
		t.Fatal(err)
	}
	if e := nextEntry(t, ch); e.Rev != r || string(e.State) != "s5" {
		t.Fatalf("after compaction: %+v, want s5 at %d", e, r)
	}
}

// The two-node test: two lu.Devices over one backing file, each in its
// own stmf framework (a node) and replicating through the same etcd.

const target = "iqn.2026-12.org.costar:cluster"

// luNode is one stmfd's view of the LU: its device, framework and target
// port (tpgt names it: 1 on node A, 2 on node B).
type luNode struct {
	t    *testing.T
	d    *lu.Device
	fw   *stmf.Framework
	port *stmf.LocalPort
}

func portSpec(tpgt uint16) stmf.PortSpec {
	name := fmt.Sprintf("%s,t,0x%04x", target, tpgt)
	pd, _ := scsi.NameDesignator(name)
	td, _ := scsi.NameDesignator(target)
	return stmf.PortSpec{Protocol: scsi.ProtocolISCSI, TargetName: target, Name: name, Group: tpgt,
		Designators: stmf.PortDesignators{PIV: true, Port: []scsi.Designator{pd}, Target: []scsi.Designator{td}}}
}

func initiator(name string, isid byte) stmf.Initiator {
	id := [6]byte{0x40, 0, 0, 0, 0, isid}
	return stmf.Initiator{Name: name, PortName: fmt.Sprintf("%s,i,0x%x", name, id),
		PortID: scsi.ISCSIPortTransportID(name, id), DeviceID: scsi.ISCSIDeviceTransportID(name)}
}

// openLUNode opens the LU of dataFile as a node would on takeover or as a
// standby: open, replicate reservations, then register with stmf.
func openLUNode(t *testing.T, ctx context.Context, dataFile string, guid stmf.GUID, j lu.ReservationJournal, tpgt uint16) *luNode {
	t.Helper()
	st, err := filestore.Open(ctx, dataFile, "", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	d, err := lu.Open(ctx, st, lu.OpenOptions{Log: quietLog(), Expect: guid})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.ReplicateReservations(ctx, j); err != nil {
		t.Fatal(err)
	}
	fw := stmf.New(quietLog())
	if err := fw.RegisterLU(d); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.AddView(guid, stmf.ViewEntry{}, true); err != nil {
		t.Fatal(err)
	}
	p, err := fw.RegisterPort(portSpec(tpgt))
	if err != nil {
		t.Fatal(err)
	}
	return &luNode{t: t, d: d, fw: fw, port: p}
}

func (n *luNode) session(init stmf.Initiator) *stmf.Session {
	n.t.Helper()
	s, err := n.port.OpenSession(init)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(s.Close)
	return s
}

// transport hands the LU a fixed Data-Out and delivers one result.
type transport struct {
	data []byte
	done chan *stmf.Result
}

func (tr *transport) ReceiveData(context.Context) ([]byte, error) { return tr.data, nil }
func (tr *transport) Deliver(r *stmf.Result)                      { tr.done <- r }
func (tr *transport) Drop()                                       { tr.done <- nil }

// cmd runs a command through stmf (unit attentions apply).
func (n *luNode) cmd(s *stmf.Session, cdb, data []byte) *stmf.Result {
	n.t.Helper()
	tr := &transport{data: data, done: make(chan *stmf.Result, 1)}
	task := stmf.NewTask(tr)
	task.CDB, task.RawLUN = cdb, scsi.EncodeLUN(0)
	task.Dir, task.ExpectedLen = scsi.DirRead, 8192
	if data != nil {
		task.Dir, task.ExpectedLen = scsi.DirWrite, uint32(len(data))
	}
	s.Submit(task)
	select {
	case r := <-tr.done:
		if r == nil {
			n.t.Fatalf("cdb % x dropped", cdb)
		}
		return r
	case <-time.After(10 * time.Second):
		n.t.Fatalf("cdb % x: no answer in 10 s", cdb)
	}
	return nil
}

// uas drains the session's unit attentions with TEST UNIT READY.
func (n *luNode) uas(s *stmf.Session) []scsi.ASC {
	n.t.Helper()
	var out []scsi.ASC
	for range 10 {
		r := n.cmd(s, []byte{scsi.OpTestUnitReady, 0, 0, 0, 0, 0}, nil)
		if r.Status != scsi.StatusCheckCondition {
			return out
		}
		sn, err := scsi.ParseSense(r.Sense)
		if err != nil || sn.Key != scsi.KeyUnitAttention {
			return out
		}
		out = append(out, sn.ASC)
	}
	n.t.Fatal("unit attentions do not stop")
	return nil
}

func (n *luNode) mustGood(what string, r *stmf.Result) *stmf.Result {
	n.t.Helper()
	if r.Status != scsi.StatusGood {
		n.t.Fatalf("%s: status %v sense % x, want GOOD", what, r.Status, r.Sense)
	}
	return r
}

// prout sends PERSISTENT RESERVE OUT with a basic parameter list.
func (n *luNode) prout(s *stmf.Session, sa, typ byte, rk, sark uint64) *stmf.Result {
	p := make([]byte, 24)
	binary.BigEndian.PutUint64(p[0:8], rk)
	binary.BigEndian.PutUint64(p[8:16], sark)
	cdb := []byte{scsi.OpPROut, sa, typ, 0, 0, 0, 0, 0, 24, 0}
	return n.cmd(s, cdb, p)
}

// keys is READ KEYS.
func (n *luNode) keys(s *stmf.Session) []uint64 {
	r := n.mustGood("READ KEYS", n.cmd(s, []byte{scsi.OpPRIn, scsi.PRInReadKeys, 0, 0, 0, 0, 0, 0x20, 0, 0}, nil))
	var out []uint64
	for p := r.Data[8:]; len(p) >= 8; p = p[8:] {
		out = append(out, binary.BigEndian.Uint64(p))
	}
	return out
}

// holder is READ RESERVATION: the key and type, 0 0 when none.
func (n *luNode) holder(s *stmf.Session) (uint64, byte) {
	r := n.mustGood("READ RESERVATION", n.cmd(s, []byte{scsi.OpPRIn, scsi.PRInReadReservation, 0, 0, 0, 0, 0, 0x20, 0, 0}, nil))
	if len(r.Data) < 24 {
		return 0, 0
	}
	return binary.BigEndian.Uint64(r.Data[8:16]), r.Data[21] & 0x0f
}

func write10() []byte { return []byte{scsi.OpWrite10, 0, 0, 0, 0, 8, 0, 0, 1, 0} }

// TestReservationsSurviveFailover: nexus X registers and reserves on node
// A; A goes away and node B opens the LU from the same file: the
// reservation is there (Y on B conflicts), X stays registered; when A
// comes back as a standby, a PREEMPT on B reaches X's session on A as
// REGISTRATIONS PREEMPTED.
func TestReservationsSurviveFailover(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	j := NewReservationJournal(clustertest.StartClient(t), "", quietLog())
	dataFile := filepath.Join(t.TempDir(), "shared.img")
	guid := resvGUID(t)
	st, err := filestore.Create(ctx, filestore.Options{DataFile: dataFile, Size: 4 << 20, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	made, err := lu.New(ctx, st, lu.Config{GUID: guid}, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := made.Close(); err != nil {
		t.Fatal(err)
	}
	x, y := initiator("iqn.2026-12.org.costar:x", 1), initiator("iqn.2026-12.org.costar:y", 2)
	const keyX, keyY = 0xa, 0xb

	a := openLUNode(t, ctx, dataFile, guid, j, 1)
	xa := a.session(x)
	a.uas(xa)
	a.mustGood("REGISTER X", a.prout(xa, scsi.PROutRegister, 0, 0, keyX))
	a.mustGood("RESERVE X", a.prout(xa, scsi.PROutReserve, 0x1, keyX, 0)) // Write Exclusive
	a.mustGood("WRITE X", a.cmd(xa, write10(), make([]byte, 512)))

	// Fail over: node A's device goes (as when its stmfd dies; its
	// sessions' ends release nothing), node B takes the LU.
	a.d.StopReplicating()
	if err := a.d.Close(); err != nil {
		t.Fatal(err)
	}
	b := openLUNode(t, ctx, dataFile, guid, j, 2)
	yb := b.session(y)
	b.uas(yb)
	if r := b.cmd(yb, write10(), make([]byte, 512)); r.Status != scsi.StatusReservationConflict {
		t.Fatalf("WRITE from Y on B: status %v, want RESERVATION CONFLICT", r.Status)
	}
	if k := b.keys(yb); !reflect.DeepEqual(k, []uint64{keyX}) {
		t.Fatalf("keys on B: %x, want X's", k)
	}
	if k, typ := b.holder(yb); k != keyX || typ != 1 {
		t.Fatalf("reservation on B: key %x type %d, want X's Write Exclusive", k, typ)
	}

	// Node A returns as a standby; X's session there keeps its
	// registration (made through A's port).
	a2 := openLUNode(t, ctx, dataFile, guid, j, 1)
	xa2 := a2.session(x)
	a2.uas(xa2)
	b.mustGood("REGISTER Y", b.prout(yb, scsi.PROutRegister, 0, 0, keyY))
	b.mustGood("PREEMPT X", b.prout(yb, scsi.PROutPreempt, 0x1, keyY, keyX))
	b.mustGood("WRITE Y", b.cmd(yb, write10(), make([]byte, 512)))
	// Poll node A until the PREEMPT arrives; the unit attention it raises
	// may be reported on one of the polls.
	var seen []scsi.ASC
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r := a2.cmd(xa2, []byte{scsi.OpPRIn, scsi.PRInReadReservation, 0, 0, 0, 0, 0, 0x20, 0, 0}, nil)
		if sn, err := scsi.ParseSense(r.Sense); r.Status == scsi.StatusCheckCondition && err == nil && sn.Key == scsi.KeyUnitAttention {
			seen = append(seen, sn.ASC)
			continue
		}
		a2.mustGood("READ RESERVATION on A", r)
		if len(r.Data) >= 24 && binary.BigEndian.Uint64(r.Data[8:16]) == keyY {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node A does not show Y's reservation 5 s after the PREEMPT on B")
		}
	}
	if got := append(seen, a2.uas(xa2)...); !reflect.DeepEqual(got, []scsi.ASC{scsi.ASCRegistrationsPreempted}) {
		t.Fatalf("X on A after the PREEMPT on B: unit attentions %04x, want REGISTRATIONS PREEMPTED", got)
	}
	if k := a2.keys(xa2); !reflect.DeepEqual(k, []uint64{keyY}) {
		t.Fatalf("keys on A: %x, want only Y's", k)
	}
	if got := b.uas(yb); got != nil {
		t.Fatalf("Y (the preemptor) on B: unit attentions %04x, want none", got)
	}
}

// TestReservationsConcurrentNodes: initiators register through both
// nodes at once; every registration lands (a node that loses a race
// redoes its change on the newer state), and both nodes end with the same
// keys and PRGENERATION. An initiator retries NOT READY, as a real one
// does.
func TestReservationsConcurrentNodes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	j := NewReservationJournal(clustertest.StartClient(t), "", quietLog())
	dataFile := filepath.Join(t.TempDir(), "shared.img")
	guid := resvGUID(t)
	st, err := filestore.Create(ctx, filestore.Options{DataFile: dataFile, Size: 4 << 20, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	made, err := lu.New(ctx, st, lu.Config{GUID: guid}, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := made.Close(); err != nil {
		t.Fatal(err)
	}
	nodes := []*luNode{openLUNode(t, ctx, dataFile, guid, j, 1), openLUNode(t, ctx, dataFile, guid, j, 2)}
	const perNode = 8
	type reg struct {
		n   *luNode
		s   *stmf.Session
		key uint64
	}
	var regs []reg
	for i, n := range nodes {
		for k := range perNode {
			s := n.session(initiator(fmt.Sprintf("iqn.2026-12.org.costar:n%d-%d", i, k), byte(k+1)))
			n.uas(s)
			regs = append(regs, reg{n, s, uint64(i*100 + k + 1)})
		}
	}
	errs := make(chan error, len(regs))
	var notReady atomic.Int64
	for _, r := range regs {
		go func() {
			for try := 0; try < 20; try++ {
				res := r.n.prout(r.s, scsi.PROutRegister, 0, 0, r.key)
				if res.Status == scsi.StatusGood {
					errs <- nil
					return
				}
				if sn, err := scsi.ParseSense(res.Sense); err != nil || sn.Key != scsi.KeyNotReady {
					errs <- fmt.Errorf("key %x: status %v sense % x", r.key, res.Status, res.Sense)
					return
				}
				notReady.Add(1)
			}
			errs <- fmt.Errorf("key %x: NOT READY 20 times", r.key)
		}()
	}
	for range regs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d registrations, %d NOT READY answers retried", len(regs), notReady.Load())
	for i, n := range nodes {
		s := regs[i*perNode].s
		deadline := time.Now().Add(5 * time.Second)
		for {
			r := n.mustGood("READ KEYS", n.cmd(s, []byte{scsi.OpPRIn, scsi.PRInReadKeys, 0, 0, 0, 0, 0, 0x10, 0, 0}, nil))
			gen, count := binary.BigEndian.Uint32(r.Data[0:4]), binary.BigEndian.Uint32(r.Data[4:8])/8
			if gen == uint32(len(regs)) && count == uint32(len(regs)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: generation %d with %d keys, want %d and %d", i, gen, count, len(regs), len(regs))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

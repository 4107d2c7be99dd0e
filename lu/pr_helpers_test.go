package lu

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// Helpers for the reservation tests: an LU registered in a real stmf
// framework with two target ports, so that tasks carry real I_T nexuses
// and unit attentions can be observed.

const (
	prTarget = "iqn.2026-11.org.costar:pr"
	prInitA  = "iqn.2026-11.org.costar:init-a"
	prInitB  = "iqn.2026-11.org.costar:init-b"
	prInitC  = "iqn.2026-11.org.costar:init-c"
)

type prEnv struct {
	t     *testing.T
	d     *Device
	fw    *stmf.Framework
	ports []*stmf.LocalPort
}

func newPREnv(t *testing.T) *prEnv {
	t.Helper()
	return newPREnvDisk(t, newTestDisk(t, diskOpts{}))
}

func newPREnvDisk(t *testing.T, d *Device) *prEnv {
	t.Helper()
	fw := stmf.New(quietLog())
	if err := fw.RegisterLU(d); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.AddView(d.GUID(), stmf.ViewEntry{}, true); err != nil {
		t.Fatal(err)
	}
	e := &prEnv{t: t, d: d, fw: fw}
	for i := 1; i <= 2; i++ {
		p, err := fw.RegisterPort(iscsiPortSpec(prTarget, uint16(i)))
		if err != nil {
			t.Fatal(err)
		}
		e.ports = append(e.ports, p)
	}
	return e
}

// session opens an I_T nexus from initiator init (ISID isid) through
// target port port (0 or 1).
func (e *prEnv) session(port int, init string, isid uint64) *stmf.Session {
	e.t.Helper()
	s, err := e.ports[port].OpenSession(iscsiInitiator(init, isid))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(s.Close)
	return s
}

// run executes a command on the LU directly (no unit attentions).
func (e *prEnv) run(s *stmf.Session, cdb []byte, data []byte) resp {
	e.t.Helper()
	r := req{cdb: cdb, session: s, dir: scsi.DirRead, expLen: 65535}
	if data != nil {
		r.dir, r.data, r.expLen = scsi.DirWrite, data, uint32(len(data))
	}
	return exec(e.t, e.d, r)
}

// chanTransport delivers results on a channel; ReceiveData returns data,
// or blocks until the task is aborted when block is set.
type chanTransport struct {
	data  []byte
	block bool
	done  chan *stmf.Result // nil result = dropped
}

func (c *chanTransport) ReceiveData(ctx context.Context) ([]byte, error) {
	if c.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return c.data, nil
}
func (c *chanTransport) Deliver(r *stmf.Result) { c.done <- r }
func (c *chanTransport) Drop()                  { c.done <- nil }

// start submits a command through stmf (unit attentions apply) and
// returns its transport.
func (e *prEnv) start(s *stmf.Session, tag uint64, cdb []byte, data []byte, block bool) *chanTransport {
	tr := &chanTransport{data: data, block: block, done: make(chan *stmf.Result, 1)}
	task := stmf.NewTask(tr)
	task.CDB = cdb
	task.Tag = tag
	task.RawLUN = scsi.EncodeLUN(0)
	task.Dir, task.ExpectedLen = scsi.DirRead, 65535
	if data != nil || block {
		task.Dir, task.ExpectedLen = scsi.DirWrite, uint32(len(data))
		if block {
			task.ExpectedLen = 512
		}
	}
	s.Submit(task)
	return tr
}

func (c *chanTransport) wait(t *testing.T) *stmf.Result {
	t.Helper()
	select {
	case r := <-c.done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("task did not complete")
	}
	return nil
}

// submit runs a command through stmf and waits for its result.
func (e *prEnv) submit(s *stmf.Session, cdb []byte) *stmf.Result {
	e.t.Helper()
	r := e.start(s, 0, cdb, nil, false).wait(e.t)
	if r == nil {
		e.t.Fatalf("cdb % x: dropped", cdb)
	}
	return r
}

// pendingUAs drains a session's unit attentions on LUN 0 with TEST UNIT
// READY and returns them in order.
func (e *prEnv) pendingUAs(s *stmf.Session) []scsi.ASC {
	e.t.Helper()
	var out []scsi.ASC
	for i := 0; i < 10; i++ {
		r := e.submit(s, []byte{scsi.OpTestUnitReady, 0, 0, 0, 0, 0})
		if r.Status != scsi.StatusCheckCondition {
			return out
		}
		sn, err := scsi.ParseSense(r.Sense)
		if err != nil || sn.Key != scsi.KeyUnitAttention {
			return out
		}
		out = append(out, sn.ASC)
	}
	e.t.Fatal("unit attentions do not stop")
	return nil
}

// clearUAs drops the power-on unit attentions of fresh sessions.
func (e *prEnv) clearUAs(ss ...*stmf.Session) {
	for _, s := range ss {
		e.pendingUAs(s)
	}
}

// CDB and parameter list builders.

func proutCDB(sa, scope, typ byte, plen uint32) []byte {
	c := make([]byte, 10)
	c[0], c[1], c[2] = scsi.OpPROut, sa, scope<<4|typ
	binary.BigEndian.PutUint32(c[5:9], plen)
	return c
}

func prinCDB(sa byte, alloc uint16) []byte {
	c := make([]byte, 10)
	c[0], c[1] = scsi.OpPRIn, sa
	binary.BigEndian.PutUint16(c[7:9], alloc)
	return c
}

// Parameter list flag bits (byte 20).
const (
	pfSpecIPT = 0x08
	pfAllTgPt = 0x04
	pfAPTPL   = 0x01
)

// proutParam builds a basic parameter list, with TransportIDs when the
// SPEC_I_PT flag is given.
func proutParam(rk, sark uint64, flags byte, tids ...[]byte) []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b[0:8], rk)
	binary.BigEndian.PutUint64(b[8:16], sark)
	b[20] = flags
	if flags&pfSpecIPT != 0 {
		var all []byte
		for _, t := range tids {
			all = append(all, t...)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(all)))
		b = append(b, all...)
	}
	return b
}

// moveParam builds a REGISTER AND MOVE parameter list.
func moveParam(rk, sark uint64, unreg, aptpl bool, relPort uint16, tid []byte) []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b[0:8], rk)
	binary.BigEndian.PutUint64(b[8:16], sark)
	if unreg {
		b[17] |= 0x02
	}
	if aptpl {
		b[17] |= 0x01
	}
	binary.BigEndian.PutUint16(b[18:20], relPort)
	binary.BigEndian.PutUint32(b[20:24], uint32(len(tid)))
	return append(b, tid...)
}

// prout sends a PERSISTENT RESERVE OUT with a basic parameter list.
func (e *prEnv) prout(s *stmf.Session, sa, typ byte, rk, sark uint64, flags byte, tids ...[]byte) resp {
	e.t.Helper()
	p := proutParam(rk, sark, flags, tids...)
	return e.run(s, proutCDB(sa, 0, typ, uint32(len(p))), p)
}

func (e *prEnv) mustProut(s *stmf.Session, sa, typ byte, rk, sark uint64, flags byte, tids ...[]byte) {
	e.t.Helper()
	expectGood(e.t, fmt.Sprintf("PROUT SA %d", sa), e.prout(s, sa, typ, rk, sark, flags, tids...))
}

func expectConflict(t testing.TB, name string, r resp) {
	t.Helper()
	if r.status != scsi.StatusReservationConflict {
		if r.sense != nil {
			t.Fatalf("%s: status %v sense %x/%04x, want RESERVATION CONFLICT", name, r.status, r.sense.Key, r.sense.ASC)
		}
		t.Fatalf("%s: status %v, want RESERVATION CONFLICT", name, r.status)
	}
}

// readKeys returns PRGENERATION and the registered keys.
func (e *prEnv) readKeys(s *stmf.Session) (uint32, []uint64) {
	e.t.Helper()
	r := e.run(s, prinCDB(scsi.PRInReadKeys, 8192), nil)
	expectGood(e.t, "READ KEYS", r)
	if len(r.data) < 8 || int(binary.BigEndian.Uint32(r.data[4:8])) != len(r.data)-8 {
		e.t.Fatalf("READ KEYS data % x", r.data)
	}
	var keys []uint64
	for p := r.data[8:]; len(p) >= 8; p = p[8:] {
		keys = append(keys, binary.BigEndian.Uint64(p))
	}
	return binary.BigEndian.Uint32(r.data[0:4]), keys
}

// readReservation returns (reserved, key, type).
func (e *prEnv) readReservation(s *stmf.Session) (bool, uint64, byte) {
	e.t.Helper()
	r := e.run(s, prinCDB(scsi.PRInReadReservation, 8192), nil)
	expectGood(e.t, "READ RESERVATION", r)
	switch n := binary.BigEndian.Uint32(r.data[4:8]); {
	case n == 0 && len(r.data) == 8:
		return false, 0, 0
	case n == 16 && len(r.data) == 24:
		return true, binary.BigEndian.Uint64(r.data[8:16]), r.data[21]
	}
	e.t.Fatalf("READ RESERVATION data % x", r.data)
	return false, 0, 0
}

var (
	read10CDB  = cdb10(scsi.OpRead10, 0, 1, 1)
	write10CDB = cdb10(scsi.OpWrite10, 0, 1, 1)
	block512   = make([]byte, 512)
)

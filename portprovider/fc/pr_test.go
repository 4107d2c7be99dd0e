package fc_test

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/costar-project/costar/portprovider/fc"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// chanTransport is an in-test transport for a nexus of another protocol.
type chanTransport struct {
	data []byte
	res  chan *stmf.Result
}

func (c *chanTransport) ReceiveData(context.Context) ([]byte, error) { return c.data, nil }
func (c *chanTransport) Deliver(r *stmf.Result)                      { c.res <- r }
func (c *chanTransport) Drop()                                       { c.res <- nil }

func run(t *testing.T, s *stmf.Session, cdb, data []byte, dir scsi.DataDir) *stmf.Result {
	t.Helper()
	tr := &chanTransport{data: data, res: make(chan *stmf.Result, 1)}
	task := stmf.NewTask(tr)
	task.CDB, task.Dir, task.ExpectedLen, task.Tag = cdb, dir, uint32(len(data)), 1
	s.Submit(task)
	select {
	case r := <-tr.res:
		if r == nil {
			t.Fatal("task dropped")
		}
		return r
	case <-ctxT(t).Done():
		t.Fatal("task did not complete")
		return nil
	}
}

func prout(sa, typ byte, key, sakey uint64) (cdb, param []byte) {
	cdb = make([]byte, 10)
	cdb[0], cdb[1], cdb[2] = scsi.OpPROut, sa, typ
	binary.BigEndian.PutUint32(cdb[5:], 24)
	param = make([]byte, 24)
	binary.BigEndian.PutUint64(param, key)
	binary.BigEndian.PutUint64(param[8:], sakey)
	return cdb, param
}

const prTypeWE = 0x01 // WRITE EXCLUSIVE

// TestPRAcrossProtocols shares an LU between the FC nexus and an
// iSCSI-style nexus: each side's reservation conflicts with the other's
// writes, and READ FULL STATUS shows both TransportIDs.
func TestPRAcrossProtocols(t *testing.T) {
	e := newEnv(t, fc.Config{})
	e.login(t)
	const iqn = "iqn.2026-12.org.example:host1"
	ip, err := e.fw.RegisterPort(stmf.PortSpec{Protocol: scsi.ProtocolISCSI, TargetName: "iqn.2026-12.org.costar:t1",
		Name: "iqn.2026-12.org.costar:t1,t,0x0002", Group: stmf.DefaultPortGroup})
	if err != nil {
		t.Fatal(err)
	}
	isid := [6]byte{0x40, 0, 0, 0, 0, 1}
	is, err := ip.OpenSession(stmf.Initiator{Name: iqn, PortName: iqn + ",i,0x400000000001",
		PortID: scsi.ISCSIPortTransportID(iqn, isid), DeviceID: scsi.ISCSIDeviceTransportID(iqn)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(is.Close)
	run(t, is, []byte{scsi.OpTestUnitReady, 0, 0, 0, 0, 0}, nil, scsi.DirNone) // POWER ON RESET

	fcPROut := func(sa, typ byte, key, sakey uint64) prResult {
		cdb, param := prout(sa, typ, key, sakey)
		r := e.cmd(t, e.ini, &fc.Cmnd{CDB: cdb, Write: true, DataLn: 24}, param)
		if r.Under || r.Over || r.Resid != 0 {
			t.Fatalf("PR OUT with all 24 bytes transferred reports a residual: %+v", r.Rsp)
		}
		return prResult{r.Status, r.Sense}
	}
	// iSCSI registers and reserves WRITE EXCLUSIVE.
	cdb, param := prout(scsi.PROutRegister, 0, 0, 0xa1)
	if r := run(t, is, cdb, param, scsi.DirWrite); r.Status != scsi.StatusGood {
		t.Fatalf("iSCSI REGISTER: %v % x", r.Status, r.Sense)
	}
	cdb, param = prout(scsi.PROutReserve, prTypeWE, 0xa1, 0)
	if r := run(t, is, cdb, param, scsi.DirWrite); r.Status != scsi.StatusGood {
		t.Fatalf("iSCSI RESERVE: %v % x", r.Status, r.Sense)
	}
	// The FC initiator cannot write, can read, can register.
	data := pattern(blockLen, 1)
	if r := e.cmd(t, e.ini, write10(0, 1, blockLen), data); r.Status != scsi.StatusReservationConflict {
		t.Fatalf("FC write under an iSCSI reservation: %+v", r.Rsp)
	}
	if r := e.cmd(t, e.ini, read10(0, 1, blockLen), nil); r.Status != scsi.StatusGood {
		t.Fatalf("FC read under WRITE EXCLUSIVE: %+v", r.Rsp)
	}
	if r := fcPROut(scsi.PROutRegister, 0, 0, 0xf1); r.status != scsi.StatusGood {
		t.Fatalf("FC REGISTER: %+v", r)
	}
	// READ FULL STATUS names both nexuses by their own TransportIDs.
	rin := []byte{scsi.OpPRIn, scsi.PRInReadFullStatus, 0, 0, 0, 0, 0, 0x10, 0, 0}
	fs := e.cmd(t, e.ini, &fc.Cmnd{CDB: rin, Read: true, DataLn: 4096}, nil)
	if fs.Status != scsi.StatusGood {
		t.Fatalf("READ FULL STATUS: %+v", fs.Rsp)
	}
	var sawFC, sawISCSI bool
	for d := fs.Data[8:]; len(d) >= 24; {
		n := 24 + int(binary.BigEndian.Uint32(d[20:]))
		if n > len(d) {
			t.Fatalf("descriptor overruns: % x", fs.Data)
		}
		tid, _, err := scsi.ParseTransportID(d[24:n])
		if err != nil {
			t.Fatal(err)
		}
		sawFC = sawFC || tid.Equal(scsi.FCTransportID(iniWWPN))
		sawISCSI = sawISCSI || tid.Protocol() == scsi.ProtocolISCSI
		d = d[n:]
	}
	if !sawFC || !sawISCSI {
		t.Fatalf("READ FULL STATUS % x: FC %v iSCSI %v", fs.Data, sawFC, sawISCSI)
	}

	// iSCSI releases; the FC side reserves; now iSCSI writes conflict.
	cdb, param = prout(scsi.PROutRelease, prTypeWE, 0xa1, 0)
	if r := run(t, is, cdb, param, scsi.DirWrite); r.Status != scsi.StatusGood {
		t.Fatalf("iSCSI RELEASE: %v % x", r.Status, r.Sense)
	}
	if r := fcPROut(scsi.PROutReserve, prTypeWE, 0xf1, 0); r.status != scsi.StatusGood {
		t.Fatalf("FC RESERVE: %+v", r)
	}
	if r := run(t, is, rw10(scsi.OpWrite10, 0, 1), data, scsi.DirWrite); r.Status != scsi.StatusReservationConflict {
		t.Fatalf("iSCSI write under an FC reservation: %v", r.Status)
	}
	if r := e.cmd(t, e.ini, write10(0, 1, blockLen), data); r.Status != scsi.StatusGood {
		t.Fatalf("FC holder's write: %+v", r.Rsp)
	}
}

type prResult struct {
	status scsi.Status
	sense  []byte
}

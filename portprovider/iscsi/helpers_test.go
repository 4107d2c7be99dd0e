package iscsi

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

const (
	testTarget    = "iqn.2026-01.test:tgt"
	testInitiator = "iqn.2026-01.test:init"
	blockSize     = 512
)

// Vendor-specific opcodes the fake LU understands.
const (
	opWait  = 0xc0 // wait until released (or aborted), then GOOD
	opSense = 0xc1 // CHECK CONDITION, MEDIUM ERROR
	opShort = 0xc2 // read that reports TransferLen = CDB[2..5], returns that many bytes
	opBidi  = 0xc3 // bidirectional: returns the Data-Out reversed
)

// fakeLU is a RAM disk with just enough SCSI for the transport tests.
type fakeLU struct {
	guid    stmf.GUID
	mu      sync.Mutex
	data    []byte
	release chan struct{} // closed to let opWait tasks finish
	started chan uint64   // tags of opWait tasks that started
}

func newFakeLU(size int) *fakeLU {
	g := stmf.GUID{0x60, 1, 2, 3}
	return &fakeLU{guid: g, data: make([]byte, size), release: make(chan struct{}), started: make(chan uint64, 64)}
}

func (l *fakeLU) GUID() stmf.GUID { return l.guid }

func (l *fakeLU) Execute(t *stmf.Task) {
	cdb := t.CDB
	switch cdb[0] {
	case 0x00: // TEST UNIT READY
		t.CompleteStatus(scsi.StatusGood)
	case 0x12: // INQUIRY
		b := make([]byte, 36)
		copy(b[8:], "COSTAR  FAKE")
		alloc := int(binary.BigEndian.Uint16(cdb[3:5]))
		t.Complete(&stmf.Result{Status: scsi.StatusGood, Data: b[:min(alloc, 36)], TransferLen: uint32(min(alloc, 36))})
	case 0x28, 0x88: // READ(10/16)
		lba, n := rwArgs(cdb)
		tl := n * blockSize
		want := min(tl, t.ExpectedLen)
		l.mu.Lock()
		if int(lba)*blockSize+int(tl) > len(l.data) {
			l.mu.Unlock()
			t.CompleteSense(scsi.IllegalRequest(scsi.ASCLBAOutOfRange, -1))
			return
		}
		out := make([]byte, want)
		copy(out, l.data[int(lba)*blockSize:])
		l.mu.Unlock()
		t.Complete(&stmf.Result{Status: scsi.StatusGood, Data: out, TransferLen: tl})
	case 0x2a, 0x8a: // WRITE(10/16)
		lba, n := rwArgs(cdb)
		tl := n * blockSize
		buf, err := t.Data()
		if err != nil {
			t.CompleteSense(scsi.NewSense(scsi.KeyAbortedCommand, 0))
			return
		}
		w := min(int(tl), len(buf)) / blockSize * blockSize
		l.mu.Lock()
		if int(lba)*blockSize+int(tl) > len(l.data) {
			l.mu.Unlock()
			t.CompleteSense(scsi.IllegalRequest(scsi.ASCLBAOutOfRange, -1))
			return
		}
		copy(l.data[int(lba)*blockSize:], buf[:w])
		l.mu.Unlock()
		t.Complete(&stmf.Result{Status: scsi.StatusGood, TransferLen: tl})
	case opWait:
		l.started <- t.Tag
		select {
		case <-l.release:
			t.CompleteStatus(scsi.StatusGood)
		case <-t.Context().Done():
			t.CompleteStatus(scsi.StatusTaskAborted)
		}
	case opBidi:
		buf, err := t.Data()
		if err != nil {
			t.CompleteSense(scsi.NewSense(scsi.KeyAbortedCommand, 0))
			return
		}
		out := make([]byte, len(buf))
		for i := range buf {
			out[len(buf)-1-i] = buf[i]
		}
		t.Complete(&stmf.Result{Status: scsi.StatusGood, Data: out, TransferLen: uint32(len(buf))})
	case opSense:
		t.CompleteSense(scsi.NewSense(scsi.KeyMediumError, scsi.ASCUnrecoveredReadError))
	case opShort:
		n := binary.BigEndian.Uint32(cdb[2:6])
		t.Complete(&stmf.Result{Status: scsi.StatusGood, Data: make([]byte, min(n, t.ExpectedLen)), TransferLen: n})
	default:
		t.CompleteSense(scsi.IllegalRequest(scsi.ASCInvalidCommandOpcode, 0))
	}
}

func rwArgs(cdb []byte) (lba uint64, n uint32) {
	if cdb[0] == 0x28 || cdb[0] == 0x2a {
		return uint64(binary.BigEndian.Uint32(cdb[2:6])), uint32(binary.BigEndian.Uint16(cdb[7:9]))
	}
	return binary.BigEndian.Uint64(cdb[2:10]), binary.BigEndian.Uint32(cdb[10:14])
}

func cdbRW(op byte, lba uint32, blocks uint16) []byte {
	c := make([]byte, 10)
	c[0] = op
	binary.BigEndian.PutUint32(c[2:6], lba)
	binary.BigEndian.PutUint16(c[7:9], blocks)
	return c
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("ISCSI_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testEnv struct {
	fw   *stmf.Framework
	lu   *fakeLU
	srv  *Server
	addr string
}

// startServer runs a server with one target and one LU on loopback.
func startServer(t testing.TB, mod func(*Config)) *testEnv {
	t.Helper()
	log := testLogger(t)
	fw := stmf.New(log)
	l := newFakeLU(4 << 20)
	if err := fw.RegisterLU(l); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.AddView(l.GUID(), stmf.ViewEntry{}, true); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Portals:    []string{"127.0.0.1:0"},
		Targets:    []TargetConfig{{Name: testTarget, Alias: "test"}},
		Logger:     log,
		LogoutWait: 50 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := NewServer(fw, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	env := &testEnv{fw: fw, lu: l, srv: srv, addr: srv.Addrs()[0].String()}
	t.Cleanup(func() {
		select {
		case <-l.release:
		default:
			close(l.release)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return env
}

// initiator is a minimal iSCSI initiator for tests.
type initiator struct {
	t         testing.TB
	nc        net.Conn
	br        *bufio.Reader
	rd        *pdu.Reader
	hdrDig    bool
	dataDig   bool
	isid      [6]byte
	tsih      uint16
	cmdSN     uint32
	expStatSN uint32
	itt       uint32
	maxCmdSN  uint32
	// Target's declared MaxRecvDataSegmentLength and negotiated values.
	targetMRDSL uint32
	ourMRDSL    uint32
	answers     map[string]string
}

func dial(t testing.TB, addr string) *initiator {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	br := bufio.NewReader(nc)
	return &initiator{t: t, nc: nc, br: br, rd: pdu.NewReader(br, 1<<24-1), isid: [6]byte{0x80, 0, 0, 0, 0, 1},
		cmdSN: 1, itt: 1, targetMRDSL: 8192, ourMRDSL: 8192, answers: map[string]string{}}
}

func (in *initiator) send(h *pdu.Header, ahs, data []byte) error {
	b := pdu.AppendPDU(nil, h, ahs, data, in.hdrDig, in.dataDig)
	_ = in.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := in.nc.Write(b)
	return err
}

// recv reads one PDU (5 s deadline).
func (in *initiator) recv() (pdu.Header, []byte, error) {
	var h pdu.Header
	_ = in.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := in.rd.ReadHeader(&h); err != nil {
		return h, nil, err
	}
	data := make([]byte, h.DataSegmentLength())
	if err := in.rd.ReadData(&h, data); err != nil {
		return h, nil, err
	}
	if h.Opcode() != pdu.OpLoginResp && h.Opcode() != pdu.OpR2T {
		switch h.Opcode() {
		case pdu.OpSCSIResp, pdu.OpNOPIn, pdu.OpTaskMgmtResp, pdu.OpTextResp, pdu.OpLogoutResp, pdu.OpReject, pdu.OpAsyncMsg:
			if h.ITT() != pdu.ReservedTag || h.Opcode() != pdu.OpNOPIn {
				in.expStatSN = h.U32(pdu.OffStatSN) + 1
			}
		case pdu.OpDataIn:
			if h.Flags()&pdu.FlagStatus != 0 {
				in.expStatSN = h.U32(pdu.OffStatSN) + 1
			}
		}
	}
	if h.Opcode() != pdu.OpLoginResp {
		in.maxCmdSN = h.U32(pdu.OffMaxCmdSN)
	}
	return h, data, nil
}

// loginPDU sends one login request and returns the response.
func (in *initiator) loginPDU(transit bool, csg, nsg uint8, kvs []pdu.KV, mod func(*pdu.Header)) (pdu.Header, map[string]string) {
	in.t.Helper()
	var h pdu.Header
	h.SetOpcode(pdu.OpLoginReq, true)
	h.SetLoginFlags(transit, false, csg, nsg)
	h.SetISID(in.isid)
	h.SetTSIH(in.tsih)
	h.SetITT(0)
	h.SetCID(1)
	h.SetU32(pdu.OffCmdSN, in.cmdSN)
	h.SetU32(pdu.OffExpStatSN, in.expStatSN)
	if mod != nil {
		mod(&h)
	}
	if err := in.send(&h, nil, pdu.EncodeText(kvs)); err != nil {
		in.t.Fatalf("login send: %v", err)
	}
	r, data, err := in.recv()
	if err != nil {
		in.t.Fatalf("login recv: %v", err)
	}
	if r.Opcode() != pdu.OpLoginResp {
		in.t.Fatalf("got %s, want Login Response", r.Opcode())
	}
	in.expStatSN = r.U32(pdu.OffStatSN) + 1
	kv, err := pdu.ParseText(data)
	if err != nil {
		in.t.Fatalf("login response text: %v", err)
	}
	m := map[string]string{}
	for _, p := range kv {
		m[p.Key] = p.Value
		in.answers[p.Key] = p.Value
	}
	return r, m
}

func loginStatusOf(h pdu.Header) uint16 { return uint16(h[36])<<8 | uint16(h[37]) }

// login performs a two-stage login (security, then operational).
func (in *initiator) login(target string, op ...pdu.KV) {
	in.t.Helper()
	sec := []pdu.KV{{Key: "InitiatorName", Value: testInitiator}, {Key: "AuthMethod", Value: "None"}}
	if target == "" {
		sec = append(sec, pdu.KV{Key: "SessionType", Value: "Discovery"})
	} else {
		sec = append(sec, pdu.KV{Key: "SessionType", Value: "Normal"}, pdu.KV{Key: "TargetName", Value: target})
	}
	r, _ := in.loginPDU(true, pdu.StageSecurity, pdu.StageOperational, sec, nil)
	if st := loginStatusOf(r); st != 0 {
		in.t.Fatalf("security stage: status 0x%04x", st)
	}
	for _, kv := range op {
		if kv.Key == "MaxRecvDataSegmentLength" {
			n, _ := strconv.Atoi(kv.Value)
			in.ourMRDSL = uint32(n)
		}
	}
	r, m := in.loginPDU(true, pdu.StageOperational, pdu.StageFullFeature, op, nil)
	if st := loginStatusOf(r); st != 0 {
		in.t.Fatalf("operational stage: status 0x%04x", st)
	}
	if !r.Final() {
		in.t.Fatalf("no transit to full feature phase")
	}
	in.tsih = r.TSIH()
	if v, ok := m["MaxRecvDataSegmentLength"]; ok {
		n, _ := strconv.Atoi(v)
		in.targetMRDSL = uint32(n)
	}
	in.hdrDig = m["HeaderDigest"] == "CRC32C"
	in.dataDig = m["DataDigest"] == "CRC32C"
	in.rd.HeaderDigest, in.rd.DataDigest = in.hdrDig, in.dataDig
	in.maxCmdSN = r.U32(pdu.OffMaxCmdSN)
	if target != "" {
		// Consume the power-on unit attention stmf raises for a new nexus.
		itt := in.scsiCmd([]byte{0}, false, false, 0, nil, false)
		in.wait(nil, itt)
	}
}

func (in *initiator) nextITT() uint32 { in.itt++; return in.itt }

// scsiCmd sends a SCSI Command with optional immediate data and returns its ITT.
func (in *initiator) scsiCmd(cdb []byte, read, write bool, edtl uint32, imm []byte, immediate bool) uint32 {
	in.t.Helper()
	var h pdu.Header
	h.SetOpcode(pdu.OpSCSICmd, immediate)
	f := byte(pdu.FlagFinal | 1)
	if read {
		f |= pdu.FlagRead
	}
	if write {
		f |= pdu.FlagWrite
	}
	h.SetFlags(f)
	h.SetLUN([8]byte{})
	itt := in.nextITT()
	h.SetITT(itt)
	h.SetU32(pdu.OffEDTL, edtl)
	h.SetU32(pdu.OffCmdSN, in.cmdSN)
	if !immediate {
		in.cmdSN++
	}
	h.SetU32(pdu.OffExpStatSN, in.expStatSN)
	var ahs []byte
	copy(h.CDB16(), cdb)
	if len(cdb) > 16 {
		ahs = pdu.AppendExtCDBAHS(nil, cdb[16:])
	}
	if err := in.send(&h, ahs, imm); err != nil {
		in.t.Fatalf("send command: %v", err)
	}
	return itt
}

// result is the outcome of one command as the initiator saw it.
type result struct {
	status   byte
	data     []byte
	sense    []byte
	flags    byte
	residual uint32
	dataIns  int
	r2ts     int
	finals   int
	collapse bool
}

// sendDataOut sends the Data-Out for one R2T (or unsolicited data when
// ttt is ReservedTag), split by the target's MaxRecvDataSegmentLength.
func (in *initiator) sendDataOut(itt, ttt uint32, buf []byte, off, length uint32) {
	in.t.Helper()
	var sn uint32
	for done := uint32(0); done < length; {
		n := min(length-done, in.targetMRDSL)
		var h pdu.Header
		h.SetOpcode(pdu.OpDataOut, false)
		if done+n == length {
			h.SetFlags(pdu.FlagFinal)
		}
		h.SetITT(itt)
		h.SetU32(pdu.OffTTT, ttt)
		h.SetU32(pdu.OffExpStatSN, in.expStatSN)
		h.SetU32(pdu.OffDataSN, sn)
		h.SetU32(pdu.OffBufferOffset, off+done)
		if err := in.send(&h, nil, buf[off+done:off+done+n]); err != nil {
			in.t.Fatalf("Data-Out: %v", err)
		}
		sn++
		done += n
	}
}

// wait collects PDUs for the given tasks until all have a status; it
// answers R2Ts from the write buffers in wbuf.
func (in *initiator) wait(wbuf map[uint32][]byte, itts ...uint32) map[uint32]*result {
	in.t.Helper()
	res := map[uint32]*result{}
	pending := map[uint32]bool{}
	for _, i := range itts {
		pending[i] = true
		res[i] = &result{}
	}
	for len(pending) > 0 {
		h, data, err := in.recv()
		if err != nil {
			in.t.Fatalf("waiting for %v: %v", pending, err)
		}
		itt := h.ITT()
		switch h.Opcode() {
		case pdu.OpR2T:
			if r := res[itt]; r != nil {
				if h.U32(pdu.OffDataSN) != uint32(r.r2ts) {
					in.t.Fatalf("R2TSN %d, want %d", h.U32(pdu.OffDataSN), r.r2ts)
				}
				r.r2ts++
			}
			in.sendDataOut(itt, h.U32(pdu.OffTTT), wbuf[itt], h.U32(pdu.OffBufferOffset), h.U32(pdu.OffResidual))
		case pdu.OpDataIn:
			r := res[itt]
			if r == nil {
				in.t.Fatalf("Data-In for unknown ITT %#x", itt)
			}
			if h.U32(pdu.OffDataSN) != uint32(r.dataIns+r.r2ts) {
				in.t.Fatalf("DataSN %d, want %d", h.U32(pdu.OffDataSN), r.dataIns)
			}
			if int(h.U32(pdu.OffBufferOffset)) != len(r.data) {
				in.t.Fatalf("buffer offset %d, want %d", h.U32(pdu.OffBufferOffset), len(r.data))
			}
			if uint32(len(data)) > in.ourMRDSL {
				in.t.Fatalf("Data-In segment %d > our MaxRecvDataSegmentLength %d", len(data), in.ourMRDSL)
			}
			r.dataIns++
			r.data = append(r.data, data...)
			if h.Final() {
				r.finals++
			}
			if h.Flags()&pdu.FlagStatus != 0 {
				r.status, r.flags, r.residual, r.collapse = h[3], h.Flags(), h.U32(pdu.OffResidual), true
				delete(pending, itt)
			}
		case pdu.OpSCSIResp:
			r := res[itt]
			if r == nil {
				in.t.Fatalf("response for unknown ITT %#x", itt)
			}
			r.status, r.flags, r.residual = h[3], h.Flags(), h.U32(pdu.OffResidual)
			if len(data) >= 2 {
				n := int(binary.BigEndian.Uint16(data))
				r.sense = data[2 : 2+n]
			}
			delete(pending, itt)
		case pdu.OpNOPIn:
			if h.U32(pdu.OffTTT) != pdu.ReservedTag {
				in.nopOut(pdu.ReservedTag, h.U32(pdu.OffTTT), true, nil)
			}
		case pdu.OpReject:
			in.t.Fatalf("Reject reason %#x for %s", h[2], pdu.Opcode(data[0]&0x3f))
		default:
			in.t.Fatalf("unexpected %s", h.Opcode())
		}
	}
	return res
}

func (in *initiator) nopOut(itt, ttt uint32, immediate bool, data []byte) {
	var h pdu.Header
	h.SetOpcode(pdu.OpNOPOut, immediate)
	h.SetFlags(pdu.FlagFinal)
	h.SetITT(itt)
	h.SetU32(pdu.OffTTT, ttt)
	h.SetU32(pdu.OffCmdSN, in.cmdSN)
	if !immediate {
		in.cmdSN++
	}
	h.SetU32(pdu.OffExpStatSN, in.expStatSN)
	if err := in.send(&h, nil, data); err != nil {
		in.t.Fatalf("NOP-Out: %v", err)
	}
}

// expect reads PDUs until one with opcode op arrives (answering pings).
func (in *initiator) expect(op pdu.Opcode) (pdu.Header, []byte) {
	in.t.Helper()
	for {
		h, data, err := in.recv()
		if err != nil {
			in.t.Fatalf("waiting for %s: %v", op, err)
		}
		if h.Opcode() == op {
			return h, data
		}
		if h.Opcode() == pdu.OpNOPIn && h.U32(pdu.OffTTT) != pdu.ReservedTag {
			in.nopOut(pdu.ReservedTag, h.U32(pdu.OffTTT), true, nil)
			continue
		}
		in.t.Fatalf("got %s while waiting for %s", h.Opcode(), op)
	}
}

func (in *initiator) logout() {
	in.t.Helper()
	var h pdu.Header
	h.SetOpcode(pdu.OpLogoutReq, true)
	h.SetFlags(pdu.FlagFinal)
	h.SetITT(in.nextITT())
	h.SetCID(1)
	h.SetU32(pdu.OffCmdSN, in.cmdSN)
	h.SetU32(pdu.OffExpStatSN, in.expStatSN)
	if err := in.send(&h, nil, nil); err != nil {
		in.t.Fatalf("logout: %v", err)
	}
	r, _ := in.expect(pdu.OpLogoutResp)
	if r[2] != 0 {
		in.t.Fatalf("logout response %d", r[2])
	}
	// The target closes the connection after the response.
	_ = in.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := in.br.ReadByte(); !errors.Is(err, io.EOF) {
		in.t.Fatalf("connection not closed after logout: %v", err)
	}
}

// expectClosed waits for the target to close the connection.
func (in *initiator) expectClosed() {
	in.t.Helper()
	_ = in.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var h pdu.Header
		if _, err := in.rd.ReadHeader(&h); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				in.t.Fatal("connection still open")
			}
			return
		}
		if err := in.rd.DiscardData(&h); err != nil {
			return
		}
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

func (r *result) String() string {
	return fmt.Sprintf("status=%#x flags=%#x residual=%d data=%d dataIns=%d", r.status, r.flags, r.residual, len(r.data), r.dataIns)
}

func dialErr(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return c, err
}

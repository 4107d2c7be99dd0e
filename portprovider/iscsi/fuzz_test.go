package iscsi

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
	"github.com/costar-project/costar/stmf"
)

// The connection state machine fuzzers: the input is a program of PDU
// operations (login stages, CHAP, text negotiation, SCSI commands with
// Data-Out, TMFs, NOP-Outs, logout and raw PDUs) played against a real
// connection over net.Pipe, with a RAM LU behind it. Invariants: no
// panic (a recovered one is logged as "panic" and fails), the response
// budget's shares never exceed their limits, and once the initiator side
// closes, the connection and every goroutine it started are gone.

const fuzzCHAPInitiator = "iqn.2026-01.test:fuzz-chap"

// fuzzEnv is one server shared by a fuzz process's inputs.
type fuzzEnv struct {
	srv    *Server
	local  *net.TCPAddr
	panics *panicCatcher
}

// panicCatcher is a slog handler that remembers records mentioning a
// panic (the connection's recover logs one).
type panicCatcher struct {
	mu  sync.Mutex
	msg string
}

func (p *panicCatcher) take() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.msg
	p.msg = ""
	return m
}

// catchHandler discards log records but hands those about a panic to
// its panicCatcher.
type catchHandler struct{ pc *panicCatcher }

func (h catchHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h catchHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h catchHandler) WithGroup(string) slog.Handler            { return h }
func (h catchHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		msg := r.Message
		r.Attrs(func(a slog.Attr) bool { msg += " " + a.String(); return true })
		h.pc.mu.Lock()
		h.pc.msg = msg
		h.pc.mu.Unlock()
	}
	return nil
}

func newCatchLogger(pc *panicCatcher) *slog.Logger { return slog.New(catchHandler{pc}) }

func newFuzzEnv(t testing.TB) *fuzzEnv {
	pc := &panicCatcher{}
	log := newCatchLogger(pc)
	fw := stmf.New(log)
	l := newFakeLU(1 << 20)
	close(l.release) // opWait completes at once
	if err := fw.RegisterLU(l); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.AddView(l.GUID(), stmf.ViewEntry{}, true); err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(fw, Config{
		Portals:                  []string{"127.0.0.1:0"},
		Targets:                  []TargetConfig{{Name: testTarget}},
		Logger:                   log,
		MaxRecvDataSegmentLength: 16384,
		FirstBurstLength:         16384,
		MaxBurstLength:           65536,
		QueueDepth:               16,
		MaxIOSize:                256 << 10,
		DataOutBudget:            256 << 10,
		ResponseBudget:           256 << 10,
		LoginTimeout:             2 * time.Second,
		NOPInInterval:            50 * time.Millisecond,
		NOPInTimeout:             100 * time.Millisecond,
		LogoutWait:               10 * time.Millisecond,
		AuthFailDelay:            -1,
		Auth: AuthFunc(func(_ context.Context, r AuthRequest) (CHAPCredentials, error) {
			if r.InitiatorName == fuzzCHAPInitiator {
				return CHAPCredentials{Required: true, InitiatorUser: "u", InitiatorSecret: "0123456789ab",
					TargetUser: "t", TargetSecret: "ba9876543210"}, nil
			}
			return CHAPCredentials{}, nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return &fuzzEnv{srv: srv, local: srv.Addrs()[0].(*net.TCPAddr), panics: pc}
}

// pipeConn is one end of net.Pipe with TCP addresses, so the server
// treats it as a connection to its portal.
type pipeConn struct {
	net.Conn
	local, remote net.Addr
}

func (p pipeConn) LocalAddr() net.Addr  { return p.local }
func (p pipeConn) RemoteAddr() net.Addr { return p.remote }

// fuzzDriver turns the input program into PDUs.
type fuzzDriver struct {
	nc     net.Conn
	prog   []byte
	cmdSN  uint32
	itt    uint32
	statSN uint32
	mu     sync.Mutex
	r2ts   [][3]uint32 // itt, ttt, offset of R2Ts seen
	tsih   uint16
	seen   map[pdu.Opcode]int
}

func (d *fuzzDriver) byte() byte {
	if len(d.prog) == 0 {
		return 0
	}
	b := d.prog[0]
	d.prog = d.prog[1:]
	return b
}

func (d *fuzzDriver) u16() uint16 { return uint16(d.byte())<<8 | uint16(d.byte()) }

func (d *fuzzDriver) send(h *pdu.Header, ahs, data []byte) error {
	d.mu.Lock()
	h.SetU32(pdu.OffExpStatSN, d.statSN)
	d.mu.Unlock()
	_ = d.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, err := d.nc.Write(pdu.AppendPDU(nil, h, ahs, data, false, false))
	return err
}

// fuzzKeys are the keys text and login operations pick from.
var fuzzKeyNames = []string{"HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength", "MaxBurstLength",
	"FirstBurstLength", "ImmediateData", "InitialR2T", "MaxOutstandingR2T", "ErrorRecoveryLevel",
	"SendTargets", "MaxConnections", "TargetAlias", "X-vendor", "IFMarkInt", "AuthMethod", "CHAP_A",
	"DefaultTime2Wait", "DataPDUInOrder", "TaskReporting", "InitiatorAlias"}
var fuzzValues = []string{"None", "CRC32C", "512", "8192", "65536", "16777215", "0", "Yes", "No", "All",
	"1", "2", "x", "", "None,CRC32C", "0x100", "NotUnderstood", "5"}

func (d *fuzzDriver) keys() []byte {
	var b []byte
	for n := int(d.byte() % 4); n >= 0; n-- {
		b = pdu.AppendText(b, fuzzKeyNames[int(d.byte())%len(fuzzKeyNames)], fuzzValues[int(d.byte())%len(fuzzValues)])
	}
	return b
}

func (d *fuzzDriver) login(transit, cont bool, csg, nsg uint8, text []byte) error {
	var h pdu.Header
	h.SetOpcode(pdu.OpLoginReq, true)
	h.SetLoginFlags(transit, cont, csg, nsg)
	h.SetISID([6]byte{0x80, 0, 0, 0, 0, 7})
	h.SetCID(1)
	h.SetU32(pdu.OffCmdSN, d.cmdSN)
	return d.send(&h, nil, text)
}

// step plays one operation; false stops the program.
func (d *fuzzDriver) step() bool {
	op := d.byte()
	var err error
	switch op % 12 {
	case 0: // security stage
		name := testInitiator
		if d.byte()&1 == 1 {
			name = fuzzCHAPInitiator
		}
		kvs := []pdu.KV{kv("InitiatorName", name), kv("TargetName", testTarget), kv("AuthMethod", "CHAP,None")}
		if d.byte()&1 == 1 {
			kvs = []pdu.KV{kv("InitiatorName", name), kv("SessionType", "Discovery"), kv("AuthMethod", "None")}
		}
		err = d.login(d.byte()&1 == 1, false, pdu.StageSecurity, pdu.StageOperational, pdu.EncodeText(kvs))
	case 1: // operational stage to full feature phase
		err = d.login(true, false, pdu.StageOperational, pdu.StageFullFeature, d.keys())
	case 2: // CHAP
		var text []byte
		switch d.byte() % 3 {
		case 0:
			text = pdu.AppendText(nil, "CHAP_A", "5")
		case 1:
			text = pdu.AppendText(nil, "CHAP_N", "u")
			text = pdu.AppendText(text, "CHAP_R", fmt.Sprintf("0x%032x", d.u16()))
		default:
			text = pdu.AppendText(nil, "CHAP_N", "u")
			text = pdu.AppendText(text, "CHAP_R", "0x00")
			text = pdu.AppendText(text, "CHAP_I", "7")
			text = pdu.AppendText(text, "CHAP_C", "0x0102030405060708")
		}
		f := d.byte()
		err = d.login(f&1 == 1, f&2 == 2, pdu.StageSecurity, pdu.StageOperational, text)
	case 3: // raw login PDU
		f := d.byte()
		err = d.login(f&0x80 != 0, f&0x40 != 0, f>>2&3, f&3, d.keys())
	case 4: // SCSI command
		f := d.byte()
		var h pdu.Header
		h.SetOpcode(pdu.OpSCSICmd, f&1 == 1)
		flags := byte(pdu.FlagFinal) | f>>5 // task attribute
		read, write := f&2 == 2, f&4 == 4
		if read {
			flags |= pdu.FlagRead
		}
		if write {
			flags |= pdu.FlagWrite
		}
		h.SetFlags(flags)
		d.itt++
		h.SetITT(d.itt)
		blocks := uint32(d.byte()%64 + 1)
		edtl := blocks * blockSize
		if f&8 == 8 {
			edtl = uint32(d.u16())
		}
		h.SetU32(pdu.OffEDTL, edtl)
		h.SetU32(pdu.OffCmdSN, d.cmdSN)
		if f&1 == 0 {
			d.cmdSN++
		}
		cdb := h.CDB16()
		switch d.byte() % 6 {
		case 0:
			copy(cdb, cdbRW(0x28, uint32(d.byte()), uint16(blocks)))
		case 1:
			copy(cdb, cdbRW(0x2a, uint32(d.byte()), uint16(blocks)))
		case 2:
			cdb[0] = 0x12
			binary.BigEndian.PutUint16(cdb[3:], 96)
		case 3:
			cdb[0] = opBidi
		case 4:
			cdb[0] = d.byte()
		default:
			cdb[0] = opWait
		}
		var imm []byte
		if write && f&16 == 16 {
			imm = make([]byte, min(edtl, uint32(d.u16())%16384))
		}
		err = d.send(&h, nil, imm)
	case 5: // Data-Out for an R2T seen, or unsolicited
		var h pdu.Header
		h.SetOpcode(pdu.OpDataOut, false)
		f := d.byte()
		h.SetFlags(f & pdu.FlagFinal)
		h.SetITT(d.itt)
		h.SetU32(pdu.OffTTT, pdu.ReservedTag)
		d.mu.Lock()
		if n := len(d.r2ts); n > 0 {
			r := d.r2ts[int(d.byte())%n]
			h.SetITT(r[0])
			h.SetU32(pdu.OffTTT, r[1])
			h.SetU32(pdu.OffBufferOffset, r[2])
		}
		d.mu.Unlock()
		h.SetU32(pdu.OffDataSN, uint32(d.byte()%4))
		err = d.send(&h, nil, make([]byte, int(d.u16())%16384))
	case 6: // TMF
		var h pdu.Header
		h.SetOpcode(pdu.OpTaskMgmtReq, d.byte()&1 == 1)
		h.SetFlags(pdu.FlagFinal | d.byte()%9)
		d.itt++
		h.SetITT(d.itt)
		h.SetU32(pdu.OffTTT, d.itt-uint32(d.byte()%4)-1) // referenced task
		h.SetU32(pdu.OffCmdSN, d.cmdSN)
		h.SetU32(pdu.OffRefCmdSN, d.cmdSN-uint32(d.byte()%4))
		err = d.send(&h, nil, nil)
	case 7: // Text negotiation
		var h pdu.Header
		h.SetOpcode(pdu.OpTextReq, d.byte()&1 == 1)
		f := d.byte()
		h.SetFlags(f & (pdu.FlagFinal | pdu.FlagContinue))
		d.itt++
		h.SetITT(d.itt)
		h.SetU32(pdu.OffTTT, pdu.ReservedTag)
		h.SetU32(pdu.OffCmdSN, d.cmdSN)
		if !h.Immediate() {
			d.cmdSN++
		}
		err = d.send(&h, nil, d.keys())
	case 8: // NOP-Out
		var h pdu.Header
		imm := d.byte()&1 == 1
		h.SetOpcode(pdu.OpNOPOut, imm)
		h.SetFlags(pdu.FlagFinal)
		d.itt++
		h.SetITT(d.itt)
		h.SetU32(pdu.OffTTT, pdu.ReservedTag)
		h.SetU32(pdu.OffCmdSN, d.cmdSN)
		if !imm {
			d.cmdSN++
		}
		err = d.send(&h, nil, make([]byte, int(d.u16())%16384))
	case 9: // Logout
		var h pdu.Header
		h.SetOpcode(pdu.OpLogoutReq, d.byte()&1 == 1)
		h.SetFlags(pdu.FlagFinal | d.byte()%4)
		d.itt++
		h.SetITT(d.itt)
		h.SetCID(1)
		h.SetU32(pdu.OffCmdSN, d.cmdSN)
		err = d.send(&h, nil, nil)
	case 10: // raw PDU
		var h pdu.Header
		for i := range h {
			h[i] = d.byte()
		}
		h[4] = 0 // no AHS: keep the length sane
		n := int(d.u16()) % 16384
		h.SetDataSegmentLength(0)
		err = d.send(&h, nil, make([]byte, n))
	case 11: // pause: let the target work
		time.Sleep(time.Duration(d.byte()%8) * time.Millisecond)
	}
	return err == nil && len(d.prog) > 0
}

// readLoop drains the target's PDUs, remembering R2Ts and StatSN. With
// stall set it does not read until stop closes (a client that never
// reads).
func (d *fuzzDriver) readLoop(stall bool, stop <-chan struct{}) {
	if stall {
		<-stop
		return
	}
	rd := pdu.NewReader(bufio.NewReader(d.nc), 1<<24-1)
	var h pdu.Header
	for {
		if _, err := rd.ReadHeader(&h); err != nil {
			return
		}
		if err := rd.DiscardData(&h); err != nil {
			return
		}
		d.mu.Lock()
		d.seen[h.Opcode()]++
		switch h.Opcode() {
		case pdu.OpR2T:
			if len(d.r2ts) < 64 {
				d.r2ts = append(d.r2ts, [3]uint32{h.ITT(), h.U32(pdu.OffTTT), h.U32(pdu.OffBufferOffset)})
			}
		case pdu.OpLoginResp:
			d.tsih = h.TSIH()
		}
		if h.Opcode() != pdu.OpR2T && h.Opcode() != pdu.OpDataIn {
			d.statSN = h.U32(pdu.OffStatSN) + 1
		}
		d.mu.Unlock()
	}
}

// run plays prog against a fresh connection, checks the invariants and
// returns the PDUs the initiator side received, by opcode.
func (e *fuzzEnv) run(t *testing.T, prog []byte, prefix []byte) map[pdu.Opcode]int {
	if len(prog) == 0 {
		return nil
	}
	before := runtime.NumGoroutine()
	client, server := net.Pipe()
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	e.srv.handleConn(pipeConn{Conn: server, local: e.local, remote: remote}, e.local.String())
	d := &fuzzDriver{nc: client, prog: append(append([]byte(nil), prefix...), prog[1:]...), cmdSN: 1, seen: map[pdu.Opcode]int{}}
	stop := make(chan struct{})
	readDone := make(chan struct{})
	go func() { defer close(readDone); d.readLoop(prog[0]&1 == 1, stop) }()
	sampled := make(chan string, 1)
	go func() { sampled <- e.sampleBudget(stop) }()
	for d.step() {
	}
	time.Sleep(time.Millisecond)
	close(stop)
	client.Close()
	<-readDone
	if msg := <-sampled; msg != "" {
		t.Fatal(msg)
	}
	done := make(chan struct{})
	go func() { e.srv.connWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("connection still served 5 s after the initiator closed\n%s", buf[:runtime.Stack(buf, true)])
	}
	if m := e.panics.take(); m != "" {
		t.Fatalf("recovered panic: %s", m)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
	if n := len(e.srv.Sessions()); n != 0 {
		t.Fatalf("%d sessions left", n)
	}
	return d.seen
}

// sampleBudget watches every connection's response budget until stop
// and reports a share over its limit.
func (e *fuzzEnv) sampleBudget(stop <-chan struct{}) string {
	cfg := &e.srv.cfg
	taskMax := max(cfg.taskBudget(), int64(cfg.MaxIOSize)+respOverhead)
	for {
		e.srv.mu.Lock()
		for c := range e.srv.conns {
			if task, ctl := c.rb.used(); task > taskMax || ctl > cfg.ctlBudget() || task < 0 || ctl < 0 {
				e.srv.mu.Unlock()
				return fmt.Sprintf("response budget: %d task bytes (max %d), %d control bytes (max %d)", task, taskMax, ctl, cfg.ctlBudget())
			}
		}
		e.srv.mu.Unlock()
		select {
		case <-stop:
			return ""
		case <-time.After(200 * time.Microsecond):
		}
	}
}

// fuzzLoginPrefix is a program that logs in to the target (security,
// operational with some keys, then full feature phase).
var fuzzLoginPrefix = []byte{
	0, 0, 0, 1, // security stage, normal session, transit
	1, 0, 5, 7, // operational with one key, ImmediateData=Yes
}

func fuzzSeeds(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{0, 4, 0x02, 8, 0, 11, 0, 9, 0, 0})                      // read, pause, logout
	f.Add([]byte{0, 4, 0x04, 8, 1, 0, 11, 1, 5, 1, 0, 0x10, 0, 9, 0, 0}) // write with R2T + Data-Out
	f.Add([]byte{1, 8, 1, 0x40, 0, 8, 1, 0x40, 0, 8, 1, 0x40, 0, 8, 1})  // stalled reader, immediate NOP-Outs
	f.Add([]byte{0, 7, 1, 1, 0, 0, 1, 7, 1, 1, 9, 0})                    // text negotiation
	f.Add([]byte{0, 4, 0x07, 0, 5, 6, 1, 1, 0, 0, 6, 0, 5, 0, 0, 9, 0})  // bidi, ABORT TASK, LUN RESET
	f.Add([]byte{0, 10, 0x3f, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // raw PDU
}

// FuzzConnLogin plays programs from the first PDU: login stages, CHAP,
// raw login PDUs, then whatever follows.
func FuzzConnLogin(f *testing.F) {
	fuzzSeeds(f)
	f.Add([]byte{0, 0, 1, 0, 0, 2, 0, 0, 2, 1, 0x12, 0x34, 1})    // CHAP with a wrong response
	f.Add([]byte{0, 0, 1, 0, 0, 2, 0, 0, 2, 2, 1})                // mutual CHAP, wrong response
	f.Add([]byte{0, 3, 0xc7, 1, 2, 3, 3, 0x41, 0, 1, 1, 1, 1, 1}) // raw stages
	env := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, prog []byte) { _ = env.run(t, prog, nil) })
}

// FuzzConnFFP plays programs after a successful login: SCSI commands with
// Data-Out, TMFs, Text, NOP-Outs, logout and raw PDUs.
func FuzzConnFFP(f *testing.F) {
	fuzzSeeds(f)
	env := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, prog []byte) { _ = env.run(t, prog, fuzzLoginPrefix) })
}

// TestFuzzDriver: the fuzzers' driver really reaches full feature phase,
// moves data both ways and logs out, so their programs test something.
func TestFuzzDriver(t *testing.T) {
	env := newFuzzEnv(t)
	seen := env.run(t, []byte{0,
		4, 0x02, 7, 0, 0, 11, 5, // READ(10) of 8 blocks: the unit attention
		4, 0x02, 7, 0, 0, 11, 5, // again: Data-In
		4, 0x04, 7, 1, 0, 11, 5, // WRITE(10) of 8 blocks without data: R2T
		5, 0x80, 0, 0, 0x10, 0x00, 11, 5, // Data-Out for it
		9, 0, 0, 11, 5, // Logout
	}, fuzzLoginPrefix)
	for _, op := range []pdu.Opcode{pdu.OpLoginResp, pdu.OpDataIn, pdu.OpR2T, pdu.OpSCSIResp, pdu.OpLogoutResp} {
		if seen[op] == 0 {
			t.Errorf("no %s in %v", op, seen)
		}
	}
}

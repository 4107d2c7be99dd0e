package iscsi

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
)

// liveSession returns the server's only normal session.
func (e *testEnv) liveSession(t *testing.T) *session {
	t.Helper()
	e.srv.mu.Lock()
	defer e.srv.mu.Unlock()
	for _, ss := range e.srv.byTSIH {
		if !ss.discovery {
			return ss
		}
	}
	t.Fatal("no session")
	return nil
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

type r2tInfo struct{ itt, ttt, off, length uint32 }

// collectR2Ts reads PDUs until none arrives for quiet, returning the R2Ts
// and the last MaxCmdSN seen. Anything but an R2T or a ping fails.
func (in *initiator) collectR2Ts(quiet time.Duration) []r2tInfo {
	in.t.Helper()
	var out []r2tInfo
	for {
		_ = in.nc.SetReadDeadline(time.Now().Add(quiet))
		var h pdu.Header
		if _, err := in.rd.ReadHeader(&h); err != nil {
			return out
		}
		if err := in.rd.DiscardData(&h); err != nil {
			in.t.Fatal(err)
		}
		in.maxCmdSN = h.U32(pdu.OffMaxCmdSN)
		switch h.Opcode() {
		case pdu.OpR2T:
			out = append(out, r2tInfo{h.ITT(), h.U32(pdu.OffTTT), h.U32(pdu.OffBufferOffset), h.U32(pdu.OffResidual)})
		case pdu.OpNOPIn:
			if h.U32(pdu.OffTTT) != pdu.ReservedTag {
				in.nopOut(pdu.ReservedTag, h.U32(pdu.OffTTT), true, nil)
			}
		default:
			in.t.Fatalf("unexpected %s while collecting R2Ts", h.Opcode())
		}
	}
}

// TestDataOutBudget: a flood of large writes whose data is not sent yet
// pins at most the budget (not QueueDepth x size), the window stops
// growing meanwhile, and once the initiator sends its data every write
// completes, in order, with the right data.
func TestDataOutBudget(t *testing.T) {
	const (
		budget = 2 << 20
		size   = 1 << 20
		writes = 32
	)
	base := pattern(size, 0)
	gen := func(seed byte) []byte {
		b := append([]byte(nil), base...)
		for i := 0; i < size; i += 4096 {
			b[i] = seed
		}
		return b
	}
	env := startServer(t, func(c *Config) {
		c.DataOutBudget = budget
		c.NOPInInterval = -1
	})
	in := dial(t, env.addr)
	in.login(testTarget, kv("ImmediateData", "No"), kv("InitialR2T", "Yes"), kv("MaxBurstLength", "1048576"))
	maxAtStart := in.maxCmdSN
	before := heapInUse()

	// The data is generated when solicited, so the test itself does not
	// hold writes*size bytes.
	seed := map[uint32]byte{}
	var itts []uint32
	for i := 0; i < writes; i++ {
		itt := in.scsiCmd(cdbRW(0x2a, uint32(i%4*size/blockSize), size/blockSize), false, true, size, nil, false)
		seed[itt] = byte(i)
		itts = append(itts, itt)
	}
	r2ts := in.collectR2Ts(300 * time.Millisecond)
	soliciting := map[uint32]bool{}
	for _, r := range r2ts {
		soliciting[r.itt] = true
	}
	if len(soliciting) == 0 || len(soliciting) > budget/size {
		t.Fatalf("R2Ts for %d writes, want 1..%d", len(soliciting), budget/size)
	}
	ss := env.liveSession(t)
	big, unsol, waiting := ss.budgetUse()
	if big > budget || unsol != 0 || waiting != writes-len(soliciting) {
		t.Fatalf("budget use: %d admitted, %d unsolicited, %d waiting", big, unsol, waiting)
	}
	// The writes' buffers are live now; without the budget they would be
	// writes*size = 80 MiB.
	if grew := int64(heapInUse()) - int64(before); grew > 6*budget {
		t.Fatalf("heap grew by %d MiB with %d writes waiting for data", grew>>20, writes)
	}

	// Answer the admitted writes: they complete, and while writes still
	// wait for budget the window does not grow.
	data := map[uint32][]byte{}
	for _, r := range r2ts {
		if data[r.itt] == nil {
			data[r.itt] = gen(seed[r.itt])
		}
		in.sendDataOut(r.itt, r.ttt, data[r.itt], r.off, r.length)
	}
	done := map[uint32]bool{}
	for len(done) < writes {
		h, _, err := in.recv()
		if err != nil {
			t.Fatal(err)
		}
		switch h.Opcode() {
		case pdu.OpSCSIResp:
			if h[3] != 0 || done[h.ITT()] {
				t.Fatalf("response ITT %#x status %#x", h.ITT(), h[3])
			}
			if len(done) == 0 {
				if mx := h.U32(pdu.OffMaxCmdSN); mx != maxAtStart {
					t.Fatalf("MaxCmdSN moved from %d to %d with writes waiting for budget", maxAtStart, mx)
				}
			}
			done[h.ITT()] = true
			delete(data, h.ITT())
		case pdu.OpR2T:
			// The next writes are admitted as budget frees.
			if data[h.ITT()] == nil {
				data[h.ITT()] = gen(seed[h.ITT()])
			}
			in.sendDataOut(h.ITT(), h.U32(pdu.OffTTT), data[h.ITT()], h.U32(pdu.OffBufferOffset), h.U32(pdu.OffResidual))
			if big, _, _ := ss.budgetUse(); big > budget {
				t.Fatalf("%d bytes admitted, budget %d", big, budget)
			}
		case pdu.OpNOPIn:
		default:
			t.Fatalf("unexpected %s", h.Opcode())
		}
	}
	// Each region holds one whole write (writes to a region may run in
	// any order: the fake LU does not order overlapping writes).
	for region := 0; region < 4; region++ {
		ritt := in.scsiCmd(cdbRW(0x28, uint32(region*size/blockSize), size/blockSize), true, false, size, nil, false)
		r := in.wait(nil, ritt)[ritt]
		if len(r.data) != size || int(r.data[0])%4 != region || !bytes.Equal(r.data, gen(r.data[0])) {
			t.Fatalf("region %d does not hold one whole write", region)
		}
	}
	if big, unsol, waiting := ss.budgetUse(); big != 0 || unsol != 0 || waiting != 0 {
		t.Fatalf("budget not returned: %d %d %d", big, unsol, waiting)
	}
	// The window reopens.
	in.nopOut(in.nextITT(), pdu.ReservedTag, true, nil)
	if h, _ := in.expect(pdu.OpNOPIn); h.U32(pdu.OffMaxCmdSN) != in.cmdSN+DefaultQueueDepth-1 {
		t.Fatalf("window not reopened: MaxCmdSN %d, CmdSN %d", h.U32(pdu.OffMaxCmdSN), in.cmdSN)
	}
	in.logout()
}

// TestDataOutBudgetPaths: a write larger than the whole budget runs
// alone; writes with immediate data admitted late get their data merged;
// a write arriving out of CmdSN order waits for its predecessor's budget.
func TestDataOutBudgetPaths(t *testing.T) {
	env := startServer(t, func(c *Config) { c.DataOutBudget = 1 << 20 })
	t.Run("larger than the budget", func(t *testing.T) {
		in := dial(t, env.addr)
		in.isid[5] = 1
		in.login(testTarget, kv("ImmediateData", "No"), kv("InitialR2T", "Yes"))
		writeThenRead(t, in, 0, 3<<20, 7)
		in.logout()
	})
	t.Run("immediate data, admitted late", func(t *testing.T) {
		in := dial(t, env.addr)
		in.isid[5] = 2
		in.login(testTarget, kv("ImmediateData", "Yes"), kv("InitialR2T", "No"), kv("FirstBurstLength", "65536"), kv("MaxRecvDataSegmentLength", "65536"))
		const size = 768 << 10
		wbuf := map[uint32][]byte{}
		var itts []uint32
		for i := 0; i < 4; i++ {
			d := pattern(size, byte(0x40+i))
			itt := in.scsiCmd(cdbRW(0x2a, uint32(i*size/blockSize), size/blockSize), false, true, size, d[:32768], false)
			in.sendUnsolicited(itt, d, 32768, 65536)
			wbuf[itt] = d
			itts = append(itts, itt)
		}
		for itt, r := range in.wait(wbuf, itts...) {
			if r.status != 0 {
				t.Fatalf("write %#x: %v", itt, r)
			}
		}
		for i, itt := range itts {
			ritt := in.scsiCmd(cdbRW(0x28, uint32(i*size/blockSize), size/blockSize), true, false, size, nil, false)
			if r := in.wait(nil, ritt)[ritt]; !bytes.Equal(r.data, wbuf[itt]) {
				t.Fatalf("write %d: data differs", i)
			}
		}
		in.logout()
	})
	t.Run("out of CmdSN order", func(t *testing.T) {
		in := dial(t, env.addr)
		in.isid[5] = 3
		in.login(testTarget, kv("ImmediateData", "No"), kv("InitialR2T", "Yes"))
		const size = 768 << 10
		a, b := pattern(size, 1), pattern(size, 2)
		base := in.cmdSN
		in.cmdSN = base + 1
		ib := in.scsiCmd(cdbRW(0x2a, 0, size/blockSize), false, true, size, nil, false)
		in.cmdSN = base
		ia := in.scsiCmd(cdbRW(0x2a, 0, size/blockSize), false, true, size, nil, false)
		in.cmdSN = base + 2
		for itt, r := range in.wait(map[uint32][]byte{ia: a, ib: b}, ia, ib) {
			if r.status != 0 {
				t.Fatalf("write %#x: %v", itt, r)
			}
		}
		ritt := in.scsiCmd(cdbRW(0x28, 0, size/blockSize), true, false, size, nil, false)
		if r := in.wait(nil, ritt)[ritt]; !bytes.Equal(r.data, b) {
			t.Fatal("writes applied out of CmdSN order")
		}
		in.logout()
	})
	t.Run("aborted while waiting", func(t *testing.T) {
		in := dial(t, env.addr)
		in.isid[5] = 4
		in.login(testTarget, kv("ImmediateData", "No"), kv("InitialR2T", "Yes"))
		const size = 768 << 10
		sa := in.cmdSN
		ia := in.scsiCmd(cdbRW(0x2a, 0, size/blockSize), false, true, size, nil, false)
		sb := in.cmdSN
		ib := in.scsiCmd(cdbRW(0x2a, 0, size/blockSize), false, true, size, nil, false)
		r2ts := in.collectR2Ts(200 * time.Millisecond)
		if len(r2ts) == 0 || r2ts[0].itt != ia {
			t.Fatalf("R2Ts %+v, want the first write's", r2ts)
		}
		for _, r := range r2ts {
			if r.itt == ib {
				t.Fatal("second write solicited beyond the budget")
			}
		}
		// Abort both: the budget comes back and nothing is left waiting.
		if got := in.abortTMF(ib, sb); got != tmfRespComplete {
			t.Fatalf("abort waiting write: %d", got)
		}
		if got := in.abortTMF(ia, sa); got != tmfRespComplete {
			t.Fatalf("abort admitted write: %d", got)
		}
		ss := env.liveSession(t)
		deadline := time.Now().Add(5 * time.Second)
		for {
			big, unsol, waiting := ss.budgetUse()
			if big == 0 && unsol == 0 && waiting == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("budget after aborts: %d %d %d", big, unsol, waiting)
			}
			time.Sleep(5 * time.Millisecond)
		}
		writeThenRead(t, in, 0, 4096, 9)
		in.logout()
	})
}

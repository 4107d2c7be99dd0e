package iscsi

import (
	"bytes"
	"testing"
	"time"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
)

// liveConn returns the only connection of the server's only normal session.
func (e *testEnv) liveConn(t *testing.T) *conn {
	t.Helper()
	cs := e.liveSession(t).connList()
	if len(cs) != 1 {
		t.Fatalf("%d connections", len(cs))
	}
	return cs[0]
}

// watchBudget samples the connection's response budget until stop is
// closed and returns the largest total seen.
func watchBudget(c *conn, stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for {
			task, ctl := c.rb.used()
			peak = max(peak, task+ctl)
			select {
			case <-stop:
				out <- peak
				return
			case <-tk.C:
			}
		}
	}()
	return out
}

// TestResponseBudgetNOPFlood: 400 immediate NOP-Outs of 256 KiB from a
// client that never reads. Without a bound every echo stays queued
// (100 MiB); with one the reader stops reading and the held bytes stay
// within the budget.
func TestResponseBudgetNOPFlood(t *testing.T) {
	const budget = 4 << 20
	env := startServer(t, func(c *Config) {
		c.ResponseBudget = budget
		c.NOPInInterval = -1
	})
	in := dial(t, env.addr)
	in.login(testTarget, kv("MaxRecvDataSegmentLength", "262144"))
	c := env.liveConn(t)
	before := heapInUse()
	stop := make(chan struct{})
	peak := watchBudget(c, stop)

	payload := make([]byte, 256<<10)
	sent := 0
	for i := 0; i < 400; i++ {
		var h pdu.Header
		h.SetOpcode(pdu.OpNOPOut, true)
		h.SetFlags(pdu.FlagFinal)
		h.SetITT(uint32(i + 1))
		h.SetU32(pdu.OffTTT, pdu.ReservedTag)
		h.SetU32(pdu.OffCmdSN, in.cmdSN)
		b := pdu.AppendPDU(nil, &h, nil, payload, false, false)
		_ = in.nc.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := in.nc.Write(b); err != nil {
			break // the target stopped reading: back-pressure
		}
		sent++
	}
	time.Sleep(200 * time.Millisecond)
	grew := int64(heapInUse()) - int64(before)
	close(stop)
	p := <-peak
	t.Logf("%d NOP-Outs sent before back-pressure, peak %d KiB held, heap grew %d KiB", sent, p>>10, grew>>10)
	if sent == 400 {
		t.Errorf("all 400 NOP-Outs (100 MiB) were read by a target whose answers are not read")
	}
	if p > budget {
		t.Errorf("peak held %d bytes, budget %d", p, budget)
	}
	// Socket buffers are not heap; 8 MiB leaves room for the read buffer,
	// one PDU in flight and the test's own garbage.
	if grew > budget+8<<20 {
		t.Errorf("heap grew by %d MiB, budget %d MiB", grew>>20, budget>>20)
	}
	// Reading again drains everything and gives the budget back.
	in.nc.Close()
	waitFor(t, func() bool { task, ctl := c.rb.used(); return task == 0 && ctl == 0 })
}

// TestResponseBudgetImmediateReads: 48 immediate 512 KiB READs from a
// client that does not read yet. Responses are reserved before the commands run,
// so the LU runs only what fits; once the client reads, every read
// completes with its data, and the budget returns to zero.
func TestResponseBudgetImmediateReads(t *testing.T) {
	const (
		budget = 2 << 20
		size   = 512 << 10
		reads  = 48
	)
	env := startServer(t, func(c *Config) {
		c.ResponseBudget = budget
		c.NOPInInterval = -1
	})
	in := dial(t, env.addr)
	in.login(testTarget, kv("MaxRecvDataSegmentLength", "262144"))
	// Known data in each of the LU's four 1 MiB regions.
	for r := 0; r < 4; r++ {
		writeThenRead(t, in, uint32(r*size/blockSize), size, byte(0x30+r))
	}
	c := env.liveConn(t)
	before := heapInUse()
	stop := make(chan struct{})
	peak := watchBudget(c, stop)
	var itts []uint32
	for i := 0; i < reads; i++ {
		itts = append(itts, in.scsiCmd(cdbRW(0x28, uint32(i%4*size/blockSize), size/blockSize), true, false, size, nil, true))
	}
	time.Sleep(300 * time.Millisecond)
	grew := int64(heapInUse()) - int64(before)
	close(stop)
	p := <-peak
	t.Logf("peak %d KiB held, heap grew %d KiB", p>>10, grew>>10)
	if p > budget {
		t.Errorf("peak held %d bytes, budget %d", p, budget)
	}
	// Unbounded, the reads would hold 24 MiB.
	if grew > budget+6<<20 {
		t.Errorf("heap grew by %d MiB with %d reads unread, budget %d MiB", grew>>20, reads, budget>>20)
	}
	res := in.wait(nil, itts...)
	var want [4][]byte
	for r := range want {
		want[r] = pattern(size, byte(0x30+r))
	}
	for i, itt := range itts {
		r := res[itt]
		if r.status != 0 || len(r.data) != size || !bytes.Equal(r.data, want[i%4]) {
			t.Fatalf("read %d: status %#x, %d bytes", i, r.status, len(r.data))
		}
	}
	waitFor(t, func() bool { task, ctl := c.rb.used(); return task == 0 && ctl == 0 })
	in.logout()
}

// TestResponseBudgetLarge: a read larger than the SCSI share runs alone,
// and reads that wait for budget all complete.
func TestResponseBudgetLarge(t *testing.T) {
	env := startServer(t, func(c *Config) {
		c.ResponseBudget = 2 << 20
		c.MaxRecvDataSegmentLength = 65536
		c.NOPInInterval = -1
	})
	in := dial(t, env.addr)
	in.login(testTarget, kv("MaxRecvDataSegmentLength", "262144"))
	writeThenRead(t, in, 0, 3<<20, 9) // larger than the budget
	var itts []uint32
	for i := 0; i < 8; i++ {
		itts = append(itts, in.scsiCmd(cdbRW(0x28, 0, (1<<20)/blockSize), true, false, 1<<20, nil, false))
	}
	res := in.wait(nil, itts...)
	want := pattern(3<<20, 9)[:1<<20]
	for _, itt := range itts {
		if !bytes.Equal(res[itt].data, want) {
			t.Fatalf("read ITT %#x: wrong data", itt)
		}
	}
	in.logout()
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

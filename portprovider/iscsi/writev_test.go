package iscsi

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
)

// tcpConnPair returns a server-side conn over real loopback TCP and the
// client's end, whose receive buffer is small so the server's socket
// fills quickly.
func tcpConnPair(t *testing.T) (*conn, net.Conn) {
	t.Helper()
	server, client := loopbackPair(t)
	c := newConn(&Server{log: testLogger(t)}, server)
	t.Cleanup(c.abort)
	c.sess = &session{}
	c.ffp.Store(true)
	return c, client
}

// loopbackPair returns both ends of a loopback TCP connection; the
// client's end is closed at cleanup.
func loopbackPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return server, client
}

// queueNOPs queues n NOP-Ins numbered from first, each with size bytes of
// data that encode its number, charged to the control budget.
func queueNOPs(c *conn, first, n, size int) {
	for i := first; i < first+n; i++ {
		var h pdu.Header
		h.SetOpcode(pdu.OpNOPIn, false)
		h.SetFlags(pdu.FlagFinal)
		h.SetITT(uint32(i))
		h.SetU32(pdu.OffTTT, pdu.ReservedTag)
		data := bytes.Repeat([]byte{byte(i)}, size)
		binary.BigEndian.PutUint32(data, uint32(i))
		charge := ctlCost(size)
		c.rb.ctlUsed.Add(charge)
		if !c.enqueue(outItem{hdr: h, data: data, stat: statConsume, ctlCharge: charge}) {
			panic("connection closed")
		}
	}
}

// expectNOPs reads n NOP-Ins queued by queueNOPs from first on: in order,
// each with its own data, StatSNs consecutive.
func expectNOPs(t *testing.T, client net.Conn, rd *pdu.Reader, first, n, size int) {
	t.Helper()
	buf := make([]byte, size)
	var statSN uint32
	for i := first; i < first+n; i++ {
		var h pdu.Header
		_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := rd.ReadHeader(&h); err != nil {
			t.Fatalf("PDU %d of %d: %v (never written?)", i, first+n, err)
		}
		if err := rd.ReadData(&h, buf[:h.DataSegmentLength()]); err != nil {
			t.Fatalf("PDU %d data: %v", i, err)
		}
		if got := h.ITT(); got != uint32(i) {
			t.Fatalf("PDU %d has ITT %d: out of order", i, got)
		}
		if got := binary.BigEndian.Uint32(buf); got != uint32(i) || buf[size-1] != byte(i) {
			t.Fatalf("PDU %d carries the data of %d (last byte %d)", i, got, buf[size-1])
		}
		if sn := h.U32(pdu.OffStatSN); i > first && sn != statSN+1 {
			t.Fatalf("PDU %d StatSN %d after %d", i, sn, statSN)
		}
		statSN = h.U32(pdu.OffStatSN)
	}
}

// TestWriteNoWaitHandsRestToWriter: a burst the reader writes without
// waiting stops where the socket is full; the writer goroutine's next
// batch sends the rest first, then what was queued since, in order, with
// consecutive StatSNs, and releases each item once, only after it went.
func TestWriteNoWaitHandsRestToWriter(t *testing.T) {
	c, client := tcpConnPair(t)
	if c.raw == nil {
		t.Fatal("a TCP connection has no raw conn: the reader could never write")
	}
	const size, first, later = 256 << 10, 64, 8
	queueNOPs(c, 0, first, size)
	c.wmu.Lock()
	finished, closed := c.writeQueued(false)
	c.wmu.Unlock()
	if finished || closed {
		t.Fatalf("16 MiB to a client that does not read: finished=%v closed=%v, want a rest for the writer", finished, closed)
	}
	if c.w.rest == nil {
		t.Fatal("no rest kept for the writer")
	}
	if _, ctl := c.rb.used(); ctl == 0 {
		t.Fatal("items released before they were written")
	}
	// A second no-wait attempt must not overtake the pending rest.
	queueNOPs(c, first, later, size)
	c.wmu.Lock()
	finished, _ = c.writeQueued(false)
	c.wmu.Unlock()
	if finished {
		t.Fatal("the reader wrote past a pending rest")
	}

	done := make(chan error, 1)
	go func() {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		if _, closed := c.writeQueued(true); closed {
			done <- net.ErrClosed
			return
		}
		done <- nil
	}()
	expectNOPs(t, client, pdu.NewReader(bufio.NewReader(client), size), 0, first+later, size)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ctl := c.rb.used(); ctl != 0 {
		t.Fatalf("%d control bytes still charged after everything was written", ctl)
	}
	// With room in the socket the reader's attempt finishes by itself.
	queueNOPs(c, 0, 1, 512)
	c.wmu.Lock()
	finished, _ = c.writeQueued(false)
	c.wmu.Unlock()
	if !finished {
		t.Fatal("a small batch to an idle socket was handed over")
	}
}

// TestHandOverReachesTheWire: a burst's responses (8 MiB) fill the socket
// of a client that does not read yet; the reader hands the rest to the
// writer goroutine, which must send all of it with nothing queued after
// it.
func TestHandOverReachesTheWire(t *testing.T) {
	c, client := tcpConnPair(t)
	go c.writeLoop()
	const size, n = 256 << 10, maxHeld
	c.holdWakes()
	queueNOPs(c, 0, n, size)
	c.releaseWakes()
	expectNOPs(t, client, pdu.NewReader(bufio.NewReader(client), size), 0, n, size)
	c.abort()
	select {
	case <-c.writerDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer did not stop after abort")
	}
	if _, ctl := c.rb.used(); ctl != 0 {
		t.Fatalf("%d control bytes still charged", ctl)
	}
}

// TestNoWaitWriteAfterTimedWrite: the writer goroutine's write deadline
// covers its own write only. Left set, it failed the reader's next write
// once it had passed and the connection was dropped (seen in the cluster
// failover test after 30 s without a wait).
func TestNoWaitWriteAfterTimedWrite(t *testing.T) {
	c, client := tcpConnPair(t)
	c.writeTimeout = 50 * time.Millisecond
	queueNOPs(c, 0, 1, 512)
	c.wmu.Lock()
	c.writeQueued(true)
	c.wmu.Unlock()
	time.Sleep(3 * c.writeTimeout)
	queueNOPs(c, 1, 1, 512)
	c.wmu.Lock()
	finished, closed := c.writeQueued(false)
	c.wmu.Unlock()
	if !finished || closed || c.w.failed {
		t.Fatalf("write after the timed write's deadline: finished=%v closed=%v failed=%v", finished, closed, c.w.failed)
	}
	expectNOPs(t, client, pdu.NewReader(bufio.NewReader(client), 512), 0, 2, 512)
}

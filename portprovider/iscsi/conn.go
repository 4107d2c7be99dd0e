package iscsi

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// Reject reason codes (RFC 7143 11.17.1).
const (
	rejectDataDigest      = 0x02
	rejectSNACK           = 0x03
	rejectProtocolError   = 0x04
	rejectCmdNotSupported = 0x05
	rejectImmediateCmd    = 0x06
	rejectTaskInProgress  = 0x07
	rejectInvalidField    = 0x09
	rejectWaitingLogout   = 0x0c
)

var (
	errConnClosed = errors.New("iscsi: connection closed")
	errLoggedOut  = errors.New("iscsi: logged out")
)

// StatSN handling of an outgoing PDU.
const (
	statNone    = iota // no StatSN field
	statPeek           // carries the next StatSN without consuming it (R2T, NOP-In ping, non-final Data-In)
	statConsume        // a status: carries StatSN and advances it
)

// outItem is one unit of work for the connection writer.
type outItem struct {
	hdr   pdu.Header
	data  []byte
	stat  uint8
	cmd   *cmd         // with res: a SCSI response (Data-In + status)
	res   *stmf.Result // released after writing
	close bool         // close the connection once written
	noop  bool         // nothing to write (a bare close marker)
	// Response budget charges given back once written or dropped.
	taskCharge, ctlCharge int64
}

// conn is one TCP connection: a reader goroutine (serve) that decodes
// PDUs and dispatches them, and a writer goroutine that owns StatSN and
// batches queued PDUs into single writes.
type conn struct {
	srv  *Server
	nc   net.Conn
	log  *slog.Logger
	br   *bufio.Reader
	rd   *pdu.Reader
	sess *session
	neg  *negotiator
	cid  uint16

	hdrDigest  bool // writer side, set before the writer starts
	dataDigest bool
	maxSend    atomic.Uint32 // the initiator's MaxRecvDataSegmentLength

	qmu     sync.Mutex
	q       []outItem
	qclosed bool
	// While the reader works through a burst of commands already in its
	// buffer it holds the writer's wake-ups back (holdWakes); at the end
	// it writes the burst's responses itself or wakes the writer once
	// (releaseWakes): one write per burst, and no hand-off to another
	// goroutine (often on another CPU) while the reader still runs.
	holdWake   bool
	held       int  // items queued while holdWake, not yet announced
	handOver   bool // the reader left the writer a rest to write
	wake       chan struct{}
	writerDone chan struct{}
	wmu        sync.Mutex
	raw        syscall.RawConn // nil: only the writer goroutine writes
	// writeTimeout bounds a write that waits for the initiator to read
	// (the writer goroutine's); a connection that takes no data that long
	// is dropped.
	writeTimeout time.Duration
	w            writerState // guarded by wmu
	statSN       uint32      // guarded by wmu once the writer runs

	done      chan struct{}
	doneOnce  sync.Once
	flushWait bool // an item with close=true was queued: let the writer finish first

	tmu   sync.Mutex
	tasks map[uint32]*cmd // by ITT

	ttt atomic.Uint32

	// Text request/response continuation (reader only).
	textReq     []byte
	textReqTTT  uint32
	textResp    []byte
	textRespTTT uint32
	textITT     uint32

	lastRecv  atomic.Int64
	pingTTT   atomic.Uint32
	pingSent  atomic.Int64
	kaMu      sync.Mutex
	ka        *time.Timer
	loggedOut bool
	ffp       atomic.Bool // login finished: sess and the writer are set up

	rb *respBudget
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		srv:        s,
		nc:         nc,
		log:        s.log.With("remote", nc.RemoteAddr().String()),
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
		done:       make(chan struct{}),
		tasks:      map[uint32]*cmd{},
		rb:         newRespBudget(s.cfg.taskBudget(), s.cfg.ctlBudget()),
	}
	c.maxSend.Store(8192)
	c.writeTimeout = writeTimeout
	c.w.out = new(net.Buffers)
	c.w.writev = c.writevOnce // bound once: no closure per no-wait write
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	c.br = bufio.NewReaderSize(newPollReader(c, s.cfg.IdlePoll), 64<<10)
	c.rd = pdu.NewReader(c.br, loginMaxData) // raised once login succeeds
	return c
}

// abort closes the connection at once (idempotent, never blocks).
func (c *conn) abort() {
	c.doneOnce.Do(func() {
		close(c.done)
		c.nc.Close()
		c.qmu.Lock()
		c.qclosed = true
		c.qmu.Unlock()
		c.wakeWriter()
	})
}

func (c *conn) serve() {
	writerStarted := false
	defer func() {
		if r := recover(); r != nil {
			// A bug must not take the daemon down with it.
			c.log.Error("iscsi: connection handler panic", "panic", fmt.Sprint(r))
		}
		c.cleanup(writerStarted)
	}()
	_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.LoginTimeout))
	err := func() error {
		defer c.srv.guard.loginOver()
		return c.login()
	}()
	if err != nil {
		c.countLoginEnd(err)
		c.loginFailed(err)
		return
	}
	// Login's deadlines end with it (a write deadline left behind would
	// fail the reader's writes once it passed).
	_ = c.nc.SetDeadline(time.Time{})
	c.countLogin()
	writerStarted = true
	go c.writeLoop()
	c.ffp.Store(true)
	c.startKeepalive()
	err = c.ffpLoop()
	switch {
	case errors.Is(err, errLoggedOut):
		c.log.Debug("iscsi: logged out")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		c.log.Debug("iscsi: connection closed", "err", err)
	default:
		c.log.Info("iscsi: connection dropped", "err", err)
	}
}

// loginFailed reports why a login ended without a session.
func (c *conn) loginFailed(err error) {
	var le *loginError
	var ne net.Error
	switch {
	case errors.As(err, &le):
		c.srv.loginRejected(loginReason(le.status), c.nc.RemoteAddr(), le.Error())
	case errors.As(err, &ne) && ne.Timeout():
		c.srv.loginRejected(rejectTimeout, c.nc.RemoteAddr(), "login not finished in time")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		c.log.Debug("iscsi: connection closed during login", "err", err)
	default:
		c.srv.loginRejected(rejectProtocol, c.nc.RemoteAddr(), err.Error())
	}
}

func (c *conn) cleanup(writerStarted bool) {
	if writerStarted && c.flushWait {
		// Let a final Reject or Logout Response reach the wire.
		select {
		case <-c.writerDone:
		case <-time.After(2 * time.Second):
		}
	}
	c.abort()
	c.kaMu.Lock()
	if c.ka != nil {
		c.ka.Stop()
	}
	c.kaMu.Unlock()
	if writerStarted {
		<-c.writerDone
	}
	c.closeWaiting()
	if c.sess != nil {
		c.sess.removeConn(c)
	}
	// Every task has finished now (stmf Session.Close waited for them);
	// forget what is left.
	c.tmu.Lock()
	c.tasks = map[uint32]*cmd{}
	c.tmu.Unlock()
	// A finished command something still reaches names this connection;
	// it must not pin the read buffer too. Only the reader (this
	// goroutine, now done) reads through it.
	c.rd.R = nil
	c.br = nil
}

// enqueue hands an item to the writer. It never blocks. It returns false
// when the connection is closing; the caller then releases the item.
func (c *conn) enqueue(it outItem) bool {
	c.qmu.Lock()
	if c.qclosed {
		c.qmu.Unlock()
		return false
	}
	c.q = append(c.q, it)
	if c.holdWake && c.held < maxHeld {
		c.held++
		c.qmu.Unlock()
		return true
	}
	c.held = 0
	c.qmu.Unlock()
	c.wakeWriter()
	return true
}

// writeTimeout is how long the writer goroutine waits for the initiator to
// take a batch before it drops the connection.
const writeTimeout = 30 * time.Second

// maxHeld bounds the responses a burst holds back before the writer is
// woken anyway.
const maxHeld = 32

// holdWakes starts a burst: enqueue stops waking the writer. Reader only.
func (c *conn) holdWakes() {
	c.qmu.Lock()
	c.holdWake = true
	c.qmu.Unlock()
}

// releaseWakes ends a burst. What it held back the reader writes itself
// when the writer is idle and the socket takes it at once (no goroutine
// hand-off, no wake-up: the cheapest way out for a burst of inline
// reads); otherwise it wakes the writer. The reader calls it before
// anything that may block: reading from the socket, waiting for budget.
func (c *conn) releaseWakes() {
	c.qmu.Lock()
	n := c.held
	c.holdWake, c.held = false, 0
	c.qmu.Unlock()
	if n == 0 {
		return
	}
	if c.raw != nil && c.wmu.TryLock() {
		finished, _ := c.writeQueued(false)
		c.wmu.Unlock()
		if finished {
			return
		}
	}
	// The writer goroutine takes over: a rest the socket did not take
	// (the queue may be empty now), or the batch it is writing itself.
	c.qmu.Lock()
	c.handOver = true
	c.qmu.Unlock()
	c.wakeWriter()
}

// wakeWriter tells the writer goroutine to look at the queue (never
// blocks: one pending wake-up is enough).
func (c *conn) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) enqueueOrRelease(it outItem) {
	if !c.enqueue(it) {
		if it.res != nil && it.res.Release != nil {
			it.res.Release()
		}
		c.releaseCharges(it.taskCharge, it.ctlCharge)
	}
}

// writeLoop is the connection writer.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("iscsi: connection writer panic", "panic", fmt.Sprint(r))
			c.abort()
		}
	}()
	for {
		c.qmu.Lock()
		for len(c.q) == 0 && !c.qclosed && !c.handOver {
			c.qmu.Unlock()
			<-c.wake
			c.qmu.Lock()
		}
		c.handOver = false
		c.qmu.Unlock()
		c.wmu.Lock()
		_, closed := c.writeQueued(true)
		c.wmu.Unlock()
		if closed {
			return
		}
	}
}

// writerState is the writer's scratch, reused from batch to batch; wmu
// guards it. Whoever holds wmu writes: the writer goroutine, or the
// reader at the end of a burst (releaseWakes).
type writerState struct {
	batch []outItem
	bufs  net.Buffers
	arena []byte
	out   *net.Buffers // WriteTo's receiver escapes: one for the connection, not one per batch
	iov   []unix.Iovec
	// writeNoWait's RawConn callback (bound once, in newConn) and its
	// state.
	writev func(fd uintptr) bool
	nwBufs net.Buffers
	nwErr  error
	failed bool
	// A batch the reader began and the socket did not take whole: the
	// unwritten rest goes first, then the batch is released.
	rest      net.Buffers
	restBatch []outItem
	restClose bool
}

// writeQueued writes everything queued as one batch and releases it.
// With wait it blocks until the socket took it all; without, what the
// socket does not take at once stays in c.w.rest for the writer goroutine
// (finished is false then, and also when an earlier rest is still
// pending). closed reports that the connection is closing: the queue was
// drained and released. c.wmu is held.
func (c *conn) writeQueued(wait bool) (finished, closed bool) {
	w := &c.w
	if w.bufs == nil { // first batch, or the last one went to a rest
		w.bufs = make(net.Buffers, 0, 128)
		w.arena = make([]byte, 0, 32<<10)
	}
	if w.rest != nil {
		if !wait {
			return false, false
		}
		c.send(w.rest, true)
		w.rest = nil
		c.finish(w.restBatch, w.restClose)
		w.restBatch = nil
	}
	c.qmu.Lock()
	batch := c.q
	c.q = w.batch[:0]
	closed = c.qclosed
	c.qmu.Unlock()
	w.batch = batch
	if closed && len(batch) == 0 {
		return true, true
	}
	exp, max := c.sess.window()
	closeAfter := false
	bufs := w.bufs[:0]
	arena := w.arena[:0]
	for i := range batch {
		it := &batch[i]
		if w.failed || closeAfter {
			continue
		}
		if it.cmd != nil {
			arena, bufs = c.appendResult(arena, bufs, it, exp, max)
		} else if !it.noop {
			arena, bufs = c.appendItem(arena, bufs, it, exp, max)
		}
		if it.close {
			closeAfter = true
		}
	}
	w.arena, w.bufs = arena, bufs[:0]
	if rest := c.send(bufs, wait); len(rest) > 0 {
		// The arena, bufs and batch belong to the rest until it is written.
		w.rest, w.restBatch, w.restClose = rest, batch, closeAfter
		w.batch, w.bufs, w.arena = nil, nil, nil
		return false, false
	}
	clear(bufs) // no references to sent data stay behind
	c.finish(batch, closeAfter)
	if closed {
		// Drain anything queued concurrently, releasing it.
		c.qmu.Lock()
		rest := c.q
		c.q = nil
		c.qmu.Unlock()
		c.finish(rest, false)
	}
	return true, closed
}

// send writes bufs to the socket. With wait it blocks (up to the write
// timeout); without, it writes what the socket takes at once and returns
// the rest. A failed write aborts the connection; nothing is left then.
func (c *conn) send(bufs net.Buffers, wait bool) net.Buffers {
	w := &c.w
	if w.failed || len(bufs) == 0 {
		return nil
	}
	var err error
	if wait {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
		// The deadline is for this write only: left set, it would fail
		// the next write that must not wait (writeNoWait) once it passed.
		defer c.nc.SetWriteDeadline(time.Time{})
		// WriteTo consumes the slice it is called on: a copy keeps
		// bufs' capacity for the next batch (no allocation per batch).
		*w.out = bufs
		_, err = w.out.WriteTo(c.nc)
		*w.out = nil
		bufs = nil
	} else {
		bufs, err = c.writeNoWait(bufs)
	}
	if err != nil {
		w.failed = true
		c.log.Debug("iscsi: write failed", "err", err)
		c.abort()
		return nil
	}
	return bufs
}

// finish releases a written (or dropped) batch: result buffers, budget
// charges, and the connection when an item asked to close it.
func (c *conn) finish(batch []outItem, closeAfter bool) {
	var taskFree, ctlFree int64
	for i := range batch {
		if r := batch[i].res; r != nil && r.Release != nil {
			r.Release()
		}
		taskFree += batch[i].taskCharge
		ctlFree += batch[i].ctlCharge
		batch[i] = outItem{}
	}
	c.releaseCharges(taskFree, ctlFree)
	if closeAfter {
		c.abort()
	}
}

// appendHeader adds a finished header (and its digest) to the batch.
func (c *conn) appendHeader(arena []byte, bufs net.Buffers, h *pdu.Header) ([]byte, net.Buffers) {
	start := len(arena)
	arena = append(arena, h[:]...)
	if c.hdrDigest {
		// The digest of the copy, so h stays on the caller's stack.
		arena = binary.LittleEndian.AppendUint32(arena, pdu.CRC32C(0, arena[start:]))
	}
	return arena, appendPiece(bufs, arena, start)
}

// appendPiece adds arena[start:] to bufs, merging with the previous piece
// when it is the adjacent part of the same arena.
func appendPiece(bufs net.Buffers, arena []byte, start int) net.Buffers {
	if n := len(bufs); n > 0 && start > 0 {
		prev := bufs[n-1]
		if l := len(prev); l > 0 && l <= start && &prev[l-1] == &arena[start-1] {
			bufs[n-1] = arena[start-l : len(arena) : len(arena)]
			return bufs
		}
	}
	return append(bufs, arena[start:len(arena):len(arena)])
}

// appendData adds a data segment (not copied), padding and digest.
func (c *conn) appendData(arena []byte, bufs net.Buffers, data []byte) ([]byte, net.Buffers) {
	if len(data) == 0 {
		return arena, bufs
	}
	bufs = append(bufs, data)
	pad := pdu.Padding(uint32(len(data)))
	if pad == 0 && !c.dataDigest {
		return arena, bufs
	}
	start := len(arena)
	var zero [4]byte
	arena = append(arena, zero[:pad]...)
	if c.dataDigest {
		arena = binary.LittleEndian.AppendUint32(arena, pdu.DataDigest(data))
	}
	return arena, appendPiece(bufs, arena, start)
}

func (c *conn) stamp(h *pdu.Header, stat uint8, exp, max uint32) {
	switch stat {
	case statPeek:
		h.SetU32(pdu.OffStatSN, c.statSN)
	case statConsume:
		h.SetU32(pdu.OffStatSN, c.statSN)
		c.statSN++
	}
	h.SetU32(pdu.OffExpCmdSN, exp)
	h.SetU32(pdu.OffMaxCmdSN, max)
}

func (c *conn) appendItem(arena []byte, bufs net.Buffers, it *outItem, exp, max uint32) ([]byte, net.Buffers) {
	c.stamp(&it.hdr, it.stat, exp, max)
	it.hdr[4] = 0
	it.hdr.SetDataSegmentLength(uint32(len(it.data)))
	arena, bufs = c.appendHeader(arena, bufs, &it.hdr)
	return c.appendData(arena, bufs, it.data)
}

// appendResult turns a task result into Data-In PDUs (split by the
// initiator's MaxRecvDataSegmentLength and MaxBurstLength) and a status:
// collapsed into the last Data-In for GOOD without sense, otherwise a SCSI
// Response carrying the sense data.
func (c *conn) appendResult(arena []byte, bufs net.Buffers, it *outItem, exp, max uint32) ([]byte, net.Buffers) {
	cm, r := it.cmd, it.res
	var data []byte
	readLen := cm.edtl
	if cm.bidi {
		readLen = cm.bidiReadLen
	}
	if cm.read {
		data = r.Data
		if uint32(len(data)) > readLen {
			data = data[:readLen]
		}
	}
	// Residuals follow the costar contract: TransferLen (what the CDB
	// asked for) against the expected data transfer length.
	var rflags byte
	var resid uint32
	el, tl := cm.edtl, r.TransferLen
	if cm.bidi && cm.write {
		// For bidirectional commands the SCSI residual is about the write.
		tl = min(tl, el)
	}
	switch {
	case tl > el:
		rflags, resid = pdu.FlagOver, tl-el
	case tl < el:
		rflags, resid = pdu.FlagUnder, el-tl
	}
	var bflags byte
	var bresid uint32
	if cm.bidi {
		if n := uint32(len(data)); n < readLen {
			bflags, bresid = pdu.FlagBiUnder, readLen-n
		}
	}
	collapse := r.Status == scsi.StatusGood && len(r.Sense) == 0 && len(data) > 0 && !cm.bidi
	maxSeg := c.maxSend.Load()
	maxBurst := c.sess.p.MaxBurstLength
	var off, seq uint32
	total := uint32(len(data))
	for off < total {
		n := min(total-off, maxSeg, maxBurst-seq)
		last := off+n == total
		endSeq := last || seq+n == maxBurst
		var h pdu.Header
		h.SetOpcode(pdu.OpDataIn, false)
		var f byte
		if endSeq {
			f |= pdu.FlagFinal
		}
		stat := uint8(statNone)
		if last && collapse {
			f |= pdu.FlagStatus | rflags
			h[3] = byte(r.Status)
			h.SetU32(pdu.OffResidual, resid)
			stat = statConsume
		}
		h.SetFlags(f)
		h.SetITT(cm.itt)
		h.SetU32(pdu.OffTTT, pdu.ReservedTag)
		h.SetU32(pdu.OffDataSN, cm.sn)
		cm.sn++
		h.SetU32(pdu.OffBufferOffset, off)
		c.stamp(&h, stat, exp, max)
		h.SetDataSegmentLength(n)
		arena, bufs = c.appendHeader(arena, bufs, &h)
		arena, bufs = c.appendData(arena, bufs, data[off:off+n])
		off += n
		if endSeq {
			seq = 0
		} else {
			seq += n
		}
	}
	if collapse {
		return arena, bufs
	}
	var h pdu.Header
	h.SetOpcode(pdu.OpSCSIResp, false)
	h.SetFlags(pdu.FlagFinal | rflags | bflags)
	h[2] = 0 // command completed at target
	h[3] = byte(r.Status)
	h.SetITT(cm.itt)
	h.SetU32(pdu.OffDataSN, cm.sn) // ExpDataSN
	h.SetU32(pdu.OffBidiResidual, bresid)
	h.SetU32(pdu.OffResidual, resid)
	c.stamp(&h, statConsume, exp, max)
	var sense []byte
	if len(r.Sense) > 0 {
		start := len(arena)
		arena = binary.BigEndian.AppendUint16(arena, uint16(len(r.Sense)))
		arena = append(arena, r.Sense...)
		sense = arena[start:len(arena):len(arena)]
	}
	h.SetDataSegmentLength(uint32(len(sense)))
	arena, bufs = c.appendHeader(arena, bufs, &h)
	if len(sense) > 0 {
		// The sense bytes live in the arena; emit them as their own piece.
		bufs = append(bufs, sense)
		pad := pdu.Padding(uint32(len(sense)))
		if pad > 0 || c.dataDigest {
			start := len(arena)
			var zero [4]byte
			arena = append(arena, zero[:pad]...)
			if c.dataDigest {
				arena = binary.LittleEndian.AppendUint32(arena, pdu.DataDigest(sense))
			}
			bufs = appendPiece(bufs, arena, start)
		}
	}
	return arena, bufs
}

// newTTT returns a target transfer tag that is neither 0 nor all ones.
func (c *conn) newTTT() uint32 {
	for {
		t := c.ttt.Add(1)
		if t != 0 && t != pdu.ReservedTag {
			return t
		}
	}
}

// startKeepalive arms the NOP-In ping timer.
func (c *conn) startKeepalive() {
	iv := c.srv.cfg.NOPInInterval
	if iv < 0 {
		return
	}
	c.lastRecv.Store(time.Now().UnixNano())
	c.kaMu.Lock()
	c.ka = time.AfterFunc(c.kaTick(), c.keepalive)
	c.kaMu.Unlock()
}

func (c *conn) kaTick() time.Duration {
	t := min(c.srv.cfg.NOPInInterval, c.srv.cfg.NOPInTimeout) / 4
	return max(t, 5*time.Millisecond)
}

func (c *conn) keepalive() {
	select {
	case <-c.done:
		return
	default:
	}
	now := time.Now()
	if ttt := c.pingTTT.Load(); ttt != 0 {
		if now.Sub(time.Unix(0, c.pingSent.Load())) >= c.srv.cfg.NOPInTimeout {
			c.countNOPTimeout()
			c.log.Warn("iscsi: NOP-In ping unanswered, dropping connection", "timeout", c.srv.cfg.NOPInTimeout)
			c.abort()
			return
		}
	} else if now.Sub(time.Unix(0, c.lastRecv.Load())) >= c.srv.cfg.NOPInInterval {
		ttt := c.newTTT()
		c.pingSent.Store(now.UnixNano())
		c.pingTTT.Store(ttt)
		var h pdu.Header
		h.SetOpcode(pdu.OpNOPIn, false)
		h.SetFlags(pdu.FlagFinal)
		h.SetITT(pdu.ReservedTag)
		h.SetU32(pdu.OffTTT, ttt)
		c.enqueue(outItem{hdr: h, stat: statPeek})
	}
	c.kaMu.Lock()
	if c.ka != nil {
		c.ka.Reset(c.kaTick())
	}
	c.kaMu.Unlock()
}

// requestLogout asks the initiator to log out (Async Message, event 1).
func (c *conn) requestLogout(within time.Duration) {
	if !c.ffp.Load() || c.sess.discovery {
		c.abort()
		return
	}
	var h pdu.Header
	h.SetOpcode(pdu.OpAsyncMsg, false)
	h.SetFlags(pdu.FlagFinal)
	h.SetITT(pdu.ReservedTag)
	h[36] = 1 // target requests logout
	secs := uint16(max(within/time.Second, 1))
	h.SetU16(42, secs) // Parameter3: time to logout
	c.enqueue(outItem{hdr: h, stat: statConsume})
}

// reject queues a Reject PDU carrying the offending header.
func (c *conn) reject(reason byte, bad *pdu.Header, closeAfter bool) {
	c.countReject(reason)
	var h pdu.Header
	h.SetOpcode(pdu.OpReject, false)
	h.SetFlags(pdu.FlagFinal)
	h[2] = reason
	h.SetITT(pdu.ReservedTag)
	data := make([]byte, pdu.BHSLen)
	copy(data, bad[:])
	if closeAfter {
		c.flushWait = true
	}
	c.enqueueCtl(outItem{hdr: h, data: data, stat: statConsume, close: closeAfter})
}

// readSmall reads a non-SCSI data segment into a fresh buffer. A data
// digest error is answered with Reject and reported as ok=false with a
// nil error (the PDU is to be ignored).
func (c *conn) readSmall(h *pdu.Header) (data []byte, ok bool, err error) {
	n := h.DataSegmentLength()
	if n == 0 {
		return nil, true, nil
	}
	data = make([]byte, n)
	if err := c.rd.ReadData(h, data); err != nil {
		if errors.Is(err, pdu.ErrDataDigest) {
			c.reject(rejectDataDigest, h, false)
			return nil, false, nil
		}
		return nil, false, err
	}
	return data, true, nil
}

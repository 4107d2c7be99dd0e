package iscsi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// ASC/ASCQ 47h/05h PROTOCOL SERVICE CRC ERROR, for a task whose Data-Out
// failed its digest (RFC 7143 7.8, option b).
const ascProtocolServiceCRCError scsi.ASC = 0x4705

// r2tSeq is one outstanding R2T.
type r2tSeq struct {
	ttt, offset, length uint32
	received, dataSN    uint32
}

// cmd is one SCSI command on a connection; it is the stmf.Transport of its
// task.
type cmd struct {
	c           *conn
	itt         uint32
	lun         [8]byte
	cmdSN       uint32
	edtl        uint32
	read, write bool
	bidi        bool
	bidiReadLen uint32
	task        *stmf.Task
	// needAdmit: the write's solicited data waits for Data-Out budget
	// when it is submitted (set on arrival, then read-only).
	needAdmit bool

	// Data-Out sequencing, guarded by dmu: the reader, and the admitter
	// that sends a waiting write's first R2Ts. dmu is never held across
	// network I/O; lock order dmu before mu.
	dmu         sync.Mutex
	admitted    bool // buf is allocated, R2Ts may be sent
	received    uint32
	unsolNext   uint32 // next unsolicited offset
	unsolEnd    uint32 // end of the unsolicited area
	unsolDataSN uint32
	unsolOpen   bool   // unsolicited Data-Out still expected
	seqErr      error  // the Data-Out broke sequence; the task fails
	nextR2T     uint32 // next offset to solicit
	r2ts        []*r2tSeq
	sn          uint32 // R2TSN, then DataSN of Data-In (shared for bidi)

	// hasData: a write with Data-Out (set on arrival, then read-only).
	hasData bool
	// dataWait is made (under mu) only when ReceiveData must wait for the
	// Data-Out, and closed by completeData: most writes have all of their
	// data in before the LU asks, so they never pay for a channel.
	dataWait chan struct{}

	mu           sync.Mutex
	dataComplete bool
	dataErr      error
	submitted    bool
	aborted      bool // aborted before it reached stmf
	// noMoreR2T is set when a task management function aborted the task
	// in stmf: no R2T for it may follow the TMF response, even if the
	// budget frees up before the task itself has noticed the abort.
	noMoreR2T bool
	finished  bool // Deliver or Drop happened
	held      *stmf.Result
	// Buffers: written with dmu and mu held, read with either. buf is
	// the whole Data-Out (nil until admitted); ubuf holds the immediate
	// and unsolicited data of a write admitted later, copied into buf
	// once all data is in.
	buf, ubuf   []byte
	bigCharge   int64 // budget charged for buf as an admitted write
	unsolCharge int64 // budget charged for unsolicited buffers
	released    bool  // buffers and charges given back

	waiting bool // in the session's wait queue (guarded by session.mu)

	respCharge atomic.Int64 // response budget reserved for this command

	// The task and a 16-byte CDB live in the command: one allocation per
	// command, not three.
	taskMem stmf.Task
	cdbMem  [16]byte
}

var _ stmf.Transport = (*cmd)(nil)

// ReceiveData implements stmf.Transport.
func (cm *cmd) ReceiveData(ctx context.Context) ([]byte, error) {
	if !cm.hasData {
		return nil, nil
	}
	cm.mu.Lock()
	if !cm.dataComplete {
		if cm.dataWait == nil {
			cm.dataWait = make(chan struct{})
		}
		wait := cm.dataWait
		cm.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-cm.c.done:
			return nil, errConnClosed
		}
		cm.mu.Lock()
	}
	b, err := cm.dataLocked()
	cm.mu.Unlock()
	return b, err
}

// ReadyData implements stmf.ReadyTransport: ReceiveData without a wait
// when the Data-Out is all in.
func (cm *cmd) ReadyData() ([]byte, bool, error) {
	if !cm.hasData {
		return nil, true, nil
	}
	cm.mu.Lock()
	defer cm.mu.Unlock()
	if !cm.dataComplete {
		return nil, false, nil
	}
	b, err := cm.dataLocked()
	return b, true, err
}

// dataLocked returns a complete Data-Out, or why there is none. cm.mu is
// held.
func (cm *cmd) dataLocked() ([]byte, error) {
	if cm.dataErr != nil {
		return nil, cm.dataErr
	}
	if cm.buf == nil { // released: the command ended meanwhile
		return nil, errConnClosed
	}
	return cm.buf[:cm.edtl], nil
}

// Deliver implements stmf.Transport. It only queues: a write's status is
// held until all of its Data-Out has arrived.
func (cm *cmd) Deliver(r *stmf.Result) {
	cm.mu.Lock()
	if cm.finished {
		cm.mu.Unlock()
		if r.Release != nil {
			r.Release()
		}
		return
	}
	cm.finished = true
	if cm.write && cm.edtl > 0 && !cm.dataComplete {
		cm.held = r
		cm.mu.Unlock()
		return
	}
	if cm.dataErr != nil {
		r = crcErrorResult(r)
	}
	cm.mu.Unlock()
	cm.c.respond(cm, r)
}

// Drop implements stmf.Transport: the task was aborted, nothing is sent.
func (cm *cmd) Drop() {
	cm.mu.Lock()
	if cm.finished {
		cm.mu.Unlock()
		return
	}
	cm.finished = true
	cm.mu.Unlock()
	cm.c.forget(cm)
}

func crcErrorResult(r *stmf.Result) *stmf.Result {
	if r.Release != nil {
		r.Release()
	}
	return &stmf.Result{Status: scsi.StatusCheckCondition,
		Sense: scsi.NewSense(scsi.KeyAbortedCommand, ascProtocolServiceCRCError).Bytes()}
}

// respond queues the task's response and frees its slot.
func (c *conn) respond(cm *cmd, r *stmf.Result) {
	charge := cm.takeRespCharge()
	c.forget(cm)
	c.enqueueOrRelease(outItem{cmd: cm, res: r, taskCharge: charge})
}

// forget removes a finished task from the connection, gives its CmdSN
// window slot back, takes it out of the budget queue and gives its
// buffers and budget back.
func (c *conn) forget(cm *cmd) {
	c.tmu.Lock()
	if c.tasks[cm.itt] == cm {
		delete(c.tasks, cm.itt)
	}
	c.tmu.Unlock()
	if n := cm.takeRespCharge(); n != 0 {
		c.releaseCharges(n, 0)
	}
	c.sess.addInFlight(-1)
	if !cm.hasData {
		return
	}
	c.admitLater(c.sess.dequeue(cm))
	c.releaseBufs(cm)
}

// releaseBufs gives a finished command's buffers back: to the pool when
// all of its data is in (the reader no longer writes into them), else to
// the garbage collector (an aborted write whose Data-Out PDU may still be
// in progress). Its budget is returned either way, which may admit waiting
// writes.
func (c *conn) releaseBufs(cm *cmd) {
	cm.mu.Lock()
	if cm.released {
		cm.mu.Unlock()
		return
	}
	cm.released = true
	recycle := cm.dataComplete
	buf, ubuf := cm.buf, cm.ubuf
	// A finished command may stay reachable a while (an LU's bookkeeping,
	// a TMF's victim list); it must not pin its data buffers too.
	cm.buf, cm.ubuf = nil, nil
	big, unsol := cm.bigCharge, cm.unsolCharge
	cm.bigCharge, cm.unsolCharge = 0, 0
	cm.mu.Unlock()
	if recycle {
		if buf != nil {
			c.srv.pool.put(buf)
		}
		if ubuf != nil {
			c.srv.pool.put(ubuf)
		}
	}
	c.admitLater(c.sess.release(big, unsol))
}

// admitLater gives admitted writes their buffers and R2Ts in another
// goroutine (the caller may be an LU completing a task).
func (c *conn) admitLater(list []*cmd) {
	if len(list) > 0 {
		go admitAll(list)
	}
}

func admitAll(list []*cmd) {
	for len(list) > 0 {
		cm := list[0]
		list = append(list[1:], cm.c.admit(cm)...)
	}
}

// admit gives a write the session admitted (its budget already charged)
// its buffer and sends its R2Ts. A write that ended meanwhile returns the
// charge, and admit returns the writes that admits in turn.
func (c *conn) admit(cm *cmd) []*cmd {
	n := int64(cm.edtl)
	var buf []byte
	select {
	case <-c.done:
	default:
		buf = c.srv.pool.get(int(cm.edtl))
	}
	cm.dmu.Lock()
	cm.mu.Lock()
	ok := buf != nil && !cm.released && !cm.dataComplete && !cm.noMoreR2T
	if ok {
		cm.buf, cm.bigCharge = buf, n
	}
	cm.mu.Unlock()
	if !ok {
		cm.dmu.Unlock()
		if buf != nil {
			c.srv.pool.put(buf)
		}
		return c.sess.release(n, 0)
	}
	cm.admitted = true
	c.issueR2TsLocked(cm)
	cm.dmu.Unlock()
	return nil
}

// completeData marks the task's Data-Out complete (err == nil) or failed,
// wakes ReceiveData and sends a response that was held for the data. The
// caller must not hold cm.dmu.
func (c *conn) completeData(cm *cmd, err error) {
	cm.mu.Lock()
	if cm.dataComplete {
		cm.mu.Unlock()
		return
	}
	cm.dataComplete = true
	cm.dataErr = err
	held, wait := cm.held, cm.dataWait
	cm.held = nil
	cm.mu.Unlock()
	if wait != nil {
		close(wait)
	}
	if held != nil {
		if err != nil {
			held = crcErrorResult(held)
		}
		c.respond(cm, held)
	}
}

// mergeUnsolicitedLocked moves the data of a write admitted late from
// ubuf into buf once all of it is in, and returns ubuf's budget charge
// and the buffer to recycle. cm.dmu is held.
func (c *conn) mergeUnsolicitedLocked(cm *cmd) (ubuf []byte, charge int64) {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	if cm.ubuf == nil || cm.buf == nil || cm.released {
		return nil, 0
	}
	copy(cm.buf, cm.ubuf)
	ubuf, charge = cm.ubuf, cm.unsolCharge
	cm.ubuf, cm.unsolCharge = nil, 0
	return ubuf, charge
}

func taskAttr(flags byte) scsi.TaskAttr {
	switch flags & pdu.AttrMask {
	case 2:
		return scsi.TaskOrdered
	case 3:
		return scsi.TaskHeadOfQueue
	case 4:
		return scsi.TaskACA
	}
	return scsi.TaskSimple // 0 untagged, 1 simple
}

// consumeCmdSN lets a rejected non-immediate command use up its CmdSN so
// the window keeps moving.
func (c *conn) consumeCmdSN(h *pdu.Header) {
	if h.Immediate() {
		return
	}
	if c.sess.accept(h.U32(pdu.OffCmdSN), false, func() {}) {
		c.sess.drain()
	}
}

// handleSCSICmd decodes a SCSI Command PDU, reads its immediate data
// straight into the task's buffer, starts R2Ts and hands the task to stmf
// in CmdSN order.
func (c *conn) handleSCSICmd(h *pdu.Header, ahs []byte) error {
	p := &c.sess.p
	if c.sess.discovery {
		if err := c.rd.DiscardData(h); err != nil {
			return err
		}
		c.reject(rejectProtocolError, h, false)
		return nil
	}
	immediate := h.Immediate()
	cmdSN := h.U32(pdu.OffCmdSN)
	if !immediate && !c.sess.inWindow(cmdSN) {
		c.log.Debug("iscsi: command outside the CmdSN window dropped", "cmdsn", cmdSN)
		return c.rd.DiscardData(h)
	}
	flags := h.Flags()
	itt := h.ITT()
	edtl := h.U32(pdu.OffEDTL)
	dsl := h.DataSegmentLength()
	read, write := flags&pdu.FlagRead != 0, flags&pdu.FlagWrite != 0
	bad := func(reason byte, why string) error {
		c.log.Debug("iscsi: SCSI command rejected", "itt", itt, "why", why)
		if err := c.rd.DiscardData(h); err != nil {
			return err
		}
		c.reject(reason, h, false)
		c.consumeCmdSN(h)
		return nil
	}
	a, err := pdu.ParseAHS(ahs)
	if err != nil {
		return bad(rejectInvalidField, err.Error())
	}
	switch {
	case itt == pdu.ReservedTag:
		return bad(rejectInvalidField, "reserved ITT")
	case dsl > 0 && !write:
		return bad(rejectProtocolError, "immediate data without W bit")
	case dsl > edtl:
		return bad(rejectProtocolError, "immediate data longer than expected length")
	case dsl > 0 && !p.ImmediateData:
		return bad(rejectProtocolError, "immediate data not negotiated")
	case dsl > p.FirstBurstLength:
		return bad(rejectProtocolError, "immediate data beyond FirstBurstLength")
	case write && edtl > c.srv.cfg.MaxIOSize, read && a.BidiReadLen > c.srv.cfg.MaxIOSize:
		return bad(rejectInvalidField, "expected data transfer length too large")
	}
	c.tmu.Lock()
	_, dup := c.tasks[itt]
	n := len(c.tasks)
	c.tmu.Unlock()
	if dup {
		return bad(rejectTaskInProgress, "ITT in use")
	}
	if immediate && n >= 2*c.srv.cfg.QueueDepth {
		return bad(rejectImmediateCmd, "too many commands")
	}

	cm := &cmd{c: c, itt: itt, lun: h.LUN(), cmdSN: cmdSN, edtl: edtl, read: read, write: write,
		bidi: read && write, bidiReadLen: a.BidiReadLen}
	cdb := cm.cdbMem[:]
	if len(a.ExtCDB) > 0 {
		cdb = make([]byte, 16+len(a.ExtCDB))
	}
	copy(cdb, h.CDB16())
	copy(cdb[16:], a.ExtCDB)
	if write && edtl > 0 {
		cm.hasData = true
		unsolEnd := dsl
		if !p.InitialR2T {
			unsolEnd = max(dsl, min(edtl, p.FirstBurstLength))
		}
		// Immediate and unsolicited data arrives whatever we do, so its
		// buffer is always accepted; the solicited rest is what the
		// Data-Out budget holds back.
		switch {
		case unsolEnd == edtl:
			cm.buf, cm.unsolCharge, cm.admitted = c.srv.pool.get(int(edtl)), int64(edtl), true
			c.sess.chargeUnsolicited(int64(edtl))
		case c.sess.admitEarly(int64(edtl), immediate, cmdSN):
			cm.buf, cm.bigCharge, cm.admitted = c.srv.pool.get(int(edtl)), int64(edtl), true
		default:
			cm.needAdmit = true
			if unsolEnd > 0 {
				cm.ubuf, cm.unsolCharge = c.srv.pool.get(int(unsolEnd)), int64(unsolEnd)
				c.sess.chargeUnsolicited(int64(unsolEnd))
			}
		}
		if dsl > 0 {
			dst := cm.buf
			if cm.ubuf != nil {
				dst = cm.ubuf
			}
			if err := c.rd.ReadData(h, dst[:dsl]); err != nil {
				cm.dataComplete = true // nothing reads the buffers any more
				c.releaseBufs(cm)
				if errors.Is(err, pdu.ErrDataDigest) {
					// The command is discarded without using its CmdSN;
					// the initiator retries it (RFC 7143 7.8).
					c.reject(rejectDataDigest, h, false)
					return nil
				}
				return err
			}
		}
		cm.received = dsl
		cm.unsolNext = dsl
		cm.unsolEnd = unsolEnd
		cm.unsolOpen = cm.unsolEnd > dsl
		cm.nextR2T = cm.unsolEnd
	} else if dsl > 0 {
		if err := c.rd.DiscardData(h); err != nil {
			return err
		}
	}
	t := &cm.taskMem
	stmf.InitTask(t, cm)
	t.RawLUN = cm.lun
	t.CDB = cdb
	t.Attr = taskAttr(flags)
	t.Tag = uint64(itt)
	t.ExpectedLen = edtl
	switch {
	case read && write:
		t.Dir = scsi.DirBidi
	case read:
		t.Dir = scsi.DirRead
	case write:
		t.Dir = scsi.DirWrite
	default:
		t.Dir = scsi.DirNone
	}
	cm.task = t
	c.tmu.Lock()
	c.tasks[itt] = cm
	c.tmu.Unlock()
	if cm.hasData {
		if cm.received == edtl {
			c.completeData(cm, nil)
		} else if cm.admitted {
			cm.dmu.Lock()
			c.issueR2TsLocked(cm)
			cm.dmu.Unlock()
		}
	}
	if immediate {
		c.sess.addInFlight(1)
		c.submit(cm)
		return nil
	}
	if c.sess.acceptNext(cmdSN) {
		// In order (the common case): no queue entry, no closure.
		c.submit(cm)
		c.sess.drain()
		return nil
	}
	if !c.sess.accept(cmdSN, true, func() { c.submit(cm) }) {
		// Lost a race with session close.
		c.tmu.Lock()
		delete(c.tasks, itt)
		c.tmu.Unlock()
		if cm.hasData {
			c.releaseBufs(cm)
		}
		return nil
	}
	c.sess.drain()
	return nil
}

// submit hands a task to stmf, unless it was aborted while it waited for
// its CmdSN turn.
func (c *conn) submit(cm *cmd) {
	cm.mu.Lock()
	aborted := cm.aborted
	cm.mu.Unlock()
	if aborted {
		c.dropUnsubmitted(cm)
		return
	}
	// Its response must fit the budget before it runs; if not it waits
	// (after every command that waits already) and kickWaiting submits it.
	if c.admitTask(cm) {
		c.submitNow(cm, true)
	}
}

// submitNow hands a command whose response budget is charged to stmf.
// mayInline: the caller is the reader.
func (c *conn) submitNow(cm *cmd, mayInline bool) {
	cm.mu.Lock()
	if cm.aborted {
		cm.finished = true
		cm.mu.Unlock()
		c.forget(cm)
		return
	}
	cm.submitted = true
	inline := !cm.write || cm.dataComplete
	cm.mu.Unlock()
	// Writes are admitted to the Data-Out budget in submission order.
	if cm.needAdmit && c.sess.admitOrQueue(cm) {
		admitAll(c.admit(cm))
	}
	// Alone on the connection, any quick command runs on the reader; with
	// others in flight or input pending only one that never waits (a
	// read from the page cache, InlineNoWait): the hand-off to a worker
	// and back cost more than the read (BENCHMARKS.md, issue 14).
	if mayInline && inline && cm.edtl <= inlineMax {
		idle := c.idleForInline()
		cm.task.Inline = idle || !cm.write
		cm.task.InlineNoWait = !idle
	}
	c.sess.st.Submit(cm.task)
}

// inlineMax bounds the commands that may run in the reader goroutine.
const inlineMax = 64 << 10

// idleForInline reports whether the command being submitted may run in
// this (reader) goroutine: it is the connection's only command and no
// further input is already buffered, so nothing waits on the reader.
// The LU still decides whether the command itself is quick.
func (c *conn) idleForInline() bool {
	c.tmu.Lock()
	n := len(c.tasks)
	c.tmu.Unlock()
	return n == 1 && c.rd.R != nil && c.rd.R.Buffered() == 0
}

// issueR2TsLocked solicits the rest of an admitted write, keeping at most
// MaxOutstandingR2T R2Ts of at most MaxBurstLength each outstanding.
// cm.dmu is held.
func (c *conn) issueR2TsLocked(cm *cmd) {
	p := &c.sess.p
	cm.mu.Lock()
	stop := cm.finished && cm.held == nil || cm.dataComplete || cm.noMoreR2T
	cm.mu.Unlock()
	if stop || cm.seqErr != nil || !cm.admitted {
		return
	}
	for uint32(len(cm.r2ts)) < p.MaxOutstandingR2T && cm.nextR2T < cm.edtl {
		l := min(cm.edtl-cm.nextR2T, p.MaxBurstLength)
		s := &r2tSeq{ttt: c.newTTT(), offset: cm.nextR2T, length: l}
		cm.r2ts = append(cm.r2ts, s)
		c.countR2T()
		cm.nextR2T += l
		var h pdu.Header
		h.SetOpcode(pdu.OpR2T, false)
		h.SetFlags(pdu.FlagFinal)
		h.SetLUN(cm.lun)
		h.SetITT(cm.itt)
		h.SetU32(pdu.OffTTT, s.ttt)
		h.SetU32(pdu.OffDataSN, cm.sn) // R2TSN
		cm.sn++
		h.SetU32(pdu.OffBufferOffset, s.offset)
		h.SetU32(pdu.OffResidual, l) // Desired Data Transfer Length
		c.enqueue(outItem{hdr: h, stat: statPeek})
	}
}

// errDataSequence fails a task whose Data-Out broke DataSN or offset
// order: RFC 7143 7.9 treats that as an implied digest error, and at
// ErrorRecoveryLevel 0 the task ends with CHECK CONDITION, PROTOCOL
// SERVICE CRC ERROR once all of its outstanding sequences have ended.
var errDataSequence = errors.New("iscsi: Data-Out sequence error")

// handleDataOut places one Data-Out PDU's payload into its task's buffer.
func (c *conn) handleDataOut(h *pdu.Header) error {
	if c.sess.discovery {
		if err := c.rd.DiscardData(h); err != nil {
			return err
		}
		c.reject(rejectProtocolError, h, false)
		return nil
	}
	itt := h.ITT()
	c.tmu.Lock()
	cm := c.tasks[itt]
	c.tmu.Unlock()
	if cm == nil || !cm.hasData {
		// Data for a task that ended (aborted): ignore it.
		c.log.Debug("iscsi: Data-Out for unknown task discarded", "itt", itt)
		return c.rd.DiscardData(h)
	}
	cm.mu.Lock()
	complete := cm.dataComplete
	cm.mu.Unlock()
	if complete {
		c.log.Debug("iscsi: Data-Out after the task's data was complete discarded", "itt", itt)
		return c.rd.DiscardData(h)
	}
	ttt := h.U32(pdu.OffTTT)
	dsn := h.U32(pdu.OffDataSN)
	off := h.U32(pdu.OffBufferOffset)
	n := h.DataSegmentLength()
	end := uint64(off) + uint64(n)

	cm.dmu.Lock()
	var seq *r2tSeq
	if ttt != pdu.ReservedTag {
		for _, s := range cm.r2ts {
			if s.ttt == ttt {
				seq = s
				break
			}
		}
	}
	var why string
	switch {
	case cm.seqErr != nil:
		// Already failed: only count sequence ends.
	case ttt == pdu.ReservedTag:
		if off != cm.unsolNext || dsn != cm.unsolDataSN || end > uint64(cm.unsolEnd) || !cm.unsolOpen {
			why = fmt.Sprintf("unsolicited DataSN %d offset %d len %d (want DataSN %d offset %d, end <= %d)",
				dsn, off, n, cm.unsolDataSN, cm.unsolNext, cm.unsolEnd)
		}
	case seq == nil:
		why = fmt.Sprintf("unknown TTT 0x%x", ttt)
	case off != seq.offset+seq.received || dsn != seq.dataSN || end > uint64(seq.offset)+uint64(seq.length):
		why = fmt.Sprintf("TTT 0x%x DataSN %d offset %d len %d (want DataSN %d offset %d)",
			ttt, dsn, off, n, seq.dataSN, seq.offset+seq.received)
	}
	if why != "" {
		c.log.Warn("iscsi: Data-Out out of order, failing the task", "itt", itt, "detail", why)
		cm.seqErr = fmt.Errorf("%w: ITT 0x%x: %s", errDataSequence, itt, why)
	}
	if cm.seqErr != nil {
		failed := cm.endSequenceLocked(h, seq)
		cm.dmu.Unlock()
		if err := c.rd.DiscardData(h); err != nil {
			return err
		}
		if failed != nil {
			c.completeData(cm, failed)
		}
		return nil
	}
	// The destination: unsolicited data of a write admitted late goes to
	// ubuf; everything else to buf (allocated before any R2T was sent).
	var dst []byte
	if n > 0 {
		cm.mu.Lock()
		b := cm.buf
		if seq == nil && cm.ubuf != nil {
			b = cm.ubuf
		}
		cm.mu.Unlock()
		if b != nil { // nil: the command ended and gave its buffers back
			dst = b[off:end]
		}
	}
	cm.dmu.Unlock()

	if n > 0 && dst == nil {
		if err := c.rd.DiscardData(h); err != nil {
			return err
		}
	} else if n > 0 {
		if err := c.rd.ReadData(h, dst); err != nil {
			if !errors.Is(err, pdu.ErrDataDigest) {
				return err
			}
			c.reject(rejectDataDigest, h, false)
			cm.dmu.Lock()
			cm.seqErr = fmt.Errorf("iscsi: ITT 0x%x: Data-Out digest error", itt)
			failed := cm.endSequenceLocked(h, seq)
			cm.dmu.Unlock()
			if failed != nil {
				c.completeData(cm, failed)
			}
			return nil
		}
	}

	cm.dmu.Lock()
	cm.received += n
	if seq == nil {
		cm.unsolNext += n
		cm.unsolDataSN++
		if cm.unsolNext == cm.unsolEnd || h.Final() {
			cm.unsolOpen = false
		}
	} else {
		seq.received += n
		seq.dataSN++
		if seq.received == seq.length || h.Final() {
			cm.removeSeqLocked(seq)
			if seq.received != seq.length {
				// The sequence ended short: the data cannot be complete.
				cm.seqErr = fmt.Errorf("%w: ITT 0x%x: R2T sequence ended early", errDataSequence, itt)
			} else {
				c.issueR2TsLocked(cm)
			}
		}
	}
	var done bool
	var doneErr error
	var ubuf []byte
	var ucharge int64
	switch {
	case cm.received == cm.edtl:
		done = true
		ubuf, ucharge = c.mergeUnsolicitedLocked(cm)
	case cm.seqErr != nil && !cm.unsolOpen && len(cm.r2ts) == 0:
		done, doneErr = true, cm.seqErr
	case !cm.unsolOpen && cm.unsolNext < cm.unsolEnd && cm.seqErr == nil:
		cm.seqErr = fmt.Errorf("%w: ITT 0x%x: unsolicited sequence ended early", errDataSequence, itt)
		if len(cm.r2ts) == 0 {
			done, doneErr = true, cm.seqErr
		}
	}
	cm.dmu.Unlock()
	if ubuf != nil {
		c.srv.pool.put(ubuf)
		c.admitLater(c.sess.release(0, ucharge))
	}
	if done {
		c.completeData(cm, doneErr)
	}
	return nil
}

// endSequenceLocked accounts for the end (F bit) of a sequence of a task
// whose data already failed, and returns the error to complete the data
// with once no sequence is outstanding (nil while some still are).
func (cm *cmd) endSequenceLocked(h *pdu.Header, seq *r2tSeq) error {
	if h.Final() {
		if seq != nil {
			cm.removeSeqLocked(seq)
		} else if h.U32(pdu.OffTTT) == pdu.ReservedTag {
			cm.unsolOpen = false
		}
	}
	if !cm.unsolOpen && len(cm.r2ts) == 0 {
		return cm.seqErr
	}
	return nil
}

func (cm *cmd) removeSeqLocked(seq *r2tSeq) {
	if i := slices.Index(cm.r2ts, seq); i >= 0 {
		cm.r2ts = slices.Delete(cm.r2ts, i, i+1)
	}
}

package fc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// exchange is one FCP command from OX_ID's FCP_CMND to its FCP_RSP, and the
// stmf.Transport of its task.
type exchange struct {
	p          *Port
	rp         *rport
	oxid, rxid uint16
	write      bool
	dl         uint32 // FCP_DL

	mu       sync.Mutex
	buf      []byte // Data-Out, allocated when the LU asks for it
	got      uint32 // Data-Out bytes received, in order
	burstEnd uint32 // offset where the current FCP_XFER_RDY burst ends
	dataErr  error
	finished bool
	dead     atomic.Bool
	killOnce sync.Once
	done     chan struct{} // closed when Data-Out is complete or failed
	gone     chan struct{} // closed when the exchange was aborted or its port logged out
	seqID    byte          // SEQ_ID of our current sequence
	seqCnt   uint16        // SEQ_CNT of our next frame in it
}

var (
	errExchangeGone = errors.New("fc: exchange aborted or remote port logged out")
	errDataOffset   = errors.New("fc: FCP_DATA outside the requested burst")
	errFrameSize    = errors.New("fc: FCP_DATA frame larger than our receive data field size")
)

var _ stmf.Transport = (*exchange)(nil)

// kill marks the exchange dead: nothing more is sent on it and a waiting
// ReceiveData returns. It takes no lock (callers may hold Port.mu, which
// ranks below exchange.mu).
func (x *exchange) kill() {
	x.killOnce.Do(func() {
		x.dead.Store(true)
		close(x.gone)
	})
}

func (p *Port) handleCmnd(f *Frame) {
	p.mu.Lock()
	rp := p.byID[f.SID]
	var sess *stmf.Session
	if rp != nil {
		sess = rp.sess
	}
	p.mu.Unlock()
	if sess == nil {
		// No FCP image pair: FC-LS-3 lets us discard it.
		p.stats.dropped.Add(1)
		return
	}
	c, err := ParseCmnd(f.Payload)
	if err != nil {
		p.stats.badFrames.Add(1)
		p.respond(f, rp, UnassignedXID, &Rsp{RspValid: true, RspCode: RspInvalidCmnd})
		return
	}
	if c.TMF != 0 {
		p.taskManagement(f, rp, sess, &c)
		return
	}
	if c.Write && c.DataLn > p.cfg.MaxDataLen {
		p.respond(f, rp, UnassignedXID, &Rsp{RspValid: true, RspCode: RspInvalidCmnd})
		return
	}
	p.mu.Lock()
	if rp.sess != sess {
		p.mu.Unlock()
		p.stats.dropped.Add(1)
		return
	}
	if _, dup := rp.xchg[f.OXID]; dup {
		// A second FCP_CMND on an open exchange is a protocol error of the
		// initiator; the open one is left alone.
		p.mu.Unlock()
		p.stats.badFrames.Add(1)
		return
	}
	if len(rp.xchg) >= p.cfg.MaxExchanges {
		p.mu.Unlock()
		p.respond(f, rp, UnassignedXID, &Rsp{Status: scsi.StatusTaskSetFull})
		return
	}
	x := &exchange{p: p, rp: rp, oxid: f.OXID, rxid: p.allocXIDLocked(), write: c.Write, dl: c.DataLn,
		done: make(chan struct{}), gone: make(chan struct{})}
	rp.xchg[f.OXID] = x
	p.mu.Unlock()

	t := stmf.NewTask(x)
	t.RawLUN = c.LUN
	t.CDB = append([]byte(nil), c.CDB...)
	t.Attr = c.Attr
	t.Tag = uint64(f.OXID)
	t.ExpectedLen = c.DataLn
	switch {
	case c.Write:
		t.Dir = scsi.DirWrite
	case c.Read:
		t.Dir = scsi.DirRead
	}
	sess.Submit(t)
}

// taskManagement runs the FCP_CMND's task management function and answers
// with FCP_RSP_INFO. CLEAR ACA is not supported (no ACA).
func (p *Port) taskManagement(f *Frame, rp *rport, sess *stmf.Session, c *Cmnd) {
	var r stmf.TMFResponse
	switch c.TMF {
	case TMFAbortTaskSet:
		r = sess.AbortTaskSet(c.LUN)
	case TMFClearTaskSet:
		r = sess.ClearTaskSet(c.LUN)
	case TMFLUNReset:
		r = sess.LUNReset(c.LUN)
	case TMFTargetReset:
		r = sess.TargetReset(false)
	default:
		r = stmf.TMFNotSupported
	}
	code := byte(RspComplete)
	switch r {
	case stmf.TMFRejected, stmf.TMFNotSupported:
		code = RspTMFRejected
	case stmf.TMFIncorrectLUN:
		code = RspTMFIncorrectL
	}
	p.log.Info("fc task management", "initiator", rp.name.TargetName(), "tmf", fmt.Sprintf("0x%02x", c.TMF), "response", r.String())
	p.respond(f, rp, UnassignedXID, &Rsp{RspValid: true, RspCode: code})
}

// respond sends an FCP_RSP that ends the exchange of f.
func (p *Port) respond(f *Frame, rp *rport, rxid uint16, r *Rsp) {
	if rp.gone.Load() {
		return
	}
	p.reply(f, RCtlFCPRsp, TypeFCP, rxid, AppendRsp(nil, r))
}

func (p *Port) handleData(f *Frame) {
	p.mu.Lock()
	var x *exchange
	if rp := p.byID[f.SID]; rp != nil {
		x = rp.xchg[f.OXID]
	}
	p.mu.Unlock()
	if x == nil || x.rxid != f.RXID {
		// Late data of an aborted or finished exchange, or of a reused
		// OX_ID's former exchange (our RX_ID tells them apart).
		p.stats.unknownXchg.Add(1)
		return
	}
	x.data(f)
}

// data takes one FCP_DATA frame of Data-Out.
func (x *exchange) data(f *Frame) {
	x.mu.Lock()
	if x.buf == nil || x.dead.Load() || x.got == x.dl || x.dataErr != nil {
		x.mu.Unlock()
		x.p.stats.dropped.Add(1)
		return
	}
	off := x.got
	if f.FCtl&FCtlRelOffset != 0 {
		off = f.Param
	}
	n := uint32(len(f.Payload))
	if n > uint32(x.p.info.MaxPayload) {
		// Larger than the receive data field size our PLOGI announced.
		x.dataErr = fmt.Errorf("%w: %d > %d bytes", errFrameSize, n, x.p.info.MaxPayload)
		close(x.done)
		x.mu.Unlock()
		return
	}
	if off != x.got || n > x.burstEnd-x.got {
		x.dataErr = fmt.Errorf("%w: offset %d length %d, expected offset %d up to %d", errDataOffset, off, n, x.got, x.burstEnd)
		close(x.done)
		x.mu.Unlock()
		return
	}
	copy(x.buf[off:], f.Payload)
	x.got += n
	switch {
	case x.got == x.dl:
		close(x.done)
	case x.got == x.burstEnd:
		x.nextBurstLocked()
	}
	x.mu.Unlock()
}

// nextBurstLocked asks for the next burst of Data-Out with FCP_XFER_RDY.
func (x *exchange) nextBurstLocked() {
	burst := min(x.dl-x.got, x.rp.burst)
	x.burstEnd = x.got + burst
	x.sendLocked(RCtlFCPXferRdy, FCtlEndSeq|FCtlSeqInit, 0, appendXferRdy(nil, x.got, burst))
}

// sendLocked sends one frame of our current sequence on the exchange; a
// frame with FCtlEndSeq ends it, so the next frame starts a new SEQ_ID.
func (x *exchange) sendLocked(rctl byte, fctl uint32, param uint32, payload []byte) {
	if x.dead.Load() || x.rp.gone.Load() {
		return
	}
	p := x.p
	p.mu.Lock()
	me := p.link.PortID
	p.mu.Unlock()
	_ = p.ad.Send(&Frame{Header: Header{RCtl: rctl, DID: x.rp.id, SID: me, Type: TypeFCP,
		FCtl: FCtlExchResponder | fctl, SeqID: x.seqID, SeqCnt: x.seqCnt, OXID: x.oxid, RXID: x.rxid, Param: param}, Payload: payload})
	x.seqCnt++
	if fctl&FCtlEndSeq != 0 {
		x.seqID++
		x.seqCnt = 0
	}
}

// ReceiveData implements stmf.Transport: the first call allocates the
// buffer and sends the first FCP_XFER_RDY, later bursts follow as each
// completes.
func (x *exchange) ReceiveData(ctx context.Context) ([]byte, error) {
	if !x.write || x.dl == 0 {
		return nil, nil
	}
	x.mu.Lock()
	if x.dead.Load() {
		x.mu.Unlock()
		return nil, errExchangeGone
	}
	if x.buf == nil {
		x.buf = make([]byte, x.dl)
		x.nextBurstLocked()
	}
	x.mu.Unlock()
	select {
	case <-x.done:
	case <-x.gone:
		return nil, errExchangeGone
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.dataErr != nil {
		return nil, x.dataErr
	}
	return x.buf, nil
}

// Deliver implements stmf.Transport: FCP_DATA frames for a read, then
// FCP_RSP with status, sense and residual (FCP-4 9.5.8: over-run when the
// command wanted more than FCP_DL, under-run when less).
func (x *exchange) Deliver(r *stmf.Result) {
	defer func() {
		if r.Release != nil {
			r.Release()
		}
	}()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.finished {
		return
	}
	x.finished = true
	x.forget()
	if x.dead.Load() {
		return
	}
	if !x.write && len(r.Data) > 0 {
		data := r.Data[:min(uint32(len(r.Data)), x.dl)]
		mx := x.rp.rxSize
		for off := 0; off < len(data); off += mx {
			end := min(off+mx, len(data))
			fctl := uint32(FCtlRelOffset)
			if end == len(data) {
				fctl |= FCtlEndSeq
			}
			x.sendLocked(RCtlFCPData, fctl, uint32(off), data[off:end])
		}
	}
	rsp := Rsp{Status: r.Status, Sense: r.Sense}
	if x.dataErr != nil && r.Status == scsi.StatusGood {
		rsp.RspValid, rsp.RspCode = true, RspBadDataRO
	}
	tl := r.TransferLen
	if x.write && tl == 0 && x.got > 0 {
		// A parameter-list command (PERSISTENT RESERVE OUT, MODE SELECT,
		// UNMAP) reports no TransferLen; what it took is what moved.
		// Reporting FCP_DL as under-run while the data was transferred
		// makes Linux libfc fail the command with DID_ERROR.
		tl = x.got
	}
	switch {
	case tl > x.dl:
		rsp.Over, rsp.Resid = true, tl-x.dl
	case tl < x.dl:
		rsp.Under, rsp.Resid = true, x.dl-tl
	}
	x.sendLocked(RCtlFCPRsp, FCtlLastSeq|FCtlEndSeq, 0, AppendRsp(nil, &rsp))
}

// Drop implements stmf.Transport: the task was aborted, nothing is sent.
func (x *exchange) Drop() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.finished {
		x.finished = true
		x.forget()
	}
}

// forget removes the exchange from its remote port's table.
func (x *exchange) forget() {
	p := x.p
	p.mu.Lock()
	if x.rp.xchg[x.oxid] == x {
		delete(x.rp.xchg, x.oxid)
	}
	p.mu.Unlock()
}

// handleABTS aborts one exchange: ABORT TASK for its task, then BA_ACC;
// BA_RJT for an exchange we do not have.
func (p *Port) handleABTS(f *Frame) {
	p.stats.abts.Add(1)
	p.mu.Lock()
	var x *exchange
	var sess *stmf.Session
	rp := p.byID[f.SID]
	if rp != nil {
		x, sess = rp.xchg[f.OXID], rp.sess
		if x != nil && (f.RXID == UnassignedXID || f.RXID == x.rxid) {
			delete(rp.xchg, f.OXID) // late frames of it are dropped from now on
		} else {
			x = nil
		}
	}
	p.mu.Unlock()
	if x == nil {
		p.stats.unknownXchg.Add(1)
		p.reply(f, RCtlBARJT, TypeBLS, f.RXID, appendBARJT(nil))
		return
	}
	x.kill()
	if sess != nil {
		// On return the task's response can no longer be sent.
		sess.AbortTask(uint64(f.OXID))
	}
	p.reply(f, RCtlBAACC, TypeBLS, x.rxid, appendBAACC(nil, f.OXID, x.rxid))
}

package iscsi

import (
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
	"github.com/costar-project/costar/stmf"
)

// ffpLoop reads and dispatches PDUs in full feature phase until the
// connection ends.
func (c *conn) ffpLoop() error {
	var h pdu.Header
	holding := false
	defer c.releaseWakes()
	for {
		if holding && !c.burstGoesOn() {
			c.releaseWakes()
			holding = false
		}
		ahs, err := c.rd.ReadHeader(&h)
		if err != nil {
			if errors.Is(err, pdu.ErrDataTooLong) {
				c.reject(rejectProtocolError, &h, true)
			}
			if errors.Is(err, pdu.ErrHeaderDigest) {
				c.countDigestError()
				c.log.Warn("iscsi: header digest error, dropping connection")
			}
			return err
		}
		c.lastRecv.Store(time.Now().UnixNano())
		if !holding && burstPDU(h.Opcode()) && c.rd.DataBuffered(&h) {
			c.holdWakes()
			holding = true
		}
		if err := c.dispatch(&h, ahs); err != nil {
			return err
		}
		if c.loggedOut {
			return errLoggedOut
		}
	}
}

// burstPDU: PDUs whose handling never waits for anything but the reader's
// own buffer (and the LU for an inline command), so responses may be held
// back while the reader handles them.
func burstPDU(op pdu.Opcode) bool { return op == pdu.OpSCSICmd || op == pdu.OpDataOut }

// burstGoesOn reports whether the next PDU continues a burst: a command or
// Data-Out that is already in the buffer whole.
func (c *conn) burstGoesOn() bool {
	op, whole := c.rd.NextBuffered()
	return whole && burstPDU(op)
}

func (c *conn) dispatch(h *pdu.Header, ahs []byte) error {
	switch h.Opcode() {
	case pdu.OpSCSICmd:
		return c.handleSCSICmd(h, ahs)
	case pdu.OpDataOut:
		return c.handleDataOut(h)
	case pdu.OpNOPOut:
		return c.handleNOPOut(h)
	case pdu.OpTaskMgmtReq:
		return c.handleTMF(h)
	case pdu.OpTextReq:
		return c.handleText(h)
	case pdu.OpLogoutReq:
		return c.handleLogout(h)
	case pdu.OpSNACKReq, pdu.OpLoginReq:
		// SNACK needs ErrorRecoveryLevel > 0; Login is over.
		if err := c.rd.DiscardData(h); err != nil {
			return err
		}
		c.reject(rejectProtocolError, h, false)
		return nil
	default:
		if err := c.rd.DiscardData(h); err != nil {
			return err
		}
		c.reject(rejectCmdNotSupported, h, false)
		return nil
	}
}

// ordered runs fn now for an immediate PDU, or in CmdSN order otherwise
// (silently dropping PDUs outside the window).
func (c *conn) ordered(h *pdu.Header, fn func()) {
	if h.Immediate() {
		fn()
		return
	}
	if c.sess.accept(h.U32(pdu.OffCmdSN), false, fn) {
		c.sess.drain()
	}
}

func (c *conn) handleNOPOut(h *pdu.Header) error {
	itt := h.ITT()
	if itt == pdu.ReservedTag {
		// The answer to our ping (or a ping that wants no answer).
		if err := c.rd.DiscardData(h); err != nil {
			return err
		}
		if ttt := h.U32(pdu.OffTTT); ttt != pdu.ReservedTag && c.pingTTT.CompareAndSwap(ttt, 0) {
			c.pingSent.Store(0)
		}
		return nil
	}
	// The echo is charged before its data is read: a peer that sends
	// pings and never reads the answers stops being read.
	charge := ctlCost(int(h.DataSegmentLength()))
	if !c.acquireCtl(charge) {
		return errConnClosed
	}
	data, ok, err := c.readSmall(h)
	if err != nil || !ok {
		c.releaseCharges(0, charge)
		return err
	}
	lun := h.LUN()
	ran := false
	c.ordered(h, func() {
		ran = true
		var r pdu.Header
		r.SetOpcode(pdu.OpNOPIn, false)
		r.SetFlags(pdu.FlagFinal)
		r.SetLUN(lun)
		r.SetITT(itt)
		r.SetU32(pdu.OffTTT, pdu.ReservedTag)
		c.enqueueOrRelease(outItem{hdr: r, data: data, stat: statConsume, ctlCharge: charge})
	})
	if !ran && !c.sess.pendingCmdSN(h.U32(pdu.OffCmdSN)) {
		// Dropped (outside the window or a duplicate).
		c.releaseCharges(0, charge)
	}
	return nil
}

// TMF function codes and responses (RFC 7143 11.5, 11.6).
const (
	tmfAbortTask        = 1
	tmfAbortTaskSet     = 2
	tmfClearACA         = 3
	tmfClearTaskSet     = 4
	tmfLUNReset         = 5
	tmfTargetWarmReset  = 6
	tmfTargetColdReset  = 7
	tmfTaskReassign     = 8
	tmfRespComplete     = 0
	tmfRespNoTask       = 1
	tmfRespNoLUN        = 2
	tmfRespReassignNS   = 4
	tmfRespNotSupported = 5
	tmfRespRejected     = 255
)

func tmfCode(r stmf.TMFResponse) byte {
	switch r {
	case stmf.TMFComplete, stmf.TMFSucceeded:
		return tmfRespComplete
	case stmf.TMFIncorrectLUN:
		return tmfRespNoLUN
	case stmf.TMFNotSupported:
		return tmfRespNotSupported
	}
	return tmfRespRejected
}

func (c *conn) handleTMF(h *pdu.Header) error {
	if err := c.rd.DiscardData(h); err != nil {
		return err
	}
	if c.sess.discovery {
		c.reject(rejectProtocolError, h, false)
		return nil
	}
	fn := h.Flags() & 0x7f
	ref := h.U32(pdu.OffTTT)
	refCmdSN := h.U32(pdu.OffRefCmdSN)
	cmdSN := h.U32(pdu.OffCmdSN)
	lun := h.LUN()
	itt := h.ITT()
	c.countTMF(fn)
	c.ordered(h, func() {
		respond := func(code byte) {
			var r pdu.Header
			r.SetOpcode(pdu.OpTaskMgmtResp, false)
			r.SetFlags(pdu.FlagFinal)
			r[2] = code
			r.SetITT(itt)
			c.enqueueCtl(outItem{hdr: r, stat: statConsume})
		}
		switch fn {
		case tmfAbortTask:
			respond(c.abortTask(ref, refCmdSN, cmdSN))
		case tmfAbortTaskSet:
			c.abortLocal(func(cm *cmd) bool { return cm.lun == lun })
			respond(tmfCode(c.sess.st.AbortTaskSet(lun)))
		case tmfClearTaskSet, tmfLUNReset:
			c.abortLocal(func(cm *cmd) bool { return cm.lun == lun })
			if fn == tmfLUNReset {
				respond(tmfCode(c.sess.st.LUNReset(lun)))
			} else {
				respond(tmfCode(c.sess.st.ClearTaskSet(lun)))
			}
		case tmfTargetWarmReset, tmfTargetColdReset:
			c.abortLocal(func(*cmd) bool { return true })
			respond(tmfCode(c.sess.st.TargetReset(fn == tmfTargetColdReset)))
			if fn == tmfTargetColdReset {
				// A cold reset ends every connection to the target.
				c.flushWait = true
				c.enqueue(outItem{close: true, stat: statNone, noop: true})
				go c.srv.dropTargetSessions(c.sess.target, c.sess)
			}
		case tmfClearACA:
			respond(tmfRespNotSupported)
		case tmfTaskReassign:
			respond(tmfRespReassignNS)
		default:
			respond(tmfRespRejected)
		}
	})
	return nil
}

// abortTask aborts one task and returns the TMF response. When this
// returns the task's response can no longer be queued, so the TMF response
// that follows is ordered after it.
//
// A task we do not know gets RFC 7143 11.5.1's answer by default
// (AbortTaskDoesNotExist): TASK DOES NOT EXIST once it completed, FUNCTION
// COMPLETE for a command that never arrived. AbortFunctionComplete answers
// FUNCTION COMPLETE for both.
func (c *conn) abortTask(itt, refCmdSN, tmfCmdSN uint32) byte {
	c.tmu.Lock()
	cm := c.tasks[itt]
	c.tmu.Unlock()
	if cm != nil {
		if c.abortCmd(cm) {
			c.sess.st.AbortTask(uint64(itt))
		}
		return tmfRespComplete
	}
	if c.srv.cfg.AbortCompletedTask != AbortTaskDoesNotExist {
		return tmfRespComplete
	}
	if c.sess.considerReceived(refCmdSN, tmfCmdSN) {
		// The command never arrived; its CmdSN now counts as received,
		// which may let commands queued behind the gap run.
		c.sess.drain()
		return tmfRespComplete
	}
	return tmfRespNoTask
}

// abortCmd handles the transport side of an abort and reports whether
// stmf must be told too.
func (c *conn) abortCmd(cm *cmd) (inStmf bool) {
	cm.mu.Lock()
	if !cm.submitted {
		cm.aborted = true // submit will drop it when its CmdSN comes up
		cm.mu.Unlock()
		return false
	}
	held := cm.held
	cm.held = nil
	cm.noMoreR2T = true
	cm.mu.Unlock()
	if held != nil {
		// Finished but waiting for its data: the response never goes out.
		if held.Release != nil {
			held.Release()
		}
		c.forget(cm)
		return false
	}
	return true
}

// abortLocal aborts the transport side of every matching task.
func (c *conn) abortLocal(match func(*cmd) bool) {
	c.tmu.Lock()
	var victims []*cmd
	for _, cm := range c.tasks {
		if match(cm) {
			victims = append(victims, cm)
		}
	}
	c.tmu.Unlock()
	for _, cm := range victims {
		c.abortCmd(cm)
	}
}

func (c *conn) handleLogout(h *pdu.Header) error {
	if err := c.rd.DiscardData(h); err != nil {
		return err
	}
	reason := h.Flags() & 0x7f
	cid := h.CID()
	itt := h.ITT()
	c.ordered(h, func() {
		var code byte
		switch {
		case reason == 0 || reason == 1 && cid == c.cid:
			code = 0
		case reason == 1:
			code = 1 // CID not found
		case reason == 2:
			code = 2 // connection recovery is not supported
		default:
			c.reject(rejectInvalidField, h, false)
			return
		}
		if code == 0 {
			// Terminate the session's tasks before answering, so nothing
			// follows the Logout Response.
			if c.sess.st != nil {
				c.sess.st.Close()
			}
			c.loggedOut = true
			c.flushWait = true
		}
		var r pdu.Header
		r.SetOpcode(pdu.OpLogoutResp, false)
		r.SetFlags(pdu.FlagFinal)
		r[2] = code
		r.SetITT(itt)
		c.enqueueCtl(outItem{hdr: r, stat: statConsume, close: code == 0})
	})
	return nil
}

// handleText serves Text Requests: SendTargets and FFP negotiation, with
// multi-PDU requests (C bit) and responses (continued with TTT).
func (c *conn) handleText(h *pdu.Header) error {
	data, ok, err := c.readSmall(h)
	if err != nil || !ok {
		return err
	}
	hc := *h
	c.ordered(h, func() { c.text(&hc, data) })
	return nil
}

func (c *conn) text(h *pdu.Header, data []byte) {
	itt := h.ITT()
	ttt := h.U32(pdu.OffTTT)
	cont := h.Flags()&pdu.FlagContinue != 0
	switch {
	case ttt != pdu.ReservedTag && ttt == c.textRespTTT && c.textResp != nil && itt == c.textITT:
		c.sendTextChunk(itt)
		return
	case ttt != pdu.ReservedTag && ttt == c.textReqTTT && itt == c.textITT:
		// The next part of a long request.
	case ttt != pdu.ReservedTag:
		c.reject(rejectInvalidField, h, false)
		return
	default:
		c.textReq, c.textResp, c.textReqTTT, c.textRespTTT = nil, nil, 0, 0
		c.textITT = itt
	}
	if len(c.textReq)+len(data) > maxLoginText {
		c.textReq = nil
		c.reject(rejectProtocolError, h, false)
		return
	}
	c.textReq = append(c.textReq, data...)
	if cont {
		c.textReqTTT = c.newTTT()
		c.sendText(itt, c.textReqTTT, false, false, nil)
		return
	}
	req := c.textReq
	c.textReq, c.textReqTTT = nil, 0
	kvs, err := pdu.ParseText(req)
	if err != nil {
		c.reject(rejectProtocolError, h, false)
		return
	}
	var resp []byte
	var neg []pdu.KV
	for _, kv := range kvs {
		if kv.Key == "SendTargets" {
			resp = c.sendTargets(resp, kv.Value)
			continue
		}
		neg = append(neg, kv)
	}
	if len(neg) > 0 {
		for _, kv := range c.neg.negotiate(neg, true) {
			resp = pdu.AppendText(resp, kv.Key, kv.Value)
		}
		if c.neg.iMRDSLSet {
			c.maxSend.Store(c.neg.p.InitiatorRecvDSL)
		}
	}
	c.textResp = resp
	c.sendTextChunk(itt)
}

// sendTextChunk sends as much of the pending text response as the
// initiator accepts in one PDU.
func (c *conn) sendTextChunk(itt uint32) {
	// Never more than we accept ourselves: the chunk is charged to the
	// control share of the response budget.
	max := int(min(c.maxSend.Load(), c.srv.cfg.MaxRecvDataSegmentLength))
	chunk := c.textResp
	more := len(chunk) > max
	if more {
		chunk = chunk[:max]
		c.textResp = c.textResp[max:]
		if c.textRespTTT == 0 {
			c.textRespTTT = c.newTTT()
		}
		c.sendText(itt, c.textRespTTT, false, true, chunk)
		return
	}
	c.textResp, c.textRespTTT = nil, 0
	c.sendText(itt, pdu.ReservedTag, true, false, chunk)
}

func (c *conn) sendText(itt, ttt uint32, final, cont bool, data []byte) {
	var r pdu.Header
	r.SetOpcode(pdu.OpTextResp, false)
	var f byte
	if final {
		f |= pdu.FlagFinal
	}
	if cont {
		f |= pdu.FlagContinue
	}
	r.SetFlags(f)
	r.SetITT(itt)
	r.SetU32(pdu.OffTTT, ttt)
	c.enqueueCtl(outItem{hdr: r, data: data, stat: statConsume})
}

// sendTargets appends the SendTargets answer for value ("All", "" or a
// target name): each target with one TargetAddress per portal of each
// portal group it is bound to.
func (c *conn) sendTargets(dst []byte, value string) []byte {
	ss := c.sess
	var names []string
	switch {
	case value == "All" && ss.discovery:
		for _, t := range c.srv.Targets() {
			names = append(names, t.Name)
		}
	case value == "All" || value == "":
		if !ss.discovery {
			names = []string{ss.key.target}
		}
	default:
		names = []string{value}
	}
	for _, n := range names {
		t := c.srv.lookupTarget(n)
		if t == nil || !c.srv.fw.CanAccess(ss.initiator, t.name) {
			continue
		}
		if len(dst) > c.srv.cfg.TextResponseLimit {
			break
		}
		dst = pdu.AppendText(dst, "TargetName", t.name)
		seen := map[string]bool{}
		for _, a := range c.srv.targetAddrs(t) {
			v := c.portalAddr(a.addr) + "," + strconv.Itoa(int(a.tag))
			if !seen[v] {
				seen[v] = true
				dst = pdu.AppendText(dst, "TargetAddress", v)
			}
		}
	}
	return dst
}

// portalAddr formats a listener address for TargetAddress, using the
// connection's local address for a wildcard listener.
func (c *conn) portalAddr(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	ip := ta.IP
	if ip == nil || ip.IsUnspecified() {
		if la, ok := c.nc.LocalAddr().(*net.TCPAddr); ok {
			ip = la.IP
		}
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(ta.Port))
}

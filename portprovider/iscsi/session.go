package iscsi

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
	"github.com/costar-project/costar/stmf"
)

// sessKey identifies a session: (InitiatorName, ISID) logged in to
// (TargetName, TPGT).
type sessKey struct {
	initiator string
	isid      [6]byte
	target    string
	tpgt      uint16
}

// session is one iSCSI session. Today it has a single connection
// (MaxConnections=1), but the CmdSN window and task state live here, and
// connections are kept in a set, so more can be added later.
type session struct {
	srv        *Server
	key        sessKey
	tsih       uint16
	discovery  bool
	target     *target         // nil for discovery
	port       *stmf.LocalPort // the portal group's local port (normal sessions)
	local      *net.TCPAddr    // portal address the connection arrived on
	st         *stmf.Session
	p          params
	initiator  string
	alias      string
	queueDepth uint32

	mu       sync.Mutex
	expCmdSN uint32
	maxCmdSN uint32 // highest MaxCmdSN ever advertised; never decreases
	inFlight int
	pending  map[uint32]func() // out-of-order commands waiting for the gap
	conns    map[*conn]struct{}
	closed   bool

	// Data-Out buffer budget (Config.DataOutBudget). bigUsed counts the
	// whole-command buffers of admitted writes, unsolUsed the buffers of
	// immediate/unsolicited data accepted without admission. Writes that
	// need R2Ts wait in waitq, in submission (CmdSN) order, until
	// admitted: the admitted writes are always a prefix of the submitted
	// ones, so an admitted write never waits (in the task set) for one
	// that waits for budget, and with nothing admitted the head of the
	// queue always goes ahead: no deadlock.
	budget    int64
	bigUsed   int64
	unsolUsed int64
	waitq     []*cmd

	closeOnce sync.Once
	closeDone chan struct{}
	ttt       atomic.Uint32
	stats     sessionCounters // stats.go
}

func newSession(srv *Server, cmdSN uint32, qd int) *session {
	s := &session{
		srv:        srv,
		budget:     srv.cfg.DataOutBudget,
		queueDepth: uint32(qd),
		expCmdSN:   cmdSN,
		maxCmdSN:   cmdSN + uint32(qd) - 1,
		pending:    map[uint32]func(){},
		conns:      map[*conn]struct{}{},
		closeDone:  make(chan struct{}),
	}
	return s
}

// window returns ExpCmdSN and MaxCmdSN to advertise. The window shrinks
// while commands are in flight (back-pressure) but MaxCmdSN never moves
// backwards, because initiators ignore a smaller value.
func (s *session) window() (exp, max uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.windowLocked()
}

func (s *session) windowLocked() (exp, max uint32) {
	free := int(s.queueDepth) - s.inFlight
	if free < 0 || s.budgetExhaustedLocked() {
		// Back-pressure: with the Data-Out budget used up, stop
		// advancing MaxCmdSN until writes drain.
		free = 0
	}
	m := s.expCmdSN + uint32(free) - 1
	if pdu.SerialGT(m, s.maxCmdSN) {
		s.maxCmdSN = m
	}
	return s.expCmdSN, s.maxCmdSN
}

// accept decides what to do with a non-immediate PDU carrying cmdSN. It
// returns false when the PDU is outside [ExpCmdSN, MaxCmdSN] or a
// duplicate: RFC 7143 4.2.2.1 says to drop it silently. When it returns
// true, run has been queued; the caller must then call drain.
func (s *session) accept(cmdSN uint32, countsInFlight bool, run func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !pdu.SerialInWindow(cmdSN, s.expCmdSN, s.maxCmdSN) {
		return false
	}
	if _, dup := s.pending[cmdSN]; dup {
		return false
	}
	if countsInFlight {
		s.inFlight++
	}
	s.pending[cmdSN] = run
	return true
}

// acceptNext takes a command whose CmdSN is the next expected one and
// nothing else holds (no queued PDU, no TMF placeholder) as accepted and
// run: the caller submits it at once, then drains what may follow. It
// does what accept and drain would, without queueing a func. Only the
// connection's reader calls it, as it does drain.
func (s *session) acceptNext(cmdSN uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || cmdSN != s.expCmdSN || !pdu.SerialInWindow(cmdSN, s.expCmdSN, s.maxCmdSN) {
		return false
	}
	if _, queued := s.pending[cmdSN]; queued {
		return false
	}
	s.inFlight++
	s.expCmdSN++
	return true
}

// pendingCmdSN reports whether a PDU with cmdSN waits for its turn.
func (s *session) pendingCmdSN(cmdSN uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.pending[cmdSN]
	return ok
}

// inWindow reports whether cmdSN could currently be accepted (used before
// allocating anything for a command).
func (s *session) inWindow(cmdSN uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, dup := s.pending[cmdSN]
	return !s.closed && !dup && pdu.SerialInWindow(cmdSN, s.expCmdSN, s.maxCmdSN)
}

// considerReceived implements RFC 7143 11.5.1 b) for an ABORT TASK whose
// task is unknown: when refCmdSN lies in the CmdSN window and before the
// TMF's own CmdSN, the command is taken as received (its CmdSN consumed,
// so a copy arriving later is dropped as a duplicate) and it reports
// true. The caller then drains.
func (s *session) considerReceived(refCmdSN, tmfCmdSN uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !pdu.SerialInWindow(refCmdSN, s.expCmdSN, s.maxCmdSN) || !pdu.SerialLT(refCmdSN, tmfCmdSN) {
		return false
	}
	if _, ok := s.pending[refCmdSN]; !ok {
		s.pending[refCmdSN] = func() {}
	}
	return true
}

// drain runs every queued PDU whose turn has come, in CmdSN order. It is
// called by the connection reader only, so runs never overlap.
func (s *session) drain() {
	for {
		s.mu.Lock()
		run, ok := s.pending[s.expCmdSN]
		if ok {
			delete(s.pending, s.expCmdSN)
			s.expCmdSN++
		}
		s.mu.Unlock()
		if !ok {
			return
		}
		run()
	}
}

func (s *session) budgetExhaustedLocked() bool {
	return len(s.waitq) > 0 || s.budget > 0 && s.bigUsed+s.unsolUsed >= s.budget
}

// fitsLocked reports whether a write needing n bytes may be admitted now.
func (s *session) fitsLocked(n int64) bool {
	return s.budget <= 0 || s.bigUsed == 0 || s.bigUsed+s.unsolUsed+n <= s.budget
}

// admitEarly admits a write whose buffer is needed as it arrives: it must
// be the next command to be submitted (immediate, or CmdSN == ExpCmdSN),
// nobody may be waiting and it must fit. It charges n on success.
func (s *session) admitEarly(n int64, immediate bool, cmdSN uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.waitq) > 0 || (!immediate && cmdSN != s.expCmdSN) || !s.fitsLocked(n) {
		return false
	}
	s.bigUsed += n
	return true
}

// chargeUnsolicited counts a buffer that must be accepted regardless of
// the budget (immediate/unsolicited data).
func (s *session) chargeUnsolicited(n int64) {
	s.mu.Lock()
	s.unsolUsed += n
	s.mu.Unlock()
}

// admitOrQueue admits cm at submission when it fits and nobody waits
// (charging its buffer), or queues it.
func (s *session) admitOrQueue(cm *cmd) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := int64(cm.edtl)
	if len(s.waitq) == 0 && s.fitsLocked(n) {
		s.bigUsed += n
		return true
	}
	cm.waiting = true
	s.waitq = append(s.waitq, cm)
	return false
}

// dequeue removes a finished command from the wait queue.
func (s *session) dequeue(cm *cmd) []*cmd {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !cm.waiting {
		return nil
	}
	cm.waiting = false
	if i := slices.Index(s.waitq, cm); i >= 0 {
		s.waitq = slices.Delete(s.waitq, i, i+1)
	}
	return s.admitLocked()
}

// release returns budget and admits the writes that fit now, in order
// (their buffers charged); the caller allocates their buffers.
func (s *session) release(big, unsol int64) []*cmd {
	if big == 0 && unsol == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bigUsed -= big
	s.unsolUsed -= unsol
	return s.admitLocked()
}

func (s *session) admitLocked() []*cmd {
	var out []*cmd
	for len(s.waitq) > 0 && s.fitsLocked(int64(s.waitq[0].edtl)) {
		cm := s.waitq[0]
		s.waitq = s.waitq[1:]
		cm.waiting = false
		s.bigUsed += int64(cm.edtl)
		out = append(out, cm)
	}
	return out
}

// budgetUse reports the budget in use (for tests and diagnostics).
func (s *session) budgetUse() (big, unsol int64, waiting int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bigUsed, s.unsolUsed, len(s.waitq)
}

func (s *session) addInFlight(d int) {
	s.mu.Lock()
	s.inFlight += d
	s.mu.Unlock()
}

func (s *session) inFlightCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight
}

// removeConn detaches a finished connection; the last one closes the
// session (ERL 0: no connection recovery).
func (s *session) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	last := len(s.conns) == 0
	s.mu.Unlock()
	if last {
		s.close("connection ended")
	}
}

func (s *session) connList() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// close ends the session: its connections are closed, the stmf nexus is
// closed (aborting and waiting for every in-flight task) and it is
// forgotten by the server. Safe to call many times and concurrently; every
// call returns once the session is fully gone.
func (s *session) close(why string) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.pending = map[uint32]func(){}
		st := s.st
		s.mu.Unlock()
		for _, c := range s.connList() {
			c.abort()
		}
		if st != nil {
			st.Close()
		}
		s.srv.forgetSession(s)
		s.srv.log.Debug("iscsi: session closed", "initiator", s.initiator, "isid", fmt.Sprintf("%x", s.key.isid),
			"target", s.key.target, "tsih", s.tsih, "why", why)
		close(s.closeDone)
	})
	<-s.closeDone
}

package iscsi

import (
	"fmt"
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
	target     *target // nil for discovery
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

	closeOnce sync.Once
	closeDone chan struct{}
	ttt       atomic.Uint32
}

func newSession(srv *Server, cmdSN uint32, qd int) *session {
	s := &session{
		srv:        srv,
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
	if free < 0 {
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

// inWindow reports whether cmdSN could currently be accepted (used before
// allocating anything for a command).
func (s *session) inWindow(cmdSN uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, dup := s.pending[cmdSN]
	return !s.closed && !dup && pdu.SerialInWindow(cmdSN, s.expCmdSN, s.maxCmdSN)
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

// initiatorPortName is the SCSI initiator port name "<iqn>,i,0x<ISID>".
func initiatorPortName(name string, isid [6]byte) string {
	return fmt.Sprintf("%s,i,0x%012x", name, isid[:])
}

// targetPortName is the SCSI target port name "<iqn>,t,0x<TPGT>".
func targetPortName(name string, tpgt uint16) string {
	return fmt.Sprintf("%s,t,0x%04x", name, tpgt)
}

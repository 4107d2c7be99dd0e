package initiator

import (
	"errors"
	"net"
	"time"
)

// Raw is a logged-in connection handed over whole (Detach) to a caller
// that runs its own PDU loop: costar-loadgen keeps a session's commands
// on one goroutine, as libiscsi's event loop does, where Session spends a
// goroutine, a write and two reads per command. Nothing of the Session
// runs any more; the caller owns Conn and the sequence numbers.
type Raw struct {
	Conn net.Conn
	// Sequence numbers: the next CmdSN to send, the end of the window the
	// target announced last, the next StatSN expected. No task is in
	// flight, so every ITT is free.
	CmdSN, MaxCmdSN, ExpStatSN uint32
	// Negotiated at login.
	HeaderDigest, DataDigest  bool
	ImmediateData, InitialR2T bool
	FirstBurstLength          uint32
	TargetMRDSL               uint32 // the target's MaxRecvDataSegmentLength: our Data-Out limit
	MRDSL                     uint32 // ours: the largest segment the target may send
}

// errDetached ends the reader at a PDU boundary for Detach.
var errDetached = errors.New("initiator: detached")

// Detach stops the session's reader between two PDUs and hands the
// connection over. No command may be in flight. The Session is closed
// afterwards (its methods return ErrClosed; Close only closes Conn).
func (s *Session) Detach() (*Raw, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if s.closed || s.readErr != nil {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if len(s.pending) > 0 {
		s.mu.Unlock()
		return nil, errors.New("initiator: Detach with commands in flight")
	}
	s.detaching = true
	s.mu.Unlock()
	_ = s.conn.SetReadDeadline(time.Now()) // wakes the reader's blocked read
	<-s.readDone
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.readErr != nil { // the deadline cut a PDU, or the target had gone
		return nil, s.readErr
	}
	_ = s.conn.SetReadDeadline(time.Time{})
	return &Raw{Conn: s.conn, CmdSN: s.cmdSN, MaxCmdSN: s.maxCmdSN, ExpStatSN: s.expStatSN,
		HeaderDigest: s.hdrDigest, DataDigest: s.dataDigest, ImmediateData: s.immediate,
		InitialR2T: s.initialR2T, FirstBurstLength: s.firstBurst, TargetMRDSL: s.targetMRDSL,
		MRDSL: s.cfg.MaxRecvDataSegmentLength}, nil
}

package iscsi

import (
	"errors"
	"net"
	"sort"
	"sync"
	"sync/atomic"
)

// LoginFailure is why a login failed, as the metrics count it.
type LoginFailure uint8

const (
	LoginAuth        LoginFailure = iota // CHAP failed or no acceptable AuthMethod
	LoginNoAccess                        // no such target, not on this portal, no view, removed
	LoginNegotiation                     // bad or missing key, bad stage or version: the initiator's error
	LoginTargetError                     // the target could not serve it (out of resources, shutting down)
	LoginTimeout                         // the login did not finish within LoginTimeout
	NumLoginFailures
)

func (f LoginFailure) String() string {
	switch f {
	case LoginAuth:
		return "auth"
	case LoginNoAccess:
		return "no_access"
	case LoginNegotiation:
		return "negotiation"
	case LoginTargetError:
		return "target_error"
	}
	return "timeout"
}

func loginFailureOf(st loginStatus) LoginFailure {
	switch st {
	case statusAuthFailure:
		return LoginAuth
	case statusForbidden, statusNotFound, statusTargetRemoved:
		return LoginNoAccess
	}
	if st>>8 == 0x03 {
		return LoginTargetError
	}
	return LoginNegotiation
}

// NumTMFs counts TMF functions 1..8 (RFC 7143 11.5.1) and a last slot
// for any other code.
const NumTMFs = 9

// TMFName is the metrics label of TMF slot i of ProtocolStats.TMFs.
func TMFName(i int) string {
	names := [NumTMFs]string{"other", "abort_task", "abort_task_set", "clear_aca", "clear_task_set",
		"lun_reset", "target_warm_reset", "target_cold_reset", "task_reassign"}
	if i < 0 || i >= NumTMFs {
		return "other"
	}
	return names[i]
}

// MaxInitiatorSeries caps how many initiator names get their own login
// counters: names come from the wire, so anything beyond counts as
// OtherInitiators.
const MaxInitiatorSeries = 256

// OtherInitiators is the initiator key beyond MaxInitiatorSeries.
const OtherInitiators = "(other)"

// LoginStats count logins.
type LoginStats struct {
	Logins   uint64                   // reached full feature phase
	Failures [NumLoginFailures]uint64 // by LoginFailure
}

// ProtocolStats count a session's protocol events.
type ProtocolStats struct {
	DigestErrors uint64 // header or data digest errors received
	R2Ts         uint64 // R2Ts sent
	NOPTimeouts  uint64 // connections dropped for an unanswered NOP-In ping
	TMFs         [NumTMFs]uint64
}

func (p *ProtocolStats) add(o *ProtocolStats) {
	p.DigestErrors += o.DigestErrors
	p.R2Ts += o.R2Ts
	p.NOPTimeouts += o.NOPTimeouts
	for i := range p.TMFs {
		p.TMFs[i] += o.TMFs[i]
	}
}

// TargetStats are one target's counters; closed sessions stay counted.
type TargetStats struct {
	LoginStats
	ProtocolStats
	Sessions int // live sessions
}

// SessionStats are one live session's counters.
type SessionStats struct {
	Target    string // empty for discovery
	Initiator string
	ISID      [6]byte
	TSIH      uint16
	ProtocolStats
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	// Targets by name; the key "" holds discovery sessions and logins to
	// targets that do not exist (the name came from the wire).
	Targets    map[string]TargetStats
	Initiators map[string]LoginStats // by initiator name, capped at MaxInitiatorSeries
	Sessions   []SessionStats        // by TSIH
}

// sessionCounters are a session's live counters: the reader and writer
// paths only add to them.
type sessionCounters struct {
	digestErrors atomic.Uint64
	r2ts         atomic.Uint64
	nopTimeouts  atomic.Uint64
	tmfs         [NumTMFs]atomic.Uint64
}

func (c *sessionCounters) snapshot() ProtocolStats {
	p := ProtocolStats{DigestErrors: c.digestErrors.Load(), R2Ts: c.r2ts.Load(), NOPTimeouts: c.nopTimeouts.Load()}
	for i := range c.tmfs {
		p.TMFs[i] = c.tmfs[i].Load()
	}
	return p
}

// serverStats are the counters that outlive sessions. The zero value is
// ready. Lock order: Server.mu, then serverStats.mu.
type serverStats struct {
	mu         sync.Mutex
	logins     map[string]*LoginStats    // by target
	initiators map[string]*LoginStats    // by initiator
	retired    map[string]*ProtocolStats // closed sessions by target
}

// loginCounters returns the per-target and per-initiator login counters
// to update. s.mu is held.
func (s *serverStats) loginCounters(target, initiator string) (*LoginStats, *LoginStats) {
	if s.logins == nil {
		s.logins = map[string]*LoginStats{}
		s.initiators = map[string]*LoginStats{}
	}
	t := s.logins[target]
	if t == nil {
		t = &LoginStats{}
		s.logins[target] = t
	}
	i := s.initiators[initiator]
	if i == nil {
		if len(s.initiators) >= MaxInitiatorSeries {
			initiator = OtherInitiators
			i = s.initiators[initiator]
		}
		if i == nil {
			i = &LoginStats{}
			s.initiators[initiator] = i
		}
	}
	return t, i
}

// countLogin counts a login that reached full feature phase.
func (c *conn) countLogin() {
	ss := c.sess
	st := &c.srv.stats
	st.mu.Lock()
	defer st.mu.Unlock()
	t, i := st.loginCounters(ss.key.target, ss.initiator)
	t.Logins++
	i.Logins++
}

// countLoginReject counts a login refused with a status. Only a target
// that exists gets its own series.
func (c *conn) countLoginReject(ls *loginState, status loginStatus) {
	target := ""
	if ls.tgt != nil {
		target = ls.tgt.name
	}
	c.countLoginFailure(target, ls.initiator, loginFailureOf(status))
}

// countLoginEnd counts a login that ended without a status: only a
// timeout is a failure (an initiator hanging up is not).
func (c *conn) countLoginEnd(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.countLoginFailure("", "", LoginTimeout)
	}
}

func (c *conn) countLoginFailure(target, initiator string, why LoginFailure) {
	st := &c.srv.stats
	st.mu.Lock()
	defer st.mu.Unlock()
	t, i := st.loginCounters(target, initiator)
	t.Failures[why]++
	i.Failures[why]++
}

// counters returns the connection's session counters, nil before login.
func (c *conn) counters() *sessionCounters {
	if c.sess == nil {
		return nil
	}
	return &c.sess.stats
}

func (c *conn) countDigestError() {
	if sc := c.counters(); sc != nil {
		sc.digestErrors.Add(1)
	}
}

func (c *conn) countReject(reason byte) {
	if reason == rejectDataDigest {
		c.countDigestError()
	}
}

func (c *conn) countR2T() {
	if sc := c.counters(); sc != nil {
		sc.r2ts.Add(1)
	}
}

func (c *conn) countNOPTimeout() {
	if sc := c.counters(); sc != nil {
		sc.nopTimeouts.Add(1)
	}
}

func (c *conn) countTMF(fn byte) {
	sc := c.counters()
	if sc == nil {
		return
	}
	i := int(fn)
	if i >= NumTMFs {
		i = 0
	}
	sc.tmfs[i].Add(1)
}

// retire folds a closing session's counters into its target's. s.mu
// (the Server's) is held, and the session leaves byTSIH under it, so a
// snapshot counts it exactly once.
func (s *serverStats) retire(ss *session) {
	p := ss.stats.snapshot()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retired == nil {
		s.retired = map[string]*ProtocolStats{}
	}
	r := s.retired[ss.key.target]
	if r == nil {
		r = &ProtocolStats{}
		s.retired[ss.key.target] = r
	}
	r.add(&p)
}

// Stats returns a snapshot of the iSCSI counters: per target (configured
// targets always appear), per initiator (logins) and per live session.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.stats
	st.mu.Lock()
	defer st.mu.Unlock()
	out := Stats{Targets: map[string]TargetStats{}, Initiators: map[string]LoginStats{}}
	for name := range s.targets {
		out.Targets[name] = TargetStats{}
	}
	for name, l := range st.logins {
		t := out.Targets[name]
		t.LoginStats = *l
		out.Targets[name] = t
	}
	for name, r := range st.retired {
		t := out.Targets[name]
		t.ProtocolStats.add(r)
		out.Targets[name] = t
	}
	for name, l := range st.initiators {
		out.Initiators[name] = *l
	}
	for _, ss := range s.byTSIH {
		p := ss.stats.snapshot()
		t := out.Targets[ss.key.target]
		t.ProtocolStats.add(&p)
		t.Sessions++
		out.Targets[ss.key.target] = t
		out.Sessions = append(out.Sessions, SessionStats{
			Target: ss.key.target, Initiator: ss.initiator, ISID: ss.key.isid, TSIH: ss.tsih, ProtocolStats: p,
		})
	}
	sort.Slice(out.Sessions, func(i, j int) bool { return out.Sessions[i].TSIH < out.Sessions[j].TSIH })
	return out
}

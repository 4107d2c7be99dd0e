package iscsi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/costar-project/costar/stmf"
)

// Server errors.
var (
	ErrTargetExists   = errors.New("iscsi: target already exists")
	ErrTargetNotFound = errors.New("iscsi: target not found")
	ErrBadTargetName  = errors.New("iscsi: invalid iSCSI name")
	ErrServerClosed   = errors.New("iscsi: server closed")
	ErrAlreadyStarted = errors.New("iscsi: server already started")
)

// target is one served target node (one portal group).
type target struct {
	cfg  TargetConfig
	port *stmf.LocalPort
}

// Server is the iSCSI target port provider.
type Server struct {
	fw   *stmf.Framework
	cfg  Config
	log  *slog.Logger
	pool *bufPool

	mu        sync.Mutex
	started   bool
	closing   bool
	listeners []net.Listener
	targets   map[string]*target
	sessions  map[sessKey]*session // normal sessions by identity
	byTSIH    map[uint16]*session  // every live session
	conns     map[*conn]struct{}   // every live connection
	nextTSIH  uint16
	wg        sync.WaitGroup // accept loops and connection goroutines
	connWG    sync.WaitGroup // connection goroutines only
}

// NewServer builds a server and registers its targets' local ports with
// fw. Nothing listens before Start.
func NewServer(fw *stmf.Framework, cfg Config) (*Server, error) {
	if fw == nil {
		return nil, errors.New("iscsi: nil framework")
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		fw:       fw,
		cfg:      c,
		log:      c.Logger,
		pool:     newBufPool(),
		targets:  map[string]*target{},
		sessions: map[sessKey]*session{},
		byTSIH:   map[uint16]*session{},
		conns:    map[*conn]struct{}{},
		nextTSIH: 1,
	}
	for _, tc := range c.Targets {
		if err := s.AddTarget(tc); err != nil {
			s.removeAllTargets()
			return nil, err
		}
	}
	return s, nil
}

// Start listens on every portal and returns once all are listening. A
// failed bind closes the listeners already opened and returns the error.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.started {
		s.mu.Unlock()
		return ErrAlreadyStarted
	}
	s.started = true
	s.mu.Unlock()
	var lc net.ListenConfig
	var ls []net.Listener
	for _, p := range s.cfg.Portals {
		l, err := lc.Listen(ctx, "tcp", p)
		if err != nil {
			for _, o := range ls {
				o.Close()
			}
			s.mu.Lock()
			s.started = false
			s.mu.Unlock()
			return fmt.Errorf("iscsi: listen on %s: %w", p, err)
		}
		ls = append(ls, l)
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		for _, l := range ls {
			l.Close()
		}
		return ErrServerClosed
	}
	s.listeners = ls
	for _, l := range ls {
		s.wg.Add(1)
		go s.acceptLoop(l)
	}
	s.mu.Unlock()
	for _, l := range ls {
		s.log.Info("iscsi: portal listening", "addr", l.Addr().String())
	}
	return nil
}

// Addrs returns the actual listen addresses.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, 0, len(s.listeners))
	for _, l := range s.listeners {
		out = append(out, l.Addr())
	}
	return out
}

func (s *Server) acceptLoop(l net.Listener) {
	defer s.wg.Done()
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary trouble (EMFILE...): back off and retry.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("iscsi: accept failed", "addr", l.Addr().String(), "err", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
			_ = tc.SetKeepAlive(true)
		}
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.connWG.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer s.connWG.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// AddTarget serves a new target (live): its local port is registered with
// stmf and it is reported by discovery from now on.
func (s *Server) AddTarget(tc TargetConfig) error {
	if !validName(tc.Name) {
		return fmt.Errorf("%w: %q", ErrBadTargetName, tc.Name)
	}
	if tc.TPGT == 0 {
		tc.TPGT = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return ErrServerClosed
	}
	if _, ok := s.targets[tc.Name]; ok {
		return fmt.Errorf("%w: %s", ErrTargetExists, tc.Name)
	}
	p, err := s.fw.RegisterPort(tc.Name, targetPortName(tc.Name, tc.TPGT))
	if err != nil {
		return fmt.Errorf("iscsi: register target %s: %w", tc.Name, err)
	}
	s.targets[tc.Name] = &target{cfg: tc, port: p}
	return nil
}

// RemoveTarget stops serving a target (live): new logins fail with "not
// found", its sessions are closed and its local port is deregistered.
func (s *Server) RemoveTarget(name string) error {
	s.mu.Lock()
	t, ok := s.targets[name]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrTargetNotFound, name)
	}
	delete(s.targets, name)
	var victims []*session
	for _, ss := range s.byTSIH {
		if ss.target == t {
			victims = append(victims, ss)
		}
	}
	s.mu.Unlock()
	for _, ss := range victims {
		ss.close("target removed")
	}
	t.port.Deregister()
	return nil
}

func (s *Server) removeAllTargets() {
	s.mu.Lock()
	names := make([]string, 0, len(s.targets))
	for n := range s.targets {
		names = append(names, n)
	}
	s.mu.Unlock()
	for _, n := range names {
		_ = s.RemoveTarget(n)
	}
}

// Targets returns the served targets sorted by name.
func (s *Server) Targets() []TargetConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TargetConfig, 0, len(s.targets))
	for _, t := range s.targets {
		out = append(out, t.cfg)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *Server) lookupTarget(name string) *target {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.targets[name]
}

// SessionInfo describes a live session (for list-target -v).
type SessionInfo struct {
	Initiator   string
	Alias       string
	ISID        [6]byte
	TSIH        uint16
	Target      string // empty for discovery
	Discovery   bool
	RemoteAddrs []string
	InFlight    int
}

// Sessions lists the live sessions.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	list := make([]*session, 0, len(s.byTSIH))
	for _, ss := range s.byTSIH {
		list = append(list, ss)
	}
	s.mu.Unlock()
	out := make([]SessionInfo, 0, len(list))
	for _, ss := range list {
		si := SessionInfo{Initiator: ss.initiator, Alias: ss.alias, ISID: ss.key.isid, TSIH: ss.tsih,
			Target: ss.key.target, Discovery: ss.discovery, InFlight: ss.inFlightCount()}
		for _, c := range ss.connList() {
			si.RemoteAddrs = append(si.RemoteAddrs, c.nc.RemoteAddr().String())
		}
		out = append(out, si)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TSIH < out[j].TSIH })
	return out
}

// registerSession makes a logged-in session live, reinstating (closing)
// any older session with the same identity first. It returns a login
// status when the login must fail.
func (s *Server) registerSession(ss *session) loginStatus {
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return statusServiceUnavailable
		}
		if !ss.discovery {
			if s.targets[ss.key.target] != ss.target {
				s.mu.Unlock()
				return statusNotFound
			}
			if old := s.sessions[ss.key]; old != nil {
				s.mu.Unlock()
				s.log.Info("iscsi: session reinstatement", "initiator", ss.initiator,
					"isid", fmt.Sprintf("%x", ss.key.isid), "target", ss.key.target, "old_tsih", old.tsih)
				old.close("reinstated")
				continue
			}
		}
		if len(s.byTSIH) >= 65535 {
			s.mu.Unlock()
			return statusOutOfResources
		}
		for s.nextTSIH == 0 || s.byTSIH[s.nextTSIH] != nil {
			s.nextTSIH++
		}
		ss.tsih = s.nextTSIH
		s.nextTSIH++
		s.byTSIH[ss.tsih] = ss
		if !ss.discovery {
			s.sessions[ss.key] = ss
		}
		s.mu.Unlock()
		return statusSuccess
	}
}

func (s *Server) forgetSession(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byTSIH[ss.tsih] == ss {
		delete(s.byTSIH, ss.tsih)
	}
	if s.sessions[ss.key] == ss {
		delete(s.sessions, ss.key)
	}
}

func (s *Server) sessionByTSIH(tsih uint16) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byTSIH[tsih]
}

// Shutdown stops accepting connections, asks every logged-in initiator to
// log out (Async Message), lets in-flight tasks finish until ctx expires,
// then closes every session (which aborts what is left and waits for it)
// and deregisters the targets' ports.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	ls := s.listeners
	s.listeners = nil
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	for _, c := range conns {
		c.requestLogout(s.cfg.LogoutWait)
	}
	// Wait for in-flight work to drain, for initiators to log out, or
	// for the deadline.
	deadline := time.Now().Add(s.cfg.LogoutWait)
	tick := time.NewTicker(10 * time.Millisecond)
	for {
		s.mu.Lock()
		n, busy := len(s.conns), 0
		for _, ss := range s.byTSIH {
			busy += ss.inFlightCount()
		}
		s.mu.Unlock()
		if n == 0 || (busy == 0 && time.Now().After(deadline)) {
			break
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
			continue
		}
		break
	}
	tick.Stop()
	// Hard close what is left.
	s.mu.Lock()
	sess := make([]*session, 0, len(s.byTSIH))
	for _, ss := range s.byTSIH {
		sess = append(sess, ss)
	}
	conns = conns[:0]
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.abort()
	}
	var cwg sync.WaitGroup
	for _, ss := range sess {
		cwg.Add(1)
		go func() { defer cwg.Done(); ss.close("server shutdown") }()
	}
	done := make(chan struct{})
	go func() { cwg.Wait(); s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("iscsi: shutdown: %w", ctx.Err())
	}
	s.removeAllTargetsClosing()
	return err
}

func (s *Server) removeAllTargetsClosing() {
	s.mu.Lock()
	ts := make([]*target, 0, len(s.targets))
	for n, t := range s.targets {
		ts = append(ts, t)
		delete(s.targets, n)
	}
	s.mu.Unlock()
	for _, t := range ts {
		t.port.Deregister()
	}
}

// dropTargetSessions closes every session on t except keep (which closes
// itself after its last response).
func (s *Server) dropTargetSessions(t *target, keep *session) {
	s.mu.Lock()
	var victims []*session
	for _, ss := range s.byTSIH {
		if ss.target == t && ss != keep {
			victims = append(victims, ss)
		}
	}
	s.mu.Unlock()
	for _, ss := range victims {
		ss.close("target cold reset")
	}
}

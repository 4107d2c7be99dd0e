package iscsi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
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
	ErrBadPortalGroup = errors.New("iscsi: invalid portal group")
)

// tgroup is one portal group of a served target: its tag, the listen
// addresses of its portals and its stmf local port.
type tgroup struct {
	tag     uint16
	portals []string
	port    *stmf.LocalPort
}

// target is one served target node. The pointer is stable for the life of
// the target; cfg and groups change under Server.mu (UpdateTarget).
type target struct {
	name   string
	cfg    TargetConfig
	groups []*tgroup // sorted by tag
}

func (t *target) group(tag uint16) *tgroup {
	for _, g := range t.groups {
		if g.tag == tag {
			return g
		}
	}
	return nil
}

// portal is one listen address in use by the default portal group or a
// portal group some target is bound to.
type portal struct {
	addr string       // as configured
	l    net.Listener // nil when not listening (covered by a wildcard listener, or failed)
	// bound is the address connections arrive on: the listener's actual
	// address, or the configured one when a wildcard listener on the same
	// port accepts its connections. nil when the portal is not served.
	bound *net.TCPAddr
	err   error
}

// Server is the iSCSI target port provider.
type Server struct {
	fw    *stmf.Framework
	cfg   Config
	log   *slog.Logger
	pool  *bufPool
	guard *guard
	// pollers bounds the readers polling an idle socket (idlepoll.go).
	pollers *pollers

	// cfgMu serialises configuration changes (targets, listeners).
	cfgMu sync.Mutex

	mu       sync.Mutex
	started  bool
	closing  bool
	portals  map[string]*portal // by configured address
	targets  map[string]*target
	sessions map[sessKey]*session // normal sessions by identity
	byTSIH   map[uint16]*session  // every live session
	conns    map[*conn]struct{}   // every live connection
	nextTSIH uint16
	stats    serverStats    // stats.go
	wg       sync.WaitGroup // accept loops and connection goroutines
	connWG   sync.WaitGroup // connection goroutines only
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
		guard:    newGuard(),
		pollers:  newPollers(),
		portals:  map[string]*portal{},
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

// Start listens on the default portals and on every portal of every portal
// group a target is bound to, and returns once they listen. A default
// portal that cannot listen fails Start; a portal group's portal that
// cannot listen is logged (its targets stay reachable through their other
// portals) and retried on the next configuration change.
func (s *Server) Start(ctx context.Context) error {
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
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
	strict := map[string]bool{}
	for _, p := range s.cfg.Portals {
		strict[p] = true
	}
	if err := s.reconcile(ctx, strict); err != nil {
		s.mu.Lock()
		s.started = false
		ls := s.takeListenersLocked()
		s.mu.Unlock()
		for _, l := range ls {
			l.Close()
		}
		return err
	}
	for _, a := range s.Addrs() {
		s.log.Info("iscsi: portal listening", "addr", a.String())
	}
	return nil
}

// takeListenersLocked forgets every portal and returns their listeners.
func (s *Server) takeListenersLocked() []net.Listener {
	var ls []net.Listener
	for k, p := range s.portals {
		if p.l != nil {
			ls = append(ls, p.l)
		}
		delete(s.portals, k)
	}
	return ls
}

// wantedLocked is the set of listen addresses in use: the default portals
// and the portals of every group of every target.
func (s *Server) wantedLocked() map[string]bool {
	w := map[string]bool{}
	for _, p := range s.cfg.Portals {
		w[p] = true
	}
	for _, t := range s.targets {
		for _, g := range t.groups {
			for _, p := range g.portals {
				w[p] = true
			}
		}
	}
	return w
}

// reconcile opens listeners for the portals in use and closes those no
// longer in use, live: connections already accepted are not affected. It
// returns an error when a portal in strict cannot listen. Callers hold
// cfgMu; it does nothing before Start.
func (s *Server) reconcile(ctx context.Context, strict map[string]bool) error {
	s.mu.Lock()
	if !s.started || s.closing {
		s.mu.Unlock()
		return nil
	}
	want := s.wantedLocked()
	var closing []net.Listener
	closed := map[string]bool{}
	for k, p := range s.portals {
		if !want[k] {
			if p.l != nil {
				closing = append(closing, p.l)
				closed[k] = true
			}
			delete(s.portals, k)
		}
	}
	// Portals served by a wildcard listener that is going away need their
	// own listener now; so do portals that failed before.
	var open []string
	for k := range want {
		p := s.portals[k]
		switch {
		case p == nil, p.bound == nil:
			open = append(open, k)
		case p.l == nil && s.coveredLocked(p.bound, closed) == "":
			open = append(open, k)
		}
	}
	s.mu.Unlock()
	// Close first: a specific address cannot be bound while a wildcard
	// listener holds its port.
	for _, l := range closing {
		l.Close()
	}
	// Wildcard addresses first, so specific ones on the same port can be
	// served by them instead of failing with EADDRINUSE.
	sort.Slice(open, func(i, j int) bool {
		wi, wj := isWildcard(open[i]), isWildcard(open[j])
		if wi != wj {
			return wi
		}
		return open[i] < open[j]
	})
	var errs []error
	var lc net.ListenConfig
	for _, k := range open {
		p := &portal{addr: k}
		s.mu.Lock()
		want := s.started && !s.closing && s.wantedLocked()[k]
		var cover string
		if want && !isWildcard(k) {
			if a, err := net.ResolveTCPAddr("tcp", k); err == nil && a.Port != 0 && a.IP != nil {
				cover = s.coveredLocked(a, nil)
				if cover != "" {
					p.bound = a
				}
			}
		}
		s.mu.Unlock()
		if !want {
			continue
		}
		if cover == "" {
			l, err := lc.Listen(ctx, "tcp", k)
			if err != nil {
				p.err = err
				if strict[k] {
					errs = append(errs, fmt.Errorf("iscsi: listen on %s: %w", k, err))
				} else {
					s.log.Error("iscsi: cannot listen on portal; its portal group is unreachable there", "portal", k, "err", err)
				}
			} else {
				p.l = l
				p.bound, _ = l.Addr().(*net.TCPAddr)
			}
		}
		s.mu.Lock()
		if !s.started || s.closing {
			s.mu.Unlock()
			if p.l != nil {
				p.l.Close()
			}
			continue
		}
		if old := s.portals[k]; old != nil && old.l != nil {
			// Cannot happen (cfgMu), but never leak a listener.
			old.l.Close()
		}
		s.portals[k] = p
		if p.l != nil {
			s.wg.Add(1)
			go s.acceptLoop(p.l)
		}
		s.mu.Unlock()
		if p.l != nil && s.started {
			s.log.Debug("iscsi: portal opened", "portal", k, "addr", p.l.Addr().String())
		} else if cover != "" {
			s.log.Debug("iscsi: portal served by a wildcard listener", "portal", k, "listener", cover)
		}
	}
	return errors.Join(errs...)
}

func isWildcard(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "" || ip != nil && ip.IsUnspecified()
}

// coveredLocked returns the configured address of a listening wildcard
// portal on a's port (of a's family) that is not in except, or "".
func (s *Server) coveredLocked(a *net.TCPAddr, except map[string]bool) string {
	if a.IP.IsUnspecified() {
		return ""
	}
	for k, p := range s.portals {
		if p.l == nil || p.bound == nil || except[k] || !p.bound.IP.IsUnspecified() || p.bound.Port != a.Port {
			continue
		}
		// An IPv6 wildcard accepts IPv4 too (dual stack); an IPv4
		// wildcard accepts only IPv4.
		if p.bound.IP.To4() != nil && a.IP.To4() == nil {
			continue
		}
		return k
	}
	return ""
}

// Addrs returns the actual listen addresses: the default portals first (in
// configuration order), then the portal groups' portals.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.Addr
	seen := map[string]bool{}
	for _, k := range s.cfg.Portals {
		if p := s.portals[k]; p != nil && p.l != nil && !seen[k] {
			seen[k] = true
			out = append(out, p.l.Addr())
		}
	}
	var rest []string
	for k, p := range s.portals {
		if p.l != nil && !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		out = append(out, s.portals[k].l.Addr())
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
		s.handleConn(nc, l.Addr().String())
	}
}

// handleConn admits an accepted connection and serves it in its own
// goroutine, or closes it when it is over a limit or the server closes.
func (s *Server) handleConn(nc net.Conn, portal string) {
	src := sourceIP(nc.RemoteAddr())
	if why := s.guard.admit(&s.cfg, portal, src); why != "" {
		nc.Close()
		s.loginRejected(why, nc.RemoteAddr(), "")
		return
	}
	c := newConn(s, nc)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		nc.Close()
		s.guard.loginOver()
		s.guard.leave(portal, src)
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.connWG.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer s.connWG.Done()
		c.serve()
		s.guard.leave(portal, src)
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
}

// resolveGroups validates tc and returns its portal groups sorted by tag
// (the default portal group when tc names none). Callers hold cfgMu.
func (s *Server) resolveGroups(tc TargetConfig) ([]PortalGroup, error) {
	if !validName(tc.Name) {
		return nil, fmt.Errorf("%w: %q", ErrBadTargetName, tc.Name)
	}
	if len(tc.PortalGroups) == 0 {
		tag := tc.TPGT
		if tag == 0 {
			tag = 1
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return []PortalGroup{{Tag: tag, Portals: slices.Clone(s.cfg.Portals)}}, nil
	}
	out := make([]PortalGroup, 0, len(tc.PortalGroups))
	seen := map[uint16]bool{}
	for _, g := range tc.PortalGroups {
		if g.Tag == 0 || seen[g.Tag] {
			return nil, fmt.Errorf("%w: target %s: portal group tag %d zero or repeated", ErrBadPortalGroup, tc.Name, g.Tag)
		}
		seen[g.Tag] = true
		for _, p := range g.Portals {
			if err := checkPortal(p); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrBadPortalGroup, err)
			}
		}
		out = append(out, PortalGroup{Tag: g.Tag, Portals: slices.Clone(g.Portals)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tag < out[j].Tag })
	return out, nil
}

// registerGroups builds the groups of target name, reusing the local ports
// of the tags in old and registering the others. It returns the groups and
// the newly registered ones (to deregister on failure).
func (s *Server) registerGroups(name string, pgs []PortalGroup, old []*tgroup) (groups, added []*tgroup, err error) {
	for _, pg := range pgs {
		g := &tgroup{tag: pg.Tag, portals: pg.Portals}
		for _, og := range old {
			if og.tag == pg.Tag {
				g.port = og.port
			}
		}
		if g.port == nil {
			p, err := s.fw.RegisterPort(targetPortSpec(name, pg.Tag))
			if err != nil {
				for _, a := range added {
					a.port.Deregister()
				}
				return nil, nil, fmt.Errorf("iscsi: register target port %s: %w", targetPortName(name, pg.Tag), err)
			}
			g.port = p
			added = append(added, g)
		}
		groups = append(groups, g)
	}
	return groups, added, nil
}

// newPortals lists the addresses of groups not already in use.
func (s *Server) newPortalsLocked(groups []*tgroup) map[string]bool {
	inUse := s.wantedLocked()
	out := map[string]bool{}
	for _, g := range groups {
		for _, p := range g.portals {
			if !inUse[p] {
				out[p] = true
			}
		}
	}
	return out
}

// AddTarget serves a new target (live): one stmf local port per portal
// group is registered, listeners open on portals not yet in use, and the
// target is reported by discovery from now on. A portal that cannot
// listen fails the call (nothing changes).
func (s *Server) AddTarget(tc TargetConfig) error {
	// Under cfgMu: the default portals may change (SetPortals).
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	pgs, err := s.resolveGroups(tc)
	if err != nil {
		return err
	}
	if tc.TPGT == 0 {
		tc.TPGT = 1
	}
	tc.PortalGroups = clonePortalGroups(tc.PortalGroups)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	key := CanonicalName(tc.Name)
	if _, ok := s.targets[key]; ok {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrTargetExists, tc.Name)
	}
	s.mu.Unlock()
	groups, added, err := s.registerGroups(tc.Name, pgs, nil)
	if err != nil {
		return err
	}
	t := &target{name: tc.Name, cfg: tc, groups: groups}
	s.mu.Lock()
	strict := s.newPortalsLocked(groups)
	s.targets[key] = t
	s.mu.Unlock()
	if err := s.reconcile(context.Background(), strict); err != nil {
		s.mu.Lock()
		delete(s.targets, key)
		s.mu.Unlock()
		_ = s.reconcile(context.Background(), nil)
		for _, g := range added {
			g.port.Deregister()
		}
		return err
	}
	return nil
}

// UpdateTarget changes a served target's alias and portal groups live.
// Sessions stay unless the portal group they logged in through was
// removed from the target or no longer holds the portal they use; those
// are closed. Listeners open and close as portals come into and go out of
// use. Renaming is RemoveTarget + AddTarget (its sessions end).
func (s *Server) UpdateTarget(tc TargetConfig) error {
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	pgs, err := s.resolveGroups(tc)
	if err != nil {
		return err
	}
	if tc.TPGT == 0 {
		tc.TPGT = 1
	}
	tc.PortalGroups = clonePortalGroups(tc.PortalGroups)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	t := s.targets[CanonicalName(tc.Name)]
	if t == nil {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrTargetNotFound, tc.Name)
	}
	oldCfg, oldGroups := t.cfg, t.groups
	s.mu.Unlock()
	groups, added, err := s.registerGroups(tc.Name, pgs, oldGroups)
	if err != nil {
		return err
	}
	s.mu.Lock()
	strict := s.newPortalsLocked(groups)
	t.cfg, t.groups = tc, groups
	s.mu.Unlock()
	if err := s.reconcile(context.Background(), strict); err != nil {
		s.mu.Lock()
		t.cfg, t.groups = oldCfg, oldGroups
		s.mu.Unlock()
		_ = s.reconcile(context.Background(), nil)
		for _, g := range added {
			g.port.Deregister()
		}
		return err
	}
	s.closeInvalidSessions(t, "portal group removed from the target")
	for _, og := range oldGroups {
		if t.groupHasPort(og.port) {
			continue
		}
		og.port.Deregister()
	}
	s.log.Info("iscsi: target updated", "target", tc.Name, "portal_groups", len(groups))
	return nil
}

func (t *target) groupHasPort(p *stmf.LocalPort) bool {
	for _, g := range t.groups {
		if g.port == p {
			return true
		}
	}
	return false
}

// closeInvalidSessions closes t's sessions whose portal group or portal is
// no longer valid for t.
func (s *Server) closeInvalidSessions(t *target, why string) {
	s.mu.Lock()
	var victims []*session
	for _, ss := range s.byTSIH {
		if ss.target == t && !s.sessionValidLocked(ss) {
			victims = append(victims, ss)
		}
	}
	s.mu.Unlock()
	for _, ss := range victims {
		ss.close(why)
	}
}

// sessionValidLocked reports whether a normal session's target still has
// the portal group (and local port) it logged in through, and that group
// still holds the portal its connection arrived on.
func (s *Server) sessionValidLocked(ss *session) bool {
	if s.targets[CanonicalName(ss.key.target)] != ss.target {
		return false
	}
	g := ss.target.group(ss.key.tpgt)
	return g != nil && g.port == ss.port && s.portalMatchLocked(g, ss.local) > 0
}

// portalMatchLocked scores how well local (a connection's local address)
// matches one of g's portals: 2 exact address, 1 wildcard, 0 no match.
func (s *Server) portalMatchLocked(g *tgroup, local *net.TCPAddr) int {
	if local == nil {
		return 0
	}
	best := 0
	for _, k := range g.portals {
		p := s.portals[k]
		if p == nil || p.bound == nil || p.bound.Port != local.Port {
			continue
		}
		switch {
		case p.bound.IP.Equal(local.IP):
			return 2
		case p.bound.IP == nil || p.bound.IP.IsUnspecified():
			best = 1
		}
	}
	return best
}

// loginGroup picks the portal group of t a connection with local address
// local reaches: the one with a portal matching exactly, else through a
// wildcard portal; the lowest tag on a tie. It returns nil when t is not
// served on that address.
func (s *Server) loginGroup(t *target, local *net.TCPAddr) (g *tgroup, alias string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.targets[CanonicalName(t.name)] != t {
		return nil, ""
	}
	best := 0
	for _, cand := range t.groups {
		if m := s.portalMatchLocked(cand, local); m > best {
			g, best = cand, m
		}
	}
	return g, t.cfg.Alias
}

// targetAddr is one TargetAddress of a target for SendTargets.
type targetAddr struct {
	addr *net.TCPAddr
	tag  uint16
}

// targetAddrs lists, in tag order, the served portals of t's groups.
func (s *Server) targetAddrs(t *target) []targetAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []targetAddr
	for _, g := range t.groups {
		for _, k := range g.portals {
			if p := s.portals[k]; p != nil && p.bound != nil {
				out = append(out, targetAddr{addr: p.bound, tag: g.tag})
			}
		}
	}
	return out
}

// RemoveTarget stops serving a target (live): new logins fail with "not
// found", its sessions are closed, its local ports are deregistered and
// listeners only it used are closed.
func (s *Server) RemoveTarget(name string) error {
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	s.mu.Lock()
	t, ok := s.targets[CanonicalName(name)]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrTargetNotFound, name)
	}
	delete(s.targets, CanonicalName(name))
	groups := t.groups
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
	for _, g := range groups {
		g.port.Deregister()
	}
	return s.reconcile(context.Background(), nil)
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
		tc := t.cfg
		tc.PortalGroups = clonePortalGroups(tc.PortalGroups)
		out = append(out, tc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func clonePortalGroups(pgs []PortalGroup) []PortalGroup {
	out := slices.Clone(pgs)
	for i := range out {
		out[i].Portals = slices.Clone(out[i].Portals)
	}
	return out
}

// lookupTarget finds a target by name, compared in canonical form.
func (s *Server) lookupTarget(name string) *target {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.targets[CanonicalName(name)]
}

// SessionInfo describes a live session (for list-target -v).
type SessionInfo struct {
	Initiator   string
	Alias       string
	ISID        [6]byte
	TSIH        uint16
	Target      string // empty for discovery
	TPGT        uint16 // portal group tag the session logged in through
	LocalAddr   string // portal address the connection arrived on
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
			Target: ss.key.target, TPGT: ss.key.tpgt, Discovery: ss.discovery, InFlight: ss.inFlightCount()}
		if ss.local != nil {
			si.LocalAddr = ss.local.String()
		}
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
			// The target, or the portal group the connection logged in
			// through, may have changed during the login.
			if !s.sessionValidLocked(ss) {
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
		s.stats.retire(ss)
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

// inFlight counts the commands in flight over every session.
func (s *Server) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	busy := 0
	for _, ss := range s.byTSIH {
		busy += ss.inFlightCount()
	}
	return busy
}

// waitIdle waits until no session has a command in flight, for at most
// half the time ctx has left (10 s without a deadline).
func (s *Server) waitIdle(ctx context.Context) {
	limit := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		limit = time.Until(d) / 2
	}
	end := time.Now().Add(limit)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(end) {
		if s.inFlight() == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Shutdown stops accepting connections, lets the commands in flight
// finish (waitIdle), asks every logged-in initiator to log out (Async
// Message), lets in-flight tasks finish until ctx expires, then closes
// every session (which aborts what is left and waits for it) and
// deregisters the targets' ports.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	ls := s.takeListenersLocked()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	// Let the commands already received finish before asking initiators to
	// log out: one that logs out with commands outstanding fails or
	// requeues them, and a stopping target will not be there to retry on.
	// Bounded by half the time left, so a never-idle initiator still gets
	// its logout request before the hard close.
	s.waitIdle(ctx)
	for _, c := range conns {
		c.requestLogout(s.cfg.LogoutWait)
	}
	// Wait for in-flight work to drain, for initiators to log out, or
	// for the deadline.
	deadline := time.Now().Add(s.cfg.LogoutWait)
	tick := time.NewTicker(10 * time.Millisecond)
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 || (s.inFlight() == 0 && time.Now().After(deadline)) {
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
	var groups []*tgroup
	for n, t := range s.targets {
		groups = append(groups, t.groups...)
		delete(s.targets, n)
	}
	s.mu.Unlock()
	for _, g := range groups {
		g.port.Deregister()
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

package isns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// PortalGroup is one portal group a target is reachable through: its tag
// and its listen addresses (an unspecified IP means every address; the
// address we reach the iSNS server from is registered for it).
type PortalGroup struct {
	Tag     uint16
	Portals []netip.AddrPort
}

// Target is an online iSCSI target node.
type Target struct {
	Name, Alias string
	Groups      []PortalGroup
}

// State is what should be registered now.
type State struct {
	Enabled bool
	Servers []string // "host:port"
	Targets []Target
}

// Defaults for a Client's zero fields.
const (
	DefaultMonitorInterval = 60 * time.Second // COMSTAR's idle check
	DefaultESIInterval     = 60 * time.Second // asked for; the server may change it
	DefaultCallTimeout     = 10 * time.Second
	maxBackoff             = 60 * time.Second
)

// Client keeps the registrations with every configured server current.
// Source is read on every Notify and every tick, so the client always
// registers the latest configuration.
type Client struct {
	EntityID        string // our Entity Identifier (the host name, as COMSTAR)
	Source          func() State
	Log             *slog.Logger
	MonitorInterval time.Duration // how often a registration is checked
	ESIInterval     time.Duration // ESI interval asked for
	CallTimeout     time.Duration // dial plus request and response

	started bool // Start ran (Start and Close run on one goroutine)
	notify  chan struct{}
	stop    chan struct{}
	stopped chan struct{}

	mu      sync.Mutex // servers, esi
	servers map[string]*server
	esi     map[netip.Addr]*esiListener // by local address (esi.go)
	seen    *seenLog                    // ESI and SCN arrivals (esi.go)
}

// server is the client's knowledge of one iSNS server.
type server struct {
	addr       string
	registered []Target   // what the server accepted last; nil: nothing
	source     string     // a node name registered there (the source of our requests)
	down       bool       // last call failed (logged once per change)
	failures   int        // consecutive failures: the backoff
	retryAt    time.Time  // not before, after a failure
	checkAt    time.Time  // next verification that it still knows us
	remote     netip.Addr // its address, as ESI and SCN come from it
	esiSeen    time.Time  // last ESI from it
	esiEvery   time.Duration
	resync     bool // an SCN or a missed ESI asks for a re-registration
}

// NewClient returns a client for entity eid registering what source
// returns; Start runs it.
func NewClient(eid string, source func() State, log *slog.Logger) *Client {
	c := &Client{
		EntityID: eid,
		Source:   source,
		Log:      log,
		notify:   make(chan struct{}, 1),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
		servers:  map[string]*server{},
		esi:      map[netip.Addr]*esiListener{},
	}
	c.seen = &seenLog{esi: map[netip.Addr]time.Time{}, scn: map[netip.Addr]bool{}, wake: c.Notify}
	return c
}

// Start runs the client until Close; set the optional fields before.
func (c *Client) Start() {
	c.started = true
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.MonitorInterval <= 0 {
		c.MonitorInterval = DefaultMonitorInterval
	}
	if c.ESIInterval <= 0 {
		c.ESIInterval = DefaultESIInterval
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	go c.run()
}

// Notify tells the client the configuration changed. It never blocks.
func (c *Client) Notify() {
	if c == nil {
		return
	}
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// Close deregisters from every server (bounded by ctx) and stops.
func (c *Client) Close(ctx context.Context) error {
	if !c.started {
		return nil
	}
	close(c.stop)
	<-c.stopped
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, s := range c.servers {
		if s.registered != nil {
			if err := c.deregister(ctx, s); err != nil {
				errs = append(errs, err)
				continue
			}
			c.Log.Info("isns: deregistered at shutdown", "server", s.addr, "entity", c.EntityID)
		}
	}
	for _, l := range c.esi {
		l.close()
	}
	return errors.Join(errs...)
}

func (c *Client) run() {
	defer close(c.stopped)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		c.reconcile()
		select {
		case <-c.stop:
			return
		case <-c.notify:
		case <-tick.C:
		}
	}
}

// reconcile brings every server in line with Source.
func (c *Client) reconcile() {
	st := c.Source()
	want := map[string]bool{}
	if st.Enabled {
		for _, s := range st.Servers {
			want[s] = true
		}
	}
	targets := sortedTargets(st.Targets)
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.CallTimeout)
	defer cancel()
	for addr, s := range c.servers {
		if !want[addr] {
			if s.registered != nil {
				if err := c.deregister(ctx, s); err != nil {
					c.Log.Warn("isns: deregistration failed", "server", addr, "err", err)
				} else {
					c.Log.Info("isns: deregistered (iSNS disabled or server removed)", "server", addr, "entity", c.EntityID)
				}
			}
			delete(c.servers, addr)
		}
	}
	now := time.Now()
	for _, addr := range st.Servers {
		if !want[addr] {
			continue
		}
		s := c.servers[addr]
		if s == nil {
			s = &server{addr: addr}
			c.servers[addr] = s
		}
		if now.Before(s.retryAt) {
			continue
		}
		if len(targets) == 0 {
			if s.registered != nil {
				c.result(s, c.deregister(ctx, s), "deregistered")
			}
			continue
		}
		same := s.registered != nil && slices.EqualFunc(s.registered, targets, equalTarget)
		if esi, scn := c.seen.take(s.remote); s.remote.IsValid() {
			if esi.After(s.esiSeen) {
				s.esiSeen = esi
			}
			if scn && s.registered != nil {
				s.checkAt = time.Time{} // verify now
			}
		}
		if s.registered != nil && s.esiEvery > 0 && now.Sub(s.esiSeen) > 3*s.esiEvery+2*time.Second {
			// COMSTAR's rule: no ESI for too long means the server lost
			// us (restarted): register again.
			c.Log.Info("isns: no ESI from the server; registering again", "server", addr, "last_esi", s.esiSeen)
			s.resync = true
		}
		switch {
		case !same || s.resync:
			c.result(s, c.register(ctx, s, targets), "registered")
		case now.After(s.checkAt):
			known, err := c.knowsUs(ctx, s)
			if err == nil && !known {
				c.Log.Info("isns: the server no longer knows us; registering again", "server", addr)
				err = c.register(ctx, s, targets)
			}
			c.result(s, err, "")
		}
	}
}

// result records a call's outcome: backoff on failure, one log line per
// change between reachable and not.
func (c *Client) result(s *server, err error, did string) {
	now := time.Now()
	if err != nil {
		s.failures++
		s.retryAt = now.Add(min(time.Duration(1<<min(s.failures, 6))*time.Second, maxBackoff))
		if !s.down {
			c.Log.Warn("isns: server unreachable or refusing us; retrying with backoff", "server", s.addr, "err", err)
		}
		s.down = true
		return
	}
	if s.down {
		c.Log.Info("isns: server answers again", "server", s.addr)
	}
	s.down, s.failures, s.resync = false, 0, false
	s.checkAt = now.Add(c.MonitorInterval)
	if did != "" {
		c.Log.Info("isns: "+did, "server", s.addr, "entity", c.EntityID, "targets", len(s.registered))
	}
}

func equalTarget(a, b Target) bool {
	return a.Name == b.Name && a.Alias == b.Alias && slices.EqualFunc(a.Groups, b.Groups, func(x, y PortalGroup) bool {
		return x.Tag == y.Tag && slices.Equal(x.Portals, y.Portals)
	})
}

func sortedTargets(ts []Target) []Target {
	out := slices.Clone(ts)
	slices.SortFunc(out, func(a, b Target) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// call sends one request to s and returns the response.
func (c *Client) call(ctx context.Context, s *server, fn, flags uint16, source Attr, key, op []Attr) (Message, netip.Addr, error) {
	d := net.Dialer{Timeout: c.CallTimeout}
	nc, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return Message{}, netip.Addr{}, err
	}
	defer nc.Close()
	local := nc.LocalAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	s.remote = nc.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(c.CallTimeout)
	}
	_ = nc.SetDeadline(dl)
	xid := uint16(time.Now().UnixNano()) | 1
	b, err := encodeMessage(fn, flags|flagClient, xid, nil, source, key, op)
	if err != nil {
		return Message{}, local, err
	}
	if _, err := nc.Write(b); err != nil {
		return Message{}, local, err
	}
	m, err := readMessage(nc)
	if err != nil {
		return Message{}, local, fmt.Errorf("reading the response: %w", err)
	}
	if m.Header.Function != fn|fnResponse || m.Header.XID != xid {
		return m, local, fmt.Errorf("response function %#x xid %d to request %#x xid %d", m.Header.Function, m.Header.XID, fn, xid)
	}
	return m, local, nil
}

type statusError uint32

func (e statusError) Error() string { return fmt.Sprintf("iSNS status %d", uint32(e)) }

// register replaces our entity on s with targets: portals, storage nodes
// and portal groups, in one DevAttrReg with the Replace flag.
func (c *Client) register(ctx context.Context, s *server, targets []Target) error {
	// The first call learns the local address the server sees us at, for
	// wildcard portals and the ESI listener; a second call is needed only
	// when the guess differs (never on one host).
	local := s.localGuess()
	for range 2 {
		op, withESI := c.registration(targets, local)
		m, got, err := c.call(ctx, s, fnDevAttrReg, flagReplace, strAttr(tagISCSIName, targets[0].Name),
			[]Attr{strAttr(tagEID, c.EntityID)}, op)
		if err != nil {
			return fmt.Errorf("DevAttrReg: %w", err)
		}
		if got.IsValid() && got != local {
			local = got // register again with the address the server sees
			continue
		}
		if m.Status != statusSuccess {
			return fmt.Errorf("DevAttrReg: %w", statusError(m.Status))
		}
		s.registered, s.source = targets, targets[0].Name
		s.esiEvery, s.esiSeen = 0, time.Now()
		if withESI {
			s.esiEvery = c.ESIInterval
		}
		for _, a := range m.Operating {
			if !withESI {
				break
			}
			if a.Tag == tagESIInterval {
				if v, ok := a.Uint32(); ok && v > 0 {
					s.esiEvery = time.Duration(v) * time.Second
				}
				break
			}
		}
		return nil
	}
	return errors.New("DevAttrReg: local address keeps changing")
}

// localGuess is the address we reach s from, found with a throwaway UDP
// "connection" (no packet is sent).
func (s *server) localGuess() netip.Addr {
	conn, err := net.Dial("udp", s.addr)
	if err != nil {
		return netip.Addr{}
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
}

// registration is the operating attributes of our entity, and whether
// any portal asks for ESI.
func (c *Client) registration(targets []Target, local netip.Addr) ([]Attr, bool) {
	resolve := func(p netip.AddrPort) netip.AddrPort {
		if p.Addr().IsUnspecified() && local.IsValid() {
			return netip.AddrPortFrom(local, p.Port())
		}
		return netip.AddrPortFrom(p.Addr().Unmap(), p.Port())
	}
	var portals []netip.AddrPort
	for _, t := range targets {
		for _, g := range t.Groups {
			for _, p := range g.Portals {
				if r := resolve(p); !slices.Contains(portals, r) {
					portals = append(portals, r)
				}
			}
		}
	}
	op := []Attr{strAttr(tagEID, c.EntityID), u32Attr(tagEntityProtocol, entityProtocolISCSI)}
	withESI := false
	for _, p := range portals {
		op = append(op, ipAttr(tagPortalIP, p.Addr()), portAttr(tagPortalPort, p.Port()))
		esiPort, err := c.esiPort(p.Addr())
		if err != nil {
			// Registered without ESI: the periodic check keeps it.
			c.Log.Debug("isns: no ESI listener for portal", "portal", p, "err", err)
			continue
		}
		withESI = true
		op = append(op, u32Attr(tagESIInterval, uint32(c.ESIInterval/time.Second)), portAttr(tagESIPort, esiPort))
	}
	for _, t := range targets {
		op = append(op, strAttr(tagISCSIName, t.Name), u32Attr(tagNodeType, nodeTypeTarget))
		if t.Alias != "" {
			op = append(op, strAttr(tagAlias, t.Alias))
		}
	}
	// A portal group object for every node and portal of the entity: the
	// tag where the target is served, a null tag (no access) elsewhere,
	// so the server does not invent default groups.
	for _, t := range targets {
		for _, p := range portals {
			pg := []Attr{strAttr(tagPGName, t.Name), ipAttr(tagPGIP, p.Addr()), portAttr(tagPGPort, p.Port()), {Tag: tagPGTag}}
			for _, g := range t.Groups {
				for _, gp := range g.Portals {
					if resolve(gp) == p {
						pg[3] = u32Attr(tagPGTag, uint32(g.Tag))
					}
				}
			}
			op = append(op, pg...)
		}
	}
	return op, withESI
}

// deregister removes our whole entity from s.
func (c *Client) deregister(ctx context.Context, s *server) error {
	m, _, err := c.call(ctx, s, fnDevDereg, 0, strAttr(tagISCSIName, s.source), nil, []Attr{strAttr(tagEID, c.EntityID)})
	if err == nil && m.Status != statusSuccess && m.Status != statusNoSuchEntry && m.Status != statusSourceUnknown && m.Status != statusSourceUnauthorized {
		err = statusError(m.Status)
	}
	if err != nil {
		return fmt.Errorf("DevDereg from %s: %w", s.addr, err)
	}
	s.registered = nil
	return nil
}

// knowsUs asks s whether our entity and nodes are still registered.
func (c *Client) knowsUs(ctx context.Context, s *server) (bool, error) {
	m, _, err := c.call(ctx, s, fnDevAttrQry, 0, strAttr(tagISCSIName, s.source),
		[]Attr{strAttr(tagEID, c.EntityID)}, []Attr{{Tag: tagISCSIName}})
	if err != nil {
		return false, fmt.Errorf("DevAttrQry: %w", err)
	}
	switch m.Status {
	case statusSuccess:
	case statusSourceUnknown, statusSourceUnauthorized, statusNoSuchEntry, statusInvalidRegistration:
		return false, nil
	default:
		return false, fmt.Errorf("DevAttrQry: %w", statusError(m.Status))
	}
	var names []string
	for _, a := range m.Operating {
		if a.Tag == tagISCSIName {
			names = append(names, a.String())
		}
	}
	for _, t := range s.registered {
		if !slices.Contains(names, t.Name) {
			return false, nil
		}
	}
	return true, nil
}

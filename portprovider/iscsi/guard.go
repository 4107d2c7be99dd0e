package iscsi

import (
	"net"
	"sync"
	"time"
)

// Reasons a login is rejected, as logged (and, one day, counted).
const (
	rejectPortalLimit  = "portal-connection-limit"
	rejectSourceLimit  = "source-connection-limit"
	rejectLoginLimit   = "logins-in-progress-limit"
	rejectAuth         = "authentication"
	rejectNotFound     = "target-not-found"
	rejectProtocol     = "protocol"
	rejectUnavailable  = "unavailable"
	rejectTimeout      = "timeout"
	rejectLoginUnknown = "other"
)

// loginRejected is the one place a rejected login or a connection refused
// before login is reported (a counter per reason belongs here). Each
// rejected login is logged once; connections refused by a limit are
// logged at most once per rejectLogEvery per reason, so a flood cannot
// fill the log. detail never holds a secret.
func (s *Server) loginRejected(reason string, remote net.Addr, detail string) {
	switch reason {
	case rejectPortalLimit, rejectSourceLimit, rejectLoginLimit:
		if n, ok := s.guard.allowLog(reason); ok {
			s.log.Warn("iscsi: connection refused before login", "reason", reason, "remote", addrString(remote), "suppressed_before", n)
		}
	default:
		s.log.Info("iscsi: login rejected", "reason", reason, "remote", addrString(remote), "detail", detail)
	}
}

// loginReason maps a login status to a rejection reason.
func loginReason(st loginStatus) string {
	switch st {
	case statusAuthFailure, statusForbidden:
		return rejectAuth
	case statusNotFound, statusTargetRemoved:
		return rejectNotFound
	case statusServiceUnavailable, statusOutOfResources, statusTargetError:
		return rejectUnavailable
	case statusSuccess:
		return rejectLoginUnknown
	}
	return rejectProtocol
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// sourceIP is the address part of a remote address (the key of the
// per-source limits).
func sourceIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	if h, _, err := net.SplitHostPort(addrString(a)); err == nil {
		return h
	}
	return addrString(a)
}

// Bounds of the failed-CHAP table and log rate limiting.
const (
	maxAuthFailEntries = 4096
	authFailForget     = 15 * time.Minute
	authFailMaxDelay   = 8 * time.Second
	rejectLogEvery     = 10 * time.Second
)

// guard holds the pre-login admission state: connection counts per
// portal and per source address, logins in progress, failed CHAP attempts
// and the rejection log's rate limiter.
type guard struct {
	mu        sync.Mutex
	perPortal map[string]int // by listener address
	perSource map[string]int // by remote IP
	logins    int
	authFails map[string]authFail // by initiator name + source IP
	logged    map[string]logMark  // by reason
}

type authFail struct {
	n    int
	last time.Time
}

type logMark struct {
	last       time.Time
	suppressed int
}

func newGuard() *guard {
	return &guard{perPortal: map[string]int{}, perSource: map[string]int{},
		authFails: map[string]authFail{}, logged: map[string]logMark{}}
}

// admit counts a new connection against the limits, or returns the
// reason it is refused. A zero limit is unlimited (withDefaults fills the
// defaults in).
func (g *guard) admit(cfg *Config, portal, src string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case cfg.MaxConnectionsPerPortal > 0 && g.perPortal[portal] >= cfg.MaxConnectionsPerPortal:
		return rejectPortalLimit
	case cfg.MaxConnectionsPerSource > 0 && g.perSource[src] >= cfg.MaxConnectionsPerSource:
		return rejectSourceLimit
	case cfg.MaxLoginsInProgress > 0 && g.logins >= cfg.MaxLoginsInProgress:
		return rejectLoginLimit
	}
	g.perPortal[portal]++
	g.perSource[src]++
	g.logins++
	return ""
}

// loginOver ends a connection's login phase (successful or not).
func (g *guard) loginOver() {
	g.mu.Lock()
	g.logins--
	g.mu.Unlock()
}

// leave forgets a connection admitted by admit.
func (g *guard) leave(portal, src string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.perPortal[portal]--; g.perPortal[portal] <= 0 {
		delete(g.perPortal, portal)
	}
	if g.perSource[src]--; g.perSource[src] <= 0 {
		delete(g.perSource, src)
	}
}

// authFailed records a failed CHAP attempt and returns how long to wait
// before answering it: base after the first failure, doubling with each
// further one within authFailForget, up to authFailMaxDelay.
func (g *guard) authFailed(key string, base time.Duration, now time.Time) time.Duration {
	if base <= 0 {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	f, ok := g.authFails[key]
	if !ok && len(g.authFails) >= maxAuthFailEntries {
		g.evictLocked(now)
	}
	if ok && now.Sub(f.last) > authFailForget {
		f.n = 0
	}
	f.n++
	f.last = now
	g.authFails[key] = f
	d := base
	for i := 1; i < f.n && d < authFailMaxDelay; i++ {
		d *= 2
	}
	return min(d, max(authFailMaxDelay, base))
}

// authSucceeded forgets the failures of key.
func (g *guard) authSucceeded(key string) {
	g.mu.Lock()
	delete(g.authFails, key)
	g.mu.Unlock()
}

// evictLocked makes room in the failure table: expired entries go first,
// else the oldest one.
func (g *guard) evictLocked(now time.Time) {
	var oldest string
	var ot time.Time
	for k, f := range g.authFails {
		if now.Sub(f.last) > authFailForget {
			delete(g.authFails, k)
			continue
		}
		if oldest == "" || f.last.Before(ot) {
			oldest, ot = k, f.last
		}
	}
	if len(g.authFails) >= maxAuthFailEntries {
		delete(g.authFails, oldest)
	}
}

// allowLog reports whether a rejection for reason may be logged now, and
// how many were suppressed since the last one logged.
func (g *guard) allowLog(reason string) (int, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	m := g.logged[reason]
	if !m.last.IsZero() && now.Sub(m.last) < rejectLogEvery {
		m.suppressed++
		g.logged[reason] = m
		return 0, false
	}
	n := m.suppressed
	g.logged[reason] = logMark{last: now}
	return n, true
}

// sleep waits d unless the connection closes first.
func (c *conn) sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.done:
	}
}

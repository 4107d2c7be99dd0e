package isns

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeServer answers every request with status and counts requests by
// function.
type fakeServer struct {
	ln     net.Listener
	status uint32
	mu     sync.Mutex
	got    map[uint16]int
}

func newFakeServer(t *testing.T) *fakeServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln, got: map[uint16]int{}}
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			m, err := readMessage(nc)
			if err == nil {
				s.mu.Lock()
				s.got[m.Header.Function]++
				st := s.status
				s.mu.Unlock()
				b, _ := encodeMessage(m.Header.Function|fnResponse, flagServer, m.Header.XID, &st, Attr{}, m.Key, nil)
				_, _ = nc.Write(b)
			}
			nc.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *fakeServer) count(fn uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[fn]
}

// TestServerStateLoggedOnce: an unreachable server is logged once, not at
// every retry, and again once when it answers; registration follows.
func TestServerStateLoggedOnce(t *testing.T) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := dead.Addr().String()
	dead.Close()
	var logs strings.Builder
	var mu sync.Mutex
	state := State{Enabled: true, Servers: []string{addr}, Targets: []Target{{Name: "iqn.2026-11.org.test:t", Groups: []PortalGroup{{Tag: 1, Portals: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:3260")}}}}}}
	c := NewClient("host", func() State { mu.Lock(); defer mu.Unlock(); return state }, slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)))
	c.CallTimeout = time.Second
	for range 3 {
		c.reconcile()
		c.servers[addr].retryAt = time.Time{} // retry at once
	}
	if n := strings.Count(logs.String(), "server unreachable"); n != 1 {
		t.Fatalf("%d unreachable lines after 3 failures, want 1:\n%s", n, logs.String())
	}
	if f := c.servers[addr].failures; f != 3 {
		t.Fatalf("failures %d", f)
	}
	srv := newFakeServer(t)
	mu.Lock()
	state.Servers = []string{srv.ln.Addr().String()}
	mu.Unlock()
	c.reconcile()
	if srv.count(fnDevAttrReg) != 1 || !strings.Contains(logs.String(), "isns: registered") {
		t.Fatalf("no registration with the new server (%d):\n%s", srv.count(fnDevAttrReg), logs.String())
	}
	if _, ok := c.servers[addr]; ok {
		t.Fatal("the removed server is still tracked")
	}
	// Disabled: deregistered once.
	mu.Lock()
	state.Enabled = false
	mu.Unlock()
	c.reconcile()
	c.reconcile()
	if srv.count(fnDevDereg) != 1 {
		t.Fatalf("%d deregistrations after disabling, want 1", srv.count(fnDevDereg))
	}
	for _, l := range c.esi {
		l.close()
	}
}

// TestRegistrationPortalGroups: every node gets a portal group object for
// every portal of the entity, with a null tag where it is not served, and
// a wildcard portal is registered at the address the server sees.
func TestRegistrationPortalGroups(t *testing.T) {
	c := NewClient("host", nil, slog.New(slog.DiscardHandler))
	defer func() {
		for _, l := range c.esi {
			l.close()
		}
	}()
	a := netip.MustParseAddrPort("127.0.0.1:3260")
	any := netip.MustParseAddrPort("0.0.0.0:3261")
	op, esi := c.registration([]Target{
		{Name: "iqn.t1", Alias: "one", Groups: []PortalGroup{{Tag: 1, Portals: []netip.AddrPort{a}}}},
		{Name: "iqn.t2", Groups: []PortalGroup{{Tag: 2, Portals: []netip.AddrPort{any}}}},
	}, netip.MustParseAddr("127.0.0.1"))
	if !esi {
		t.Fatal("no ESI port registered")
	}
	type pg struct {
		name, portal string
		tag          int64 // -1: null
	}
	var pgs []pg
	var portals []string
	for i := 0; i < len(op); i++ {
		switch op[i].Tag {
		case tagPortalIP:
			p, _ := op[i+1].Uint32()
			ip, _ := netip.AddrFromSlice(op[i].Value)
			portals = append(portals, netip.AddrPortFrom(ip.Unmap(), uint16(p)).String())
		case tagPGName:
			ip, _ := netip.AddrFromSlice(op[i+1].Value)
			p, _ := op[i+2].Uint32()
			tag := int64(-1)
			if v, ok := op[i+3].Uint32(); ok {
				tag = int64(v)
			}
			pgs = append(pgs, pg{op[i].String(), netip.AddrPortFrom(ip.Unmap(), uint16(p)).String(), tag})
		}
	}
	wantPortals := []string{"127.0.0.1:3260", "127.0.0.1:3261"}
	wantPGs := []pg{{"iqn.t1", "127.0.0.1:3260", 1}, {"iqn.t1", "127.0.0.1:3261", -1}, {"iqn.t2", "127.0.0.1:3260", -1}, {"iqn.t2", "127.0.0.1:3261", 2}}
	if strings.Join(portals, " ") != strings.Join(wantPortals, " ") {
		t.Fatalf("portals %v, want %v", portals, wantPortals)
	}
	if len(pgs) != len(wantPGs) {
		t.Fatalf("portal groups %v, want %v", pgs, wantPGs)
	}
	for i := range pgs {
		if pgs[i] != wantPGs[i] {
			t.Fatalf("portal groups %v, want %v", pgs, wantPGs)
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

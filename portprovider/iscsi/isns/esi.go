package isns

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// esiListener answers the server's Entity Status Inquiries (and State
// Change Notifications) on the ESI port we register with our portals.
type esiListener struct {
	ln   net.Listener
	wg   sync.WaitGroup
	seen *seenLog
	busy chan struct{} // one slot per connection being served
}

// maxESIConns bounds the connections served at once: anyone can connect
// to an ESI port, and only iSNS servers should.
const maxESIConns = 16

// seenLog records, by server address, when an ESI last arrived and
// whether an SCN asked us to check our registration. It has its own lock:
// a server may send ESI while it handles our registration, and the
// answer must not wait for the client's lock.
type seenLog struct {
	mu   sync.Mutex
	esi  map[netip.Addr]time.Time
	scn  map[netip.Addr]bool
	wake func()
}

func (l *seenLog) noteESI(from netip.Addr) {
	l.mu.Lock()
	l.esi[from] = time.Now()
	l.mu.Unlock()
}

func (l *seenLog) noteSCN(from netip.Addr) {
	l.mu.Lock()
	l.scn[from] = true
	l.mu.Unlock()
	l.wake()
}

// take returns when server last sent an ESI, and whether it sent an SCN
// since the last call (which clears it).
func (l *seenLog) take(server netip.Addr) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var last time.Time
	scn := false
	for a, t := range l.esi {
		if sameHost(a, server) && t.After(last) {
			last = t
		}
	}
	for a := range l.scn {
		if sameHost(a, server) {
			scn = true
			delete(l.scn, a)
		}
	}
	return last, scn
}

// sameHost matches the address a server's messages come from with the
// address we reach it at; on loopback the kernel picks the source by the
// portal the server connects to, so any loopback address matches.
func sameHost(from, server netip.Addr) bool {
	return from == server || from.IsLoopback() && server.IsLoopback()
}

// esiPort returns the ESI port listening on a portal's address (the
// server sends ESI to the portal's IP and the ESI port), opening it on
// first use. c.mu is held.
func (c *Client) esiPort(local netip.Addr) (uint16, error) {
	if !local.IsValid() || local.IsUnspecified() {
		return 0, errors.New("no address to listen for ESI on")
	}
	if l := c.esi[local]; l != nil {
		return l.ln.Addr().(*net.TCPAddr).AddrPort().Port(), nil
	}
	ln, err := net.Listen("tcp", netip.AddrPortFrom(local, 0).String())
	if err != nil {
		return 0, err
	}
	l := &esiListener{ln: ln, seen: c.seen, busy: make(chan struct{}, maxESIConns)}
	c.esi[local] = l
	l.wg.Add(1)
	go l.serve(c)
	return ln.Addr().(*net.TCPAddr).AddrPort().Port(), nil
}

func (l *esiListener) serve(c *Client) {
	defer l.wg.Done()
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(100 * time.Millisecond) // EMFILE and the like
			continue
		}
		select {
		case l.busy <- struct{}{}:
		default:
			nc.Close() // too many at once
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer func() { <-l.busy }()
			l.handle(c, nc)
		}()
	}
}

// maxESIMessages bounds what one server connection may send us.
const maxESIMessages = 64

// handle answers the messages of one connection from a server: ESI with
// ESIRsp (the key attributes echoed), SCN with SCNRsp, anything else with
// a response saying the message is not understood.
func (l *esiListener) handle(c *Client, nc net.Conn) {
	defer nc.Close()
	from := nc.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	for range maxESIMessages {
		_ = nc.SetDeadline(time.Now().Add(c.CallTimeout))
		m, err := readMessage(nc)
		if err != nil {
			return
		}
		fn := m.Header.Function
		status := uint32(statusSuccess)
		switch fn {
		case fnESI:
			l.seen.noteESI(from)
		case fnSCN:
			// A change to what the server holds: check that it still
			// holds us (it may have dropped or replaced our entity).
			l.seen.noteSCN(from)
		default:
			status = statusMessageNotSupported
		}
		if fn&fnResponse != 0 {
			return // not a request
		}
		b, err := encodeMessage(fn|fnResponse, flagClient, m.Header.XID, &status, Attr{}, m.Key, nil)
		if err != nil {
			return
		}
		if _, err := nc.Write(b); err != nil {
			return
		}
		if fn == fnESI {
			c.Log.Debug("isns: answered ESI", "server", from)
		} else if fn == fnSCN {
			c.Log.Info("isns: state change notification; checking our registration", "server", from)
		}
	}
}

func (l *esiListener) close() {
	_ = l.ln.Close()
	l.wg.Wait()
}

package fcoe

import (
	"time"

	"github.com/costar-project/costar/portprovider/fc"
)

// The receive side: socket readers, the handler goroutine and what it
// does with FCoE frames, FIP claims and FIP-encapsulated ELS.

// read copies frames from one socket to the handler goroutine.
func (a *Adapter) read(c frameConn, fip bool) {
	defer a.wg.Done()
	buf := make([]byte, ethMaxFrame)
	for {
		n, err := c.Read(buf)
		if err != nil {
			select {
			case <-a.stop:
				return
			default:
			}
			a.log.Warn("fcoe read", "err", err)
			select {
			case <-a.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		item := rxItem{fip: fip, raw: append([]byte(nil), buf[:n]...)}
		select {
		case a.rx <- item:
		case <-a.stop:
			return
		}
	}
}

// run is the only goroutine that calls the handler: received frames,
// the claim machine's timers and the carrier poll, in order.
func (a *Adapter) run(h fc.Handler) {
	defer a.wg.Done()
	poll := time.NewTicker(linkPoll)
	defer poll.Stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	carrier := false
	check := func() {
		up := a.linkUp()
		if up == carrier {
			return
		}
		carrier = up
		a.mu.Lock()
		if up {
			a.log.Info("fcoe carrier up")
			a.ctlr.linkUp(time.Now())
		} else {
			a.log.Info("fcoe carrier down")
			a.ctlr.linkDown()
		}
		a.mu.Unlock()
	}
	check()
	for {
		a.flush(h)
		a.mu.Lock()
		next := a.ctlr.next
		a.mu.Unlock()
		timer.Reset(max(time.Until(next), time.Millisecond))
		select {
		case <-a.stop:
			return
		case it := <-a.rx:
			if it.fip {
				a.handleFIP(h, it.raw)
			} else {
				a.handleFCoE(h, it.raw)
			}
		case <-timer.C:
			a.mu.Lock()
			a.ctlr.tick(time.Now())
			a.mu.Unlock()
		case <-poll.C:
			check()
			if n := a.fipc.drops() + a.fcoec.drops(); n > 0 {
				a.stats.Drops.Add(n)
				a.log.Warn("fcoe: receive buffer full, frames dropped", "dropped", n, "total", a.stats.Drops.Load())
			}
		}
	}
}

// flush hands the handler what the claim machine queued.
func (a *Adapter) flush(h fc.Handler) {
	a.mu.Lock()
	q := a.queue
	a.queue = nil
	a.mu.Unlock()
	for _, it := range q {
		select {
		case <-a.stop:
			return
		default:
		}
		if it.link != nil {
			h.LinkEvent(*it.link)
		} else {
			h.Receive(it.f)
		}
	}
}

func (a *Adapter) handleFCoE(h fc.Handler, raw []byte) {
	id := a.upID.Load()
	if len(raw) < ethHdrLen || id == 0 || MAC(raw[0:6]) != VNMAC(id) {
		a.stats.Foreign.Add(1)
		return
	}
	e, err := ParseFCoE(raw[ethHdrLen:])
	if err != nil {
		a.stats.BadFrames.Add(1)
		a.log.Debug("fcoe rx", "err", err)
		return
	}
	if e.Frame.DID != id {
		a.stats.Foreign.Add(1)
		return
	}
	a.stats.RxFrames.Add(1)
	h.Receive(&e.Frame)
}

func (a *Adapter) handleFIP(h fc.Handler, raw []byte) {
	if len(raw) < ethHdrLen {
		return
	}
	src := MAC(raw[6:12])
	body := raw[ethHdrLen:]
	fh, err := parseFIPHeader(body)
	if err != nil {
		a.stats.BadFrames.Add(1)
		return
	}
	a.stats.RxFIP.Add(1)
	switch fh.op {
	case opVN2VN:
		m, err := ParseVN(body)
		if err != nil {
			a.stats.BadFrames.Add(1)
			a.log.Debug("fip rx", "err", err)
			return
		}
		a.mu.Lock()
		a.ctlr.recv(&m, time.Now())
		a.mu.Unlock()
	case opLS:
		m, err := ParseLS(body)
		if err != nil {
			a.stats.BadFrames.Add(1)
			a.log.Debug("fip ls rx", "err", err)
			return
		}
		a.handleLS(h, src, &m)
	}
}

// handleLS takes a FIP-encapsulated ELS request (Linux sends the VN2VN
// point-to-point FLOGI and the LOGO this way): the FC port answers it, and
// Send encapsulates the reply the same way.
func (a *Adapter) handleLS(h fc.Handler, src MAC, m *LSMsg) {
	id := a.upID.Load()
	if m.Reply || id == 0 || !src.unicast() {
		a.stats.Foreign.Add(1)
		return
	}
	f, err := fc.ParseFrame(m.Frame)
	if err != nil || f.DID != id || f.RCtl != fc.RCtlELSReq || f.Type != fc.TypeELS || len(f.Payload) < 4 {
		a.stats.BadFrames.Add(1)
		return
	}
	if m.DType != dtFLOGI && m.DType != dtLOGO {
		a.stats.Foreign.Add(1)
		return
	}
	a.mu.Lock()
	if len(a.pendLS) >= maxPendLS {
		clear(a.pendLS) // peers that never took their replies
	}
	a.pendLS[lsKey{f.SID, f.OXID}] = lsPend{dtype: m.DType, enode: src}
	a.mu.Unlock()
	h.Receive(&f)
}

package fcoe

import (
	"testing"
	"time"
)

// fakeOut records what the claim machine does.
type fakeOut struct {
	t     *testing.T
	sent  []sentVN
	links []linkRec
	gone  []uint32
}

type sentVN struct {
	dst, src MAC
	m        VNMsg
}

type linkRec struct {
	up bool
	id uint32
}

func (o *fakeOut) sendFIP(b []byte) {
	m, err := ParseVN(b[ethHdrLen:])
	if err != nil {
		o.t.Fatalf("claim machine sent a frame it cannot parse: %v", err)
	}
	o.sent = append(o.sent, sentVN{dst: MAC(b[0:6]), src: MAC(b[6:12]), m: m})
}
func (o *fakeOut) linkChange(up bool, id uint32) { o.links = append(o.links, linkRec{up, id}) }
func (o *fakeOut) neighborGone(n *neighbor)      { o.gone = append(o.gone, n.id) }

// take returns and forgets what was sent.
func (o *fakeOut) take() []sentVN {
	s := o.sent
	o.sent = nil
	return s
}

func subs(s []sentVN) []byte {
	var out []byte
	for _, x := range s {
		out = append(out, x.m.Sub)
	}
	return out
}

// upCtlr runs a claim machine (port A) to the up state.
func upCtlr(t *testing.T) (*vnCtlr, *fakeOut, time.Time) {
	t.Helper()
	o := &fakeOut{t: t}
	c := newVNCtlr(macA, wwpnA, wwnnA, 2158, DefaultBeacon, o)
	now := time.Unix(1000, 0)
	c.linkUp(now)
	if c.st != stStart || c.id != 0x000a {
		t.Fatalf("after link up: state %v id %#x", c.st, c.id)
	}
	for i := 0; i < 4; i++ {
		now = c.next
		c.tick(now)
	}
	if c.st != stUp || len(o.links) != 1 || !o.links[0].up || o.links[0].id != 0x0a {
		t.Fatalf("not up: state %v links %+v", c.st, o.links)
	}
	got := subs(o.take())
	want := []byte{SubProbeReq, SubProbeReq, SubClaimNotify, SubBeacon}
	if string(got) != string(want) {
		t.Fatalf("sent %v, want %v", got, want)
	}
	return c, o, now
}

// TestVNClaimSequence checks probe, probe, claim, beacon with libfcoe's
// waits, the sources and destinations of each, and the beacon rhythm.
func TestVNClaimSequence(t *testing.T) {
	o := &fakeOut{t: t}
	c := newVNCtlr(macA, wwpnA, wwnnA, 2158, DefaultBeacon, o)
	t0 := time.Unix(1000, 0)
	c.linkUp(t0)
	if d := c.next.Sub(t0); d < 0 || d >= probeWait {
		t.Fatalf("first probe after %v, want under %v", d, probeWait)
	}
	steps := []struct {
		sub  byte
		wait time.Duration
	}{{SubProbeReq, probeWait}, {SubProbeReq, annWait}, {SubClaimNotify, annWait}, {SubBeacon, annWait}}
	now := c.next
	for i, s := range steps {
		c.tick(now)
		sent := o.take()
		if len(sent) != 1 || sent[0].m.Sub != s.sub || sent[0].dst != AllVN2VNMACs {
			t.Fatalf("step %d: sent %+v", i, sent)
		}
		wantSrc := macA
		if s.sub == SubBeacon {
			wantSrc = VNMAC(0x0a)
		}
		if sent[0].src != wantSrc || sent[0].m.ENode != macA || sent[0].m.PortID != 0x0a || sent[0].m.VNMAC != VNMAC(0x0a) {
			t.Fatalf("step %d: src %s %+v", i, sent[0].src, sent[0].m)
		}
		if d := c.next.Sub(now); d != s.wait {
			t.Fatalf("step %d: next in %v, want %v", i, d, s.wait)
		}
		now = c.next
	}
	if !o.links[0].up {
		t.Fatal("no link up")
	}
	// A tick before the deadline does nothing.
	c.tick(now.Add(-time.Millisecond))
	if len(o.sent) != 0 {
		t.Fatal("early tick sent")
	}
	// The second beacon, then one per interval (plus fuzz).
	c.tick(now)
	if s := o.take(); len(s) != 1 || s[0].m.Sub != SubBeacon {
		t.Fatalf("second beacon: %+v", s)
	}
	if d := c.beaconAt.Sub(now); d < DefaultBeacon || d >= DefaultBeacon+beaconFuzz {
		t.Fatalf("next beacon in %v", d)
	}
}

// TestVNProbeConflicts: a probe for our proposed ID from a greater port
// name moves us to another ID; from a smaller one we defend it; once up
// we always answer.
func TestVNProbeConflicts(t *testing.T) {
	o := &fakeOut{t: t}
	c := newVNCtlr(macA, wwpnA, wwnnA, 2158, DefaultBeacon, o)
	now := time.Unix(1000, 0)
	c.linkUp(now)
	now = c.next
	c.tick(now) // probe 1
	o.take()
	high := &VNMsg{Sub: SubProbeReq, ENode: macB, NodeName: wwnnB, PortName: wwpnB, PortID: 0x0a, VNMAC: VNMAC(0x0a)}
	c.recv(high, now)
	if c.st != stStart || len(o.sent) != 0 {
		t.Fatalf("greater port name probing our ID: state %v sent %v", c.st, subs(o.sent))
	}
	// The new ID is random; probe it.
	now = c.next
	c.tick(now)
	o.take()
	low := &VNMsg{Sub: SubProbeReq, ENode: macB, NodeName: wwnnB, PortName: fcWWN(0x01), PortID: c.id, VNMAC: VNMAC(c.id)}
	c.recv(low, now)
	if s := o.take(); len(s) != 1 || s[0].m.Sub != SubProbeRep || s[0].dst != macB || c.st != stProbe1 {
		t.Fatalf("smaller port name probing our ID: state %v sent %+v", c.st, s)
	}
	// The recorded-address flag makes us give way even to a smaller name.
	low.Flags = flagRecOrP2P
	c.recv(low, now)
	if c.st != stStart {
		t.Fatalf("REC probe: state %v", c.st)
	}
	// A probe reply for our ID while probing restarts too.
	now = c.next
	c.tick(now)
	o.take()
	id := c.id
	c.recv(&VNMsg{Sub: SubProbeRep, ENode: macB, NodeName: wwnnB, PortName: wwpnB, PortID: id}, now)
	if c.st != stStart {
		t.Fatalf("probe reply: state %v", c.st)
	}
	// Probes for other IDs are none of our business.
	c.recv(&VNMsg{Sub: SubProbeReq, ENode: macB, NodeName: wwnnB, PortName: wwpnB, PortID: c.id + 1}, now)
	if c.st != stStart || len(o.sent) != 0 {
		t.Fatal("reacted to a probe for another ID")
	}

	c2, o2, now2 := upCtlr(t)
	c2.recv(&VNMsg{Sub: SubProbeReq, ENode: macB, NodeName: wwnnB, PortName: wwpnB, PortID: c2.id}, now2)
	if s := o2.take(); len(s) != 1 || s[0].m.Sub != SubProbeRep || c2.st != stUp {
		t.Fatalf("up: sent %+v state %v", s, c2.st)
	}
	c2.recv(&VNMsg{Sub: SubProbeRep, ENode: macB, NodeName: wwnnB, PortName: wwpnB, PortID: c2.id}, now2)
	if s := o2.take(); len(s) != 1 || s[0].m.Sub != SubClaimNotify {
		t.Fatalf("probe reply while up: sent %+v", s)
	}
}

func fcWWN(last byte) [8]byte { return [8]byte{0x10, 0, 0, 0, 0, 0, 0, last} }

// TestVNRateLimit: after ten probes the next waits ten seconds.
func TestVNRateLimit(t *testing.T) {
	o := &fakeOut{t: t}
	c := newVNCtlr(macA, wwpnA, wwnnA, 2158, DefaultBeacon, o)
	now := time.Unix(1000, 0)
	c.linkUp(now)
	for i := 0; i < rlimCount; i++ {
		c.restart(now)
	}
	if d := c.next.Sub(now); d != rlimWait {
		t.Fatalf("wait after %d tries: %v", c.tries, d)
	}
	if c.id == 0 || c.id == 0xffff || c.id > 0xffff {
		t.Fatalf("proposed ID %#x", c.id)
	}
}

// TestVNClaims: claims from neighbours are answered and recorded; a claim
// for our ID goes to the greater port name.
func TestVNClaims(t *testing.T) {
	c, o, now := upCtlr(t)
	nb := &VNMsg{Sub: SubClaimNotify, ENode: macB, NodeName: wwnnB, PortName: wwpnB, PortID: 0x0b, VNMAC: VNMAC(0x0b), FCoESize: 1518}
	c.recv(nb, now)
	s := o.take()
	if len(s) != 1 || s[0].m.Sub != SubClaimRep || s[0].dst != macB || s[0].src != macA || s[0].m.FCoESize != 1518 || !s[0].m.Target {
		t.Fatalf("claim response: %+v", s)
	}
	if n := c.nbrs[0x0b]; n == nil || n.port != wwpnB || n.enode != macB || !n.heard.IsZero() {
		t.Fatalf("neighbour %+v", n)
	}
	// Its first beacon: heard, and answered with ours so it logs in now.
	now = now.Add(time.Second)
	c.recv(&VNMsg{Sub: SubBeacon, ENode: macB, NodeName: wwnnB, PortName: wwpnB, PortID: 0x0b}, now)
	if s := o.take(); len(s) != 1 || s[0].m.Sub != SubBeacon || !c.nbrs[0x0b].heard.Equal(now) {
		t.Fatalf("first beacon: sent %+v", s)
	}
	c.recv(&VNMsg{Sub: SubBeacon, ENode: macB, NodeName: wwnnB, PortName: wwpnB, PortID: 0x0b}, now.Add(time.Second))
	if len(o.take()) != 0 {
		t.Fatal("answered a later beacon")
	}
	// A beacon from an unknown port: claim so it learns us.
	c.recv(&VNMsg{Sub: SubBeacon, ENode: MAC{2, 0, 0, 0, 0, 0x0c}, NodeName: wwnnB, PortName: fcWWN(0xc), PortID: 0x0c}, now.Add(2*time.Second))
	if s := o.take(); len(s) != 1 || s[0].m.Sub != SubClaimNotify {
		t.Fatalf("unknown beacon: %+v", s)
	}
	// A claim for our ID from a smaller name: we re-claim and keep it.
	c.recv(&VNMsg{Sub: SubClaimNotify, ENode: macB, NodeName: wwnnB, PortName: fcWWN(1), PortID: c.id}, now)
	if s := o.take(); len(s) != 1 || s[0].m.Sub != SubClaimNotify || c.st != stUp {
		t.Fatalf("smaller claim for our ID: %+v state %v", s, c.st)
	}
	// From a greater name: we give the ID up, and the link goes down.
	c.recv(&VNMsg{Sub: SubClaimNotify, ENode: macB, NodeName: wwnnB, PortName: fc8(0xff), PortID: c.id}, now)
	if c.st != stStart || len(o.links) != 2 || o.links[1].up {
		t.Fatalf("greater claim for our ID: state %v links %+v", c.st, o.links)
	}
	// A recorded-address claim asks everyone to probe.
	c.recv(&VNMsg{Sub: SubClaimNotify, Flags: flagRecOrP2P, ENode: macB, NodeName: wwnnB, PortName: wwpnB, PortID: 0x0b}, now)
	if s := o.take(); len(s) != 1 || s[0].m.Sub != SubProbeReq {
		t.Fatalf("REC claim: %+v", s)
	}
}

func fc8(b byte) [8]byte { return [8]byte{b, b, b, b, b, b, b, b} }

// TestVNNeighbors: aging after 2.5 beacons, replacement at the same ID or
// under the same name, claim responses recorded, link down forgets all.
func TestVNNeighbors(t *testing.T) {
	c, o, now := upCtlr(t)
	c.recv(&VNMsg{Sub: SubClaimRep, ENode: macB, NodeName: wwnnB, PortName: wwpnB, PortID: 0x0b}, now)
	c.recv(&VNMsg{Sub: SubBeacon, ENode: macB, NodeName: wwnnB, PortName: wwpnB, PortID: 0x0b}, now)
	o.take()
	c.tick(now.Add(DefaultBeacon * 2))
	if len(o.gone) != 0 {
		t.Fatal("aged out after two intervals")
	}
	c.tick(now.Add(DefaultBeacon * 5 / 2))
	if len(o.gone) != 1 || o.gone[0] != 0x0b || c.nbrs[0x0b] != nil {
		t.Fatalf("not aged out: gone %v", o.gone)
	}
	// The same port name claiming a new ID replaces the old entry.
	c.recv(&VNMsg{Sub: SubClaimRep, ENode: macB, NodeName: wwnnB, PortName: wwpnB, PortID: 0x0b}, now)
	c.recv(&VNMsg{Sub: SubClaimRep, ENode: macB, NodeName: wwnnB, PortName: wwpnB, PortID: 0x0c}, now)
	if len(o.gone) != 2 || o.gone[1] != 0x0b || c.nbrs[0x0c] == nil || len(c.nbrs) != 1 {
		t.Fatalf("renumbered neighbour: gone %v nbrs %d", o.gone, len(c.nbrs))
	}
	// Another name at the same ID replaces it too.
	c.recv(&VNMsg{Sub: SubClaimRep, ENode: macB, NodeName: wwnnB, PortName: fcWWN(9), PortID: 0x0c}, now)
	if len(o.gone) != 3 || c.nbrs[0x0c].port != fcWWN(9) {
		t.Fatalf("replaced neighbour: gone %v", o.gone)
	}
	// Claim responses outside claim/up are ignored; link down forgets.
	c.linkDown()
	if len(c.nbrs) != 0 || c.st != stLinkWait || o.links[len(o.links)-1].up {
		t.Fatalf("after link down: nbrs %d state %v", len(c.nbrs), c.st)
	}
	c.recv(&VNMsg{Sub: SubClaimRep, ENode: macB, NodeName: wwnnB, PortName: wwpnB, PortID: 0x0b}, now)
	if len(c.nbrs) != 0 {
		t.Fatal("claim response recorded while down")
	}
	// Link up again reuses the ID.
	c.linkUp(now)
	if c.id != 0x0a || c.st != stStart {
		t.Fatalf("relink: id %#x state %v", c.id, c.st)
	}
	// The table is bounded.
	c2, _, now2 := upCtlr(t)
	for i := 0; i < maxNeighbors+10; i++ {
		c2.recv(&VNMsg{Sub: SubClaimRep, ENode: macB, NodeName: wwnnB, PortName: fcWWN(byte(i)), PortID: uint32(0x100 + i)}, now2)
	}
	if len(c2.nbrs) > maxNeighbors {
		t.Fatalf("%d neighbours", len(c2.nbrs))
	}
}

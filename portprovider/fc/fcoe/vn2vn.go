package fcoe

import (
	"math/rand/v2"
	"time"

	"github.com/costar-project/costar/portprovider/fc"
)

// The VN2VN address claim (FC-BB-6 7.9), timed as Linux libfcoe times it
// so the kernel's initiator and this target agree: probe twice for a
// proposed N_Port ID, claim it, beacon while up, and drop neighbours whose
// beacons stop.

// Timing of the claim protocol (FC-BB-6 table 46 and libfcoe).
const (
	probeWait  = 100 * time.Millisecond // random delay before the first probe
	annWait    = 400 * time.Millisecond // probe-to-claim and claim-to-up wait
	rlimCount  = 10                     // probes before rate limiting
	rlimWait   = 10 * time.Second       // wait between probes once rate limited
	beaconFuzz = 100 * time.Millisecond
	// DefaultBeacon is the beacon interval; a neighbour silent for 2.5
	// beacon intervals is gone (libfcoe ages its rports this way).
	DefaultBeacon = 8 * time.Second
	maxNeighbors  = 256
)

// vnState is where the claim protocol is.
type vnState int

const (
	stLinkWait vnState = iota // link down
	stStart                   // waiting to probe a proposed ID
	stProbe1
	stProbe2
	stClaim // claimed, waiting for objections
	stUp
)

var stateNames = [...]string{"link-wait", "start", "probe1", "probe2", "claim", "up"}

func (s vnState) String() string { return stateNames[s] }

// neighbor is a remote VN_Port learned from a claim.
type neighbor struct {
	enode      MAC
	id         uint32
	port, node fc.WWN
	fcoeSize   uint16
	// heard is when its last beacon came; zero until the first one (a
	// neighbour known only from a claim is not aged, as in libfcoe).
	heard time.Time
}

// vnOut is what the claim machine does to the world: send a frame, and
// tell the adapter about the link and about neighbours that went away.
type vnOut interface {
	sendFIP(frame []byte)
	linkChange(up bool, id uint32)
	neighborGone(n *neighbor)
}

// vnCtlr is the VN2VN claim state machine of one VN_Port. It is not safe
// for concurrent use: the adapter serialises calls; now is passed in so
// tests drive time.
type vnCtlr struct {
	enode      MAC
	port, node fc.WWN
	fcoeSize   uint16
	beacon     time.Duration
	out        vnOut
	rng        *rand.Rand

	st       vnState
	id       uint32
	tries    int
	next     time.Time // when tick has work
	solTime  time.Time // last claim notification
	beaconAt time.Time
	nbrs     map[uint32]*neighbor
}

func newVNCtlr(enode MAC, port, node fc.WWN, fcoeSize uint16, beacon time.Duration, out vnOut) *vnCtlr {
	seed := uint64(0)
	for _, b := range port {
		seed = seed<<8 | uint64(b)
	}
	return &vnCtlr{enode: enode, port: port, node: node, fcoeSize: fcoeSize, beacon: beacon, out: out,
		rng: rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano()))), nbrs: map[uint32]*neighbor{}}
}

// msg builds our VN2VN message of subcode sub.
func (c *vnCtlr) msg(sub byte) *VNMsg {
	return &VNMsg{Sub: sub, ENode: c.enode, NodeName: c.node, VNMAC: VNMAC(c.id), PortID: c.id, PortName: c.port,
		Target: true, FCoESize: c.fcoeSize}
}

func (c *vnCtlr) send(dst MAC, sub byte, fcoeSize uint16) {
	m := c.msg(sub)
	if fcoeSize != 0 {
		m.FCoESize = fcoeSize
	}
	src := c.enode
	if sub == SubBeacon {
		src = m.VNMAC
	}
	c.out.sendFIP(AppendVN(nil, dst, src, m))
}

func (c *vnCtlr) sendClaim(now time.Time) {
	c.send(AllVN2VNMACs, SubClaimNotify, 0)
	c.solTime = now
}

// linkUp starts claiming an address, the one used before if any.
func (c *vnCtlr) linkUp(now time.Time) {
	if c.st != stLinkWait {
		return
	}
	c.tries = 0
	c.restart(now)
}

// linkDown stops everything; neighbours are forgotten (the FC port logs
// every remote port out on the link event).
func (c *vnCtlr) linkDown() {
	if c.st == stUp {
		c.out.linkChange(false, 0)
	}
	c.st = stLinkWait
	c.nbrs = map[uint32]*neighbor{}
}

// restart proposes an N_Port ID and probes for it: the last one on the
// first try after link up, else the low bits of the port name, then random
// ones (domain 0, never 0 or 0xffff), rate limited after ten tries.
func (c *vnCtlr) restart(now time.Time) {
	if c.st == stUp {
		c.out.linkChange(false, 0)
	}
	id := c.id
	if c.tries > 0 {
		id = c.rng.Uint32() & 0xffff
	} else if id == 0 {
		id = uint32(c.port[6])<<8 | uint32(c.port[7])
	}
	if id == 0 || id == 0xffff {
		id = 1
	}
	c.id = id
	wait := rlimWait
	if c.tries < rlimCount {
		c.tries++
		wait = time.Duration(c.rng.Int64N(int64(probeWait)))
	}
	c.st = stStart
	c.next = now.Add(wait)
}

// tick does the timed work; call it at or after c.next.
func (c *vnCtlr) tick(now time.Time) {
	if now.Before(c.next) {
		return
	}
	switch c.st {
	case stLinkWait:
		c.next = now.Add(time.Hour)
	case stStart:
		c.st = stProbe1
		c.send(AllVN2VNMACs, SubProbeReq, 0)
		c.next = now.Add(probeWait)
	case stProbe1:
		c.st = stProbe2
		c.send(AllVN2VNMACs, SubProbeReq, 0)
		c.next = now.Add(annWait)
	case stProbe2:
		c.st = stClaim
		c.sendClaim(now)
		c.next = now.Add(annWait)
	case stClaim:
		c.st = stUp
		c.send(AllVN2VNMACs, SubBeacon, 0)
		// A second beacon soon, then every beacon interval.
		c.beaconAt = now.Add(annWait)
		c.next = c.beaconAt
		c.out.linkChange(true, c.id)
	case stUp:
		c.age(now)
		if !now.Before(c.beaconAt) {
			c.send(AllVN2VNMACs, SubBeacon, 0)
			c.beaconAt = now.Add(c.beacon + time.Duration(c.rng.Int64N(int64(beaconFuzz))))
		}
		c.next = c.beaconAt
		if t := now.Add(time.Second); t.Before(c.next) {
			c.next = t // aging granularity
		}
	}
}

// age forgets neighbours silent for 2.5 beacon intervals.
func (c *vnCtlr) age(now time.Time) {
	limit := c.beacon * 5 / 2
	for id, n := range c.nbrs {
		if !n.heard.IsZero() && now.Sub(n.heard) >= limit {
			delete(c.nbrs, id)
			c.out.neighborGone(n)
		}
	}
}

// recv handles one VN2VN message from another port.
func (c *vnCtlr) recv(m *VNMsg, now time.Time) {
	if m.PortName == c.port && m.ENode == c.enode {
		return // our own frame
	}
	rec := m.Flags&flagRecOrP2P != 0
	switch m.Sub {
	case SubProbeReq:
		if m.PortID != c.id {
			return
		}
		switch c.st {
		case stClaim, stUp:
			c.send(m.ENode, SubProbeRep, 0)
		case stProbe1, stProbe2:
			// Defend a proposed ID only with the greater port name.
			if wwnLess(m.PortName, c.port) && !rec {
				c.send(m.ENode, SubProbeRep, 0)
				return
			}
			c.restart(now)
		case stStart:
			c.restart(now)
		}
	case SubProbeRep:
		if m.PortID != c.id {
			return
		}
		switch c.st {
		case stStart, stProbe1, stProbe2, stClaim:
			c.restart(now)
		case stUp:
			c.sendClaim(now)
		}
	case SubClaimNotify:
		if rec {
			c.send(AllVN2VNMACs, SubProbeReq, 0)
			return
		}
		switch c.st {
		case stStart, stProbe1, stProbe2:
			if m.PortID == c.id {
				c.restart(now)
			}
		case stClaim, stUp:
			if m.PortID == c.id {
				// The greater port name keeps a contested ID.
				if wwnLess(c.port, m.PortName) {
					c.restart(now)
				} else {
					c.sendClaim(now)
				}
				return
			}
			size := c.fcoeSize
			if m.FCoESize != 0 && m.FCoESize < size {
				size = m.FCoESize
			}
			c.send(m.ENode, SubClaimRep, size)
			c.add(m)
		}
	case SubClaimRep:
		if c.st == stClaim || c.st == stUp {
			c.add(m)
		}
	case SubBeacon:
		if rec {
			c.send(AllVN2VNMACs, SubProbeReq, 0)
			return
		}
		if n := c.nbrs[m.PortID]; n != nil {
			if n.port == m.PortName && n.node == m.NodeName {
				first := n.heard.IsZero()
				n.heard = now
				if first && c.st == stUp {
					// Linux logs in to a neighbour on the first beacon
					// it hears after their claims; answer its first
					// beacon with ours rather than make it wait for the
					// next interval.
					c.send(AllVN2VNMACs, SubBeacon, 0)
				}
			}
			return
		}
		if c.st == stUp && now.Sub(c.solTime) > annWait {
			c.sendClaim(now) // a new neighbour: claim so it learns us
		}
	}
}

// add records the neighbour of a claim; one it replaces (same ID, other
// name, or the same name at another ID) is gone.
func (c *vnCtlr) add(m *VNMsg) {
	if m.PortID == c.id || m.PortID == 0 {
		return
	}
	if old := c.nbrs[m.PortID]; old != nil && (old.port != m.PortName || old.node != m.NodeName) {
		delete(c.nbrs, m.PortID)
		c.out.neighborGone(old)
	}
	for id, n := range c.nbrs {
		if n.port == m.PortName && id != m.PortID {
			delete(c.nbrs, id)
			c.out.neighborGone(n)
		}
	}
	if n := c.nbrs[m.PortID]; n != nil {
		n.enode, n.fcoeSize = m.ENode, m.FCoESize
		return
	}
	if len(c.nbrs) >= maxNeighbors {
		return
	}
	c.nbrs[m.PortID] = &neighbor{enode: m.ENode, id: m.PortID, port: m.PortName, node: m.NodeName, fcoeSize: m.FCoESize}
}

func wwnLess(a, b fc.WWN) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

package lu

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"

	"github.com/costar-project/costar/stmf"
)

// DefaultOUI is the IEEE company id COMSTAR puts in generated GUIDs when no
// other is configured (Sun Microsystems), giving GUIDs that start 600144F0.
const DefaultOUI = 0x00144F

// GUIDGenerator makes COMSTAR-layout LU names (NAA IEEE Registered
// Extended, type 6):
//
//	byte 0..3   0x6, 24-bit company id (OUI), 4 zero bits
//	byte 4..9   host identity (a MAC, or a 4-byte host id then 0000)
//	byte 10..13 seconds since the epoch, big-endian
//	byte 14..15 counter, big-endian
//
// Next never returns the same GUID twice from one generator, even for many
// calls within one second or when the clock steps back. The counter starts
// each second at a random value rather than 0: COMSTAR had one generator
// per host (in the kernel), but two stmfd processes on one host (or a
// daemon restarted within a second) would otherwise mint the same GUID,
// which ESXi takes for two paths to one device. The zero value is usable
// (OUI 0 means DefaultOUI).
type GUIDGenerator struct {
	OUI    uint32  // 24-bit IEEE company id; 0 = DefaultOUI
	HostID [6]byte // host identity bytes

	mu      sync.Mutex
	used    bool
	lastSec uint32
	count   uint16
	start   uint16 // the counter's first value in lastSec
}

// randomCounter is a counter start that other processes are unlikely to
// pick in the same second.
func randomCounter() uint16 {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return uint16(time.Now().UnixNano()) // crypto/rand does not fail on Linux
	}
	return binary.BigEndian.Uint16(b[:])
}

// HostIDFrom32 returns the host part COMSTAR uses for a 4-byte host id: the
// id big-endian followed by two zero bytes.
func HostIDFrom32(id uint32) [6]byte {
	var h [6]byte
	binary.BigEndian.PutUint32(h[:4], id)
	return h
}

// Next returns a new GUID stamped with now.
func (g *GUIDGenerator) Next(now time.Time) stmf.GUID {
	sec := uint32(now.Unix())
	g.mu.Lock()
	oui := g.OUI & 0xFFFFFF
	if oui == 0 {
		oui = DefaultOUI
	}
	host := g.HostID
	switch {
	case !g.used || sec > g.lastSec:
		g.used, g.lastSec = true, sec
		g.start = randomCounter()
		g.count = g.start
	default: // same second, or the clock went back: keep counting
		g.count++
		if g.count == g.start {
			// 65536 GUIDs in one "second": borrow the next one
			g.lastSec++
			g.start = randomCounter()
			g.count = g.start
		}
	}
	sec, cnt := g.lastSec, g.count
	g.mu.Unlock()

	var id stmf.GUID
	id[0] = 0x60 | byte(oui>>20)&0x0F
	id[1] = byte(oui >> 12)
	id[2] = byte(oui >> 4)
	id[3] = byte(oui&0x0F) << 4
	copy(id[4:10], host[:])
	binary.BigEndian.PutUint32(id[10:14], sec)
	binary.BigEndian.PutUint16(id[14:16], cnt)
	return id
}

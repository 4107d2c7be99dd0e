package fcoe

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// frameConn moves whole Ethernet frames of one ethertype on one interface.
// Read blocks until a frame arrives or Close; Write sends one frame.
type frameConn interface {
	Read(b []byte) (int, error)
	Write(b []byte) (int, error)
	Close() error
	// member joins (or leaves) a multicast group or a secondary unicast
	// address so the interface's filter lets its frames in.
	member(mac MAC, unicast, join bool) error
	// drops returns the frames the kernel dropped for a full receive
	// buffer since the last call.
	drops() uint64
}

// Socket buffers: a write burst of many exchanges arrives at once (16
// commands of 128 KiB are 2 MiB of FCP_DATA), and a frame the socket drops
// stalls its exchange until the initiator aborts it, 30 s later. Setting
// them beyond the sysctl limits needs CAP_NET_ADMIN, which opening a packet
// socket needs anyway.
const (
	rcvBuf = 32 << 20
	sndBuf = 4 << 20
)

// packetConn is an AF_PACKET socket bound to one ethertype on one
// interface. A protocol-bound packet socket sees only received frames (our
// own transmissions go to ETH_P_ALL taps only). The descriptor is
// non-blocking and wrapped in an os.File so reads wait in the runtime
// poller and Close wakes them.
type packetConn struct {
	f       *os.File
	ifindex int
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func openPacket(ifname string, ifindex int, etype uint16) (*packetConn, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(etype)))
	if err != nil {
		return nil, fmt.Errorf("fcoe: packet socket for ethertype %#04x: %w", etype, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(etype), Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("fcoe: bind packet socket to %s: %w", ifname, err)
	}
	for _, o := range []struct{ force, plain, n int }{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, rcvBuf}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, sndBuf}} {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, o.force, o.n) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, o.plain, o.n) // capped by the sysctl limit
		}
	}
	return &packetConn{f: os.NewFile(uintptr(fd), fmt.Sprintf("fcoe-%s-%04x", ifname, etype)), ifindex: ifindex}, nil
}

func (c *packetConn) drops() uint64 {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return 0
	}
	var n uint64
	_ = rc.Control(func(fd uintptr) {
		if st, err := unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			n = uint64(st.Drops)
		}
	})
	return n
}

func (c *packetConn) Read(b []byte) (int, error)  { return c.f.Read(b) }
func (c *packetConn) Write(b []byte) (int, error) { return c.f.Write(b) }
func (c *packetConn) Close() error                { return c.f.Close() }

func (c *packetConn) member(mac MAC, unicast, join bool) error {
	mr := unix.PacketMreq{Ifindex: int32(c.ifindex), Type: unix.PACKET_MR_MULTICAST, Alen: 6}
	if unicast {
		mr.Type = unix.PACKET_MR_UNICAST
	}
	copy(mr.Address[:], mac[:])
	opt := unix.PACKET_ADD_MEMBERSHIP
	if !join {
		opt = unix.PACKET_DROP_MEMBERSHIP
	}
	rc, err := c.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("fcoe: membership %s: %w", mac, err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptPacketMreq(int(fd), unix.SOL_PACKET, opt, &mr) }); err != nil {
		return fmt.Errorf("fcoe: membership %s: %w", mac, err)
	}
	if serr != nil {
		return fmt.Errorf("fcoe: membership %s: %w", mac, serr)
	}
	return nil
}

// sysfsCarrier reads the interface's link state: carrier present and the
// operational state up (or unknown, which drivers without operstate
// support report while working).
func sysfsCarrier(ifname string) bool {
	c, err := os.ReadFile("/sys/class/net/" + ifname + "/carrier")
	if err != nil || strings.TrimSpace(string(c)) != "1" {
		return false
	}
	o, err := os.ReadFile("/sys/class/net/" + ifname + "/operstate")
	if err != nil {
		return false
	}
	s := strings.TrimSpace(string(o))
	return s == "up" || s == "unknown"
}

// sysfsSpeed reads the link speed in Mbit/s, 0 when the driver has none.
func sysfsSpeed(ifname string) int {
	b, err := os.ReadFile("/sys/class/net/" + ifname + "/speed")
	if err != nil {
		return 0
	}
	var n int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &n); err != nil || n < 0 {
		return 0
	}
	return n
}

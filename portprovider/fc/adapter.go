package fc

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
)

// WWN is an 8-byte Fibre Channel world wide name (port or node name).
type WWN [8]byte

// String is the name as 16 lower-case hex digits.
func (w WWN) String() string { return hex.EncodeToString(w[:]) }

// TargetName is COMSTAR's name for an FC port: "wwn.<16 hex>", upper case
// as stmfadm prints it.
func (w WWN) TargetName() string { return "wwn." + strings.ToUpper(w.String()) }

// ParseWWN reads a WWN from 16 hex digits, optionally with a "wwn." prefix
// and colons ("21:00:00:1b:…").
func ParseWWN(s string) (WWN, error) {
	var w WWN
	t := strings.ReplaceAll(s, ":", "")
	if len(t) > 4 && strings.EqualFold(t[:4], "wwn.") {
		t = t[4:]
	}
	if len(t) != 16 {
		return w, fmt.Errorf("fc: %q is not a WWN (16 hex digits)", s)
	}
	if _, err := hex.Decode(w[:], []byte(t)); err != nil {
		return w, fmt.Errorf("fc: %q is not a WWN: %w", s, err)
	}
	return w, nil
}

// Adapter is what an HBA driver implements: it moves frames and reports
// link events. Everything above the frame — remote port logins, FCP,
// exchanges, aborts — belongs to this package. See doc.go for the
// contract (threading, buffer ownership).
type Adapter interface {
	// Info describes the adapter's local N_Port. It does not change while
	// the adapter runs.
	Info() AdapterInfo
	// Start begins delivering received frames and link events to h; it
	// returns once the adapter runs (the link may come up later).
	Start(ctx context.Context, h Handler) error
	// Send transmits one frame. It may be called from many goroutines at
	// once and must not block on the remote port: queue or fail. f and
	// its payload are only borrowed for the call.
	Send(f *Frame) error
	// Stop takes the link down and stops calling the handler; after it
	// returns no Handler method runs.
	Stop(ctx context.Context) error
}

// AdapterInfo is the identity and limits of an adapter's N_Port.
type AdapterInfo struct {
	Driver     string // driver name, shown as the provider ("qlt", "fcoe", "loopback")
	PortName   WWN
	NodeName   WWN
	MaxPayload int // largest frame payload the adapter sends and receives (≤ MaxPayload)
}

// Handler receives what an adapter reports. The adapter calls it from one
// goroutine at a time, in arrival order.
type Handler interface {
	// Receive handles one frame. The frame is borrowed for the call: the
	// handler copies what it keeps, and the adapter may reuse the buffer
	// once Receive returns. Receive does not block on I/O.
	Receive(f *Frame)
	// LinkEvent reports a change of link state.
	LinkEvent(ev LinkEvent)
}

// LinkEvent is a link state change as the driver sees it once any fabric
// login or address acquisition (FLOGI, FIP VN2VN claim) it does is done.
type LinkEvent struct {
	Up       bool
	PortID   uint32 // our N_Port ID (24 bits) while up
	SpeedMbs int    // current speed in Mbit/s, 0 when unknown
	// Topology is shown to the administrator ("point-to-point", "fabric").
	Topology string
}

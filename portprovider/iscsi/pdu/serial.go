package pdu

// Serial number arithmetic for 32-bit sequence numbers (RFC 1982, as
// RFC 7143 3.2.2.1 requires for CmdSN, StatSN, DataSN and R2TSN).

// SerialLT reports a < b.
func SerialLT(a, b uint32) bool { return a != b && int32(a-b) < 0 }

// SerialLE reports a <= b.
func SerialLE(a, b uint32) bool { return a == b || int32(a-b) < 0 }

// SerialGT reports a > b.
func SerialGT(a, b uint32) bool { return a != b && int32(a-b) > 0 }

// SerialInWindow reports lo <= x <= hi.
func SerialInWindow(x, lo, hi uint32) bool { return SerialLE(lo, x) && SerialLE(x, hi) }

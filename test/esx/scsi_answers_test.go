package esx

import (
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/test/harness"
)

// TestSCSIAnswersOverTheWire checks, through a real session to stmfd, the
// answers an independent client disagreed with: MULTIP follows the
// number of target ports the LU is reachable through, REPORT SUPPORTED
// OPERATION CODES lists REPORT TARGET PORT GROUPS, and 3PC=1 comes with
// the Third-party Copy VPD page.
func TestSCSIAnswersOverTheWire(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	d, s := oneLU(ctx, t)
	std := func() []byte {
		t.Helper()
		return harness.Good(ctx, t, s, 0, initiator.Inquiry(false, 0, 96), nil, 96).Data
	}
	if b := std(); b[6]&0x10 != 0 || b[5]&0x08 == 0 {
		t.Fatalf("one target port: byte 5 %#x, byte 6 %#x; want 3PC=1, MULTIP=0", b[5], b[6])
	}
	d.OK("itadm", "create-target", "-n", tgtGrouped) // a second target port reaching the LU
	if b := std(); b[6]&0x10 == 0 {
		t.Fatalf("two target ports: byte 6 %#x, want MULTIP=1", b[6])
	}

	// RSOC, one command: MAINTENANCE IN / REPORT TARGET PORT GROUPS.
	rsoc := []byte{0xa3, 0x0c, 0x02, 0xa3, 0x00, 0x0a, 0, 0, 0x01, 0x00, 0, 0}
	r := harness.Good(ctx, t, s, 0, rsoc, nil, 256)
	if len(r.Data) < 4 || r.Data[1]&0x07 != 0x03 || binary.BigEndian.Uint16(r.Data[2:4]) != 12 {
		t.Errorf("RSOC REPORT TARGET PORT GROUPS: % x, want supported with 12 bytes of usage data", r.Data)
	}

	// VPD 0x8F is listed and holds the Supported Commands descriptor.
	sup := harness.Good(ctx, t, s, 0, initiator.Inquiry(true, 0x00, 255), nil, 255).Data
	if !slices.Contains(sup[4:], 0x8f) {
		t.Fatalf("Supported VPD Pages % x lack 0x8F", sup[4:])
	}
	p := harness.Good(ctx, t, s, 0, initiator.Inquiry(true, 0x8f, 1024), nil, 1024).Data
	if len(p) < 8 || p[1] != 0x8f || binary.BigEndian.Uint16(p[4:6]) != 0x0001 {
		t.Errorf("VPD 0x8F % x", p)
	}
}

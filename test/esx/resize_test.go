package esx

import (
	"encoding/binary"
	"strconv"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/initiator"
)

// TestOnlineGrowRaisesCapacityChanged: modify-lu -s on a live LU reaches a
// logged-in session as CAPACITY DATA HAS CHANGED (2Ah/09h) on that LU only,
// READ CAPACITY then reports the new size, and reading the capacity never
// raises the condition again (ESXi grows VMFS from this).
func TestOnlineGrowRaisesCapacityChanged(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	dir := tempDir(t)
	d := startDaemon(ctx, t, dir+"/state")
	grow := d.createLU("-s", "16M", dir+"/grow.img")
	other := d.createLU("-s", "16M", dir+"/other.img")
	d.ok("stmfadm", "add-view", "-n", "0", grow)
	d.ok("stmfadm", "add-view", "-n", "1", other)
	d.ok("itadm", "create-target", "-n", tgtDefault)
	s := login(ctx, t, d.portal, tgtDefault, hostA, 1)
	ready(ctx, t, s, 0)
	ready(ctx, t, s, 1)

	blocks := func() uint64 {
		r := good(ctx, t, s, 0, initiator.ReadCapacity16(), nil, 32)
		return binary.BigEndian.Uint64(r.Data[0:8]) + 1
	}
	if n := blocks(); n != 16<<20/512 {
		t.Fatalf("capacity before: %d blocks", n)
	}
	d.ok("stmfadm", "modify-lu", "-s", strconv.Itoa(48<<20), grow)

	if r := do(ctx, t, s, 0, initiator.TestUnitReady(), nil, 0); !r.Is(initiator.KeyUnitAttention, 0x2a, 0x09) {
		t.Fatalf("first command after the resize: %v, want UNIT ATTENTION 2Ah/09h", r)
	}
	if n := blocks(); n != 48<<20/512 {
		t.Fatalf("capacity after: %d blocks, want %d", n, 48<<20/512)
	}
	blocks() // READ CAPACITY must not raise anything by itself
	good(ctx, t, s, 0, initiator.TestUnitReady(), nil, 0)
	// The other LU saw no change and gets no unit attention.
	good(ctx, t, s, 1, initiator.TestUnitReady(), nil, 0)
}

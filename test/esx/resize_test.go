package esx

import (
	"encoding/binary"
	"strconv"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/test/harness"
)

// TestOnlineGrowRaisesCapacityChanged: modify-lu -s on a live LU reaches a
// logged-in session as CAPACITY DATA HAS CHANGED (2Ah/09h) on that LU only,
// READ CAPACITY then reports the new size, and reading the capacity never
// raises the condition again (ESXi grows VMFS from this).
func TestOnlineGrowRaisesCapacityChanged(t *testing.T) {
	ctx := harness.Context(t, 2*time.Minute)
	dir := harness.TempDir(t, "esx")
	d := suite.Start(ctx, t, dir+"/state", harness.Options{})
	grow := d.CreateLU("-s", "16M", dir+"/grow.img")
	other := d.CreateLU("-s", "16M", dir+"/other.img")
	d.OK("stmfadm", "add-view", "-n", "0", grow)
	d.OK("stmfadm", "add-view", "-n", "1", other)
	d.OK("itadm", "create-target", "-n", tgtDefault)
	s := harness.Login(ctx, t, d.Portal, tgtDefault, hostA, 1)
	harness.Ready(ctx, t, s, 0)
	harness.Ready(ctx, t, s, 1)

	blocks := func() uint64 {
		r := harness.Good(ctx, t, s, 0, initiator.ReadCapacity16(), nil, 32)
		return binary.BigEndian.Uint64(r.Data[0:8]) + 1
	}
	if n := blocks(); n != 16<<20/512 {
		t.Fatalf("capacity before: %d blocks", n)
	}
	d.OK("stmfadm", "modify-lu", "-s", strconv.Itoa(48<<20), grow)

	if r := harness.Do(ctx, t, s, 0, initiator.TestUnitReady(), nil, 0); !r.Is(initiator.KeyUnitAttention, 0x2a, 0x09) {
		t.Fatalf("first command after the resize: %v, want UNIT ATTENTION 2Ah/09h", r)
	}
	if n := blocks(); n != 48<<20/512 {
		t.Fatalf("capacity after: %d blocks, want %d", n, 48<<20/512)
	}
	blocks() // READ CAPACITY must not raise anything by itself
	harness.Good(ctx, t, s, 0, initiator.TestUnitReady(), nil, 0)
	// The other LU saw no change and gets no unit attention.
	harness.Good(ctx, t, s, 1, initiator.TestUnitReady(), nil, 0)
}

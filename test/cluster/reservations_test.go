package cluster

import (
	"context"
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/test/harness"
)

// prOut is PERSISTENT RESERVE OUT with a basic parameter list, past any
// unit attentions.
func prOut(ctx context.Context, t *testing.T, s *initiator.Session, sa, typ byte, key, sakey uint64) initiator.Response {
	t.Helper()
	cdb := []byte{0x5f, sa, typ, 0, 0, 0, 0, 0, 24, 0}
	pl := make([]byte, 24)
	binary.BigEndian.PutUint64(pl[0:], key)
	binary.BigEndian.PutUint64(pl[8:], sakey)
	return cmd(ctx, t, s, cdb, pl, 0)
}

// prIn is PERSISTENT RESERVE IN (READ KEYS 0, READ RESERVATION 1).
func prIn(ctx context.Context, t *testing.T, s *initiator.Session, sa byte) []byte {
	t.Helper()
	r := cmd(ctx, t, s, []byte{0x5e, sa, 0, 0, 0, 0, 0, 4, 0, 0}, nil, 1024)
	if r.Status != initiator.StatusGood || len(r.Data) < 8 {
		t.Fatalf("PERSISTENT RESERVE IN %d: %v", sa, r)
	}
	return r.Data
}

func keysOf(d []byte) []uint64 {
	var out []uint64
	for p := d[8:min(len(d), 8+int(binary.BigEndian.Uint32(d[4:8])))]; len(p) >= 8; p = p[8:] {
		out = append(out, binary.BigEndian.Uint64(p))
	}
	slices.Sort(out)
	return out
}

// Two stmfd nodes in cluster mode: X registers and reserves (Write
// Exclusive) through the owner, Y registers through the standby node
// (PERSISTENT RESERVE OUT is allowed in standby); after the owner's
// SIGKILL the node taking over still has both registrations and X's
// reservation (Y's write conflicts), and Y's PREEMPT there lets it write.
func TestClusterReservationsSurviveFailover(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	n := startTwoNodes(ctx, t, 1, 16<<20)
	da, db, guid := n.a, n.b, n.guid
	portalB := n.targetOnB(t)
	sessions := map[string]*initiator.Session{
		"a": harness.Login(ctx, t, da.Portal, iqnA, testInit, 3),
		"b": harness.Login(ctx, t, portalB, iqnB, testInit, 4),
	}
	daemons := map[string]*harness.Daemon{"a": da, "b": db}
	own := ownerOf(t, da, guid, "")
	otherName := map[string]string{"a": "b", "b": "a"}[own.Owner]
	x, y := sessions[own.Owner], sessions[otherName]
	const kx, ky, writeExclusive = 0x1111, 0x2222, 0x1

	if r := prOut(ctx, t, x, 0, 0, 0, kx); r.Status != initiator.StatusGood {
		t.Fatalf("REGISTER X through the owner: %v", r)
	}
	if r := prOut(ctx, t, x, 1, writeExclusive, kx, 0); r.Status != initiator.StatusGood {
		t.Fatalf("RESERVE X through the owner: %v", r)
	}
	if r := prOut(ctx, t, y, 0, 0, 0, ky); r.Status != initiator.StatusGood {
		t.Fatalf("REGISTER Y through the standby node: %v", r)
	}
	waitFor(t, "both keys through both nodes", func() bool {
		return slices.Equal(keysOf(prIn(ctx, t, x, 0)), []uint64{kx, ky}) && slices.Equal(keysOf(prIn(ctx, t, y, 0)), []uint64{kx, ky})
	})

	killed := time.Now()
	daemons[own.Owner].Kill()
	for end := killed.Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := cmd(ctx, t, y, initiator.Write16(40, 1), pattern(9), 0)
		if r.Status == initiator.StatusReservationConflict {
			break
		}
		if !isStandby(r) {
			t.Fatalf("WRITE from Y during the takeover: %v, want standby, then RESERVATION CONFLICT", r)
		}
		if time.Now().After(end) {
			t.Fatal("no takeover within 30s of the owner's SIGKILL")
		}
	}
	t.Logf("takeover with the reservation in force %v after the SIGKILL", time.Since(killed).Round(time.Millisecond))
	if k := keysOf(prIn(ctx, t, y, 0)); !slices.Equal(k, []uint64{kx, ky}) {
		t.Fatalf("keys after the failover: %x", k)
	}
	if d := prIn(ctx, t, y, 1); len(d) < 24 || binary.BigEndian.Uint64(d[8:16]) != kx || d[21]&0x0f != writeExclusive {
		t.Fatalf("READ RESERVATION after the failover: % x, want X's Write Exclusive", d)
	}
	if r := prOut(ctx, t, y, 4, writeExclusive, ky, kx); r.Status != initiator.StatusGood { // PREEMPT
		t.Fatalf("PREEMPT X through the new owner: %v", r)
	}
	if r := cmd(ctx, t, y, initiator.Write16(40, 1), pattern(9), 0); r.Status != initiator.StatusGood {
		t.Fatalf("WRITE from Y holding the reservation: %v", r)
	}
}

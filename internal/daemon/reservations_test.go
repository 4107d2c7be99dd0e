package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/cluster"
	"github.com/costar-project/costar/internal/cluster/clustertest"
	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/test/harness"
)

// resvDaemon starts a daemon whose LUs replicate their reservations
// through j, with an iSCSI portal on loopback.
func resvDaemon(ctx context.Context, t *testing.T, j *cluster.Reservations) *Daemon {
	t.Helper()
	d, err := New(testConfig(t), quietLog(), WithReservationJournal(j))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	return d
}

// TestReservationsAcrossDaemons: two daemons serve one backing file, each
// replicating through the same etcd. Initiator X reserves through daemon
// A over iSCSI; daemon B refuses Y's write with RESERVATION CONFLICT and
// reports X's key; Y's PREEMPT through B reaches X's session on A as
// REGISTRATIONS PREEMPTED, and A then refuses X's write.
func TestReservationsAcrossDaemons(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	j := cluster.NewReservationJournal(clustertest.StartClient(t), "", slog.New(slog.DiscardHandler))
	file := filepath.Join(t.TempDir(), "shared.img")
	const targetA, targetB = "iqn.2026-12.org.costar:node-a", "iqn.2026-12.org.costar:node-b"

	da := resvDaemon(ctx, t, j)
	l, err := da.Manager().CreateLU(ctx, api.CreateLURequest{DataFile: file, Size: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	db := resvDaemon(ctx, t, j)
	if _, err := db.Manager().ImportLU(ctx, api.ImportLURequest{File: file}); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		d      *Daemon
		target string
	}{{da, targetA}, {db, targetB}} {
		if _, err := x.d.Manager().AddView(ctx, api.AddViewRequest{GUID: l.GUID, LUN: ptr(0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := x.d.Manager().CreateTarget(ctx, api.TargetRequest{Name: x.target}); err != nil {
			t.Fatal(err)
		}
	}
	xs := harness.Login(ctx, t, da.Addrs()[0], targetA, "iqn.2026-12.org.costar:x", 1)
	ys := harness.Login(ctx, t, db.Addrs()[0], targetB, "iqn.2026-12.org.costar:y", 2)
	harness.Ready(ctx, t, xs, 0)
	harness.Ready(ctx, t, ys, 0)
	const keyX, keyY, writeExclusive = 0xa1, 0xb2, 0x1
	write := func(s *initiator.Session) initiator.Response {
		return harness.Do(ctx, t, s, 0, initiator.Write16(0, 1), make([]byte, 512), 0)
	}

	if r := harness.PROut(ctx, t, xs, 0, harness.PRRegister, 0, 0, keyX, false); r.Status != initiator.StatusGood {
		t.Fatalf("REGISTER through A: %v", r)
	}
	if r := harness.PROut(ctx, t, xs, 0, harness.PRReserve, writeExclusive, keyX, 0, false); r.Status != initiator.StatusGood {
		t.Fatalf("RESERVE through A: %v", r)
	}
	harness.Good(ctx, t, xs, 0, initiator.Write16(0, 1), make([]byte, 512), 0)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r := write(ys)
		if r.Status == initiator.StatusReservationConflict {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("WRITE through B 5 s after the reservation on A: %v, want RESERVATION CONFLICT", r)
		}
	}
	if k := harness.ReadKeys(ctx, t, ys, 0); !slices.Equal(k, []uint64{keyX}) {
		t.Fatalf("READ KEYS through B: %x, want X's", k)
	}

	if r := harness.PROut(ctx, t, ys, 0, harness.PRRegister, 0, 0, keyY, false); r.Status != initiator.StatusGood {
		t.Fatalf("REGISTER through B: %v", r)
	}
	if r := harness.PROut(ctx, t, ys, 0, scsi.PROutPreempt, writeExclusive, keyY, keyX, false); r.Status != initiator.StatusGood {
		t.Fatalf("PREEMPT through B: %v", r)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r := harness.Do(ctx, t, xs, 0, initiator.TestUnitReady(), nil, 0)
		if r.Is(0x6, 0x2a, 0x05) { // UNIT ATTENTION, REGISTRATIONS PREEMPTED
			break
		}
		if r.Status != initiator.StatusGood || time.Now().After(deadline) {
			t.Fatalf("X on A after the PREEMPT on B: %v, want REGISTRATIONS PREEMPTED", r)
		}
	}
	if r := write(xs); r.Status != initiator.StatusReservationConflict {
		t.Fatalf("WRITE from the preempted X through A: %v, want RESERVATION CONFLICT", r)
	}
	if k, typ, ok := harness.ReadReservation(ctx, t, xs, 0); !ok || k != keyY || typ != writeExclusive {
		t.Fatalf("READ RESERVATION through A: key %x type %d held %v, want Y's", k, typ, ok)
	}
}

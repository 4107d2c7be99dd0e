package esx

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/test/harness"
)

// TestPersistentReservationAPTPLAcrossCrash: a reservation made with
// APTPL through iSCSI survives kill -9 of stmfd and a restart (same key,
// same holder, still enforced); one made without APTPL is gone.
func TestPersistentReservationAPTPLAcrossCrash(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	dir := harness.TempDir(t, "esx")
	state := filepath.Join(dir, "state")
	d := suite.Start(ctx, t, state, harness.Options{})
	luP := d.CreateLU(harness.Backing(t, dir, "persist", 16*mib))
	luV := d.CreateLU(harness.Backing(t, dir, "volatile", 16*mib))
	d.OK("stmfadm", "add-view", "-n", "0", luP)
	d.OK("stmfadm", "add-view", "-n", "1", luV)
	d.OK("itadm", "create-target", "-n", tgtDefault)

	const keyP, keyV uint64 = 0x1111222233334444, 0x5555666677778888
	holder := harness.Login(ctx, t, d.Portal, tgtDefault, hostA, 7)
	other := harness.Login(ctx, t, d.Portal, tgtDefault, hostB, 7)
	for _, s := range []*initiator.Session{holder, other} {
		harness.Ready(ctx, t, s, 0)
		harness.Ready(ctx, t, s, 1)
	}
	if r := harness.PROut(ctx, t, holder, 0, harness.PRRegister, 0, 0, keyP, true); r.Status != initiator.StatusGood {
		t.Fatalf("REGISTER with APTPL: %v", r)
	}
	if r := harness.PROut(ctx, t, holder, 0, harness.PRReserve, harness.PRTypeWERO, keyP, 0, true); r.Status != initiator.StatusGood {
		t.Fatalf("RESERVE WE-RO: %v", r)
	}
	if r := harness.PROut(ctx, t, holder, 1, harness.PRRegister, 0, 0, keyV, false); r.Status != initiator.StatusGood {
		t.Fatalf("REGISTER without APTPL: %v", r)
	}
	if r := harness.PROut(ctx, t, holder, 1, harness.PRReserve, harness.PRTypeEARO, keyV, 0, false); r.Status != initiator.StatusGood {
		t.Fatalf("RESERVE EA-RO: %v", r)
	}
	check := func(when string, lun uint64, wantKey uint64, wantType byte) {
		t.Helper()
		if keys := harness.ReadKeys(ctx, t, holder, lun); !slices.Equal(keys, []uint64{wantKey}) {
			t.Fatalf("%s: READ KEYS on LUN %d: %x, want [%x]", when, lun, keys, wantKey)
		}
		if k, typ, ok := harness.ReadReservation(ctx, t, holder, lun); !ok || k != wantKey || typ != wantType {
			t.Fatalf("%s: READ RESERVATION on LUN %d: key %x type %d (%v), want %x type %d", when, lun, k, typ, ok, wantKey, wantType)
		}
	}
	check("before the crash", 0, keyP, harness.PRTypeWERO)
	check("before the crash", 1, keyV, harness.PRTypeEARO)
	// Enforced: the unregistered host may read but not write LUN 0, and
	// may not even read LUN 1.
	harness.Good(ctx, t, other, 0, initiator.Read16(0, 1), nil, 512)
	if r := harness.Do(ctx, t, other, 0, initiator.Write16(0, 1), make([]byte, 512), 0); r.Status != initiator.StatusReservationConflict {
		t.Fatalf("unregistered WRITE under WE-RO: %v, want RESERVATION CONFLICT", r)
	}
	if r := harness.Do(ctx, t, other, 1, initiator.Read16(0, 1), nil, 512); r.Status != initiator.StatusReservationConflict {
		t.Fatalf("unregistered READ under EA-RO: %v, want RESERVATION CONFLICT", r)
	}

	d.Kill()
	d = suite.Start(ctx, t, state, harness.Options{})
	holder = harness.Login(ctx, t, d.Portal, tgtDefault, hostA, 7) // same I_T nexus: same initiator port (ISID) and target port
	other = harness.Login(ctx, t, d.Portal, tgtDefault, hostB, 7)
	for _, s := range []*initiator.Session{holder, other} {
		harness.Ready(ctx, t, s, 0)
		harness.Ready(ctx, t, s, 1)
	}

	// APTPL: the same key and holder, still enforced.
	check("after kill -9 and restart", 0, keyP, harness.PRTypeWERO)
	harness.Good(ctx, t, holder, 0, initiator.Write16(0, 1), make([]byte, 512), 0) // the holder's registration is restored for its nexus
	if r := harness.Do(ctx, t, other, 0, initiator.Write16(0, 1), make([]byte, 512), 0); r.Status != initiator.StatusReservationConflict {
		t.Fatalf("unregistered WRITE under the restored WE-RO: %v, want RESERVATION CONFLICT", r)
	}
	// Without APTPL the restart cleared everything.
	if keys := harness.ReadKeys(ctx, t, holder, 1); len(keys) != 0 {
		t.Fatalf("READ KEYS on the LU without APTPL after restart: %x, want none", keys)
	}
	if k, typ, ok := harness.ReadReservation(ctx, t, holder, 1); ok {
		t.Fatalf("READ RESERVATION on the LU without APTPL after restart: key %x type %d, want none", k, typ)
	}
	harness.Good(ctx, t, other, 1, initiator.Write16(0, 1), make([]byte, 512), 0)
}

package esx

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/initiator"
)

// Persistent reservation service actions and types (SPC-4 6.15, 6.16).
const (
	prRegister        = 0x00
	prReserve         = 0x01
	prInReadKeys      = 0x00
	prInReadResv      = 0x01
	prTypeWERO   byte = 0x5 // WRITE EXCLUSIVE - REGISTRANTS ONLY
	prTypeEARO   byte = 0x6 // EXCLUSIVE ACCESS - REGISTRANTS ONLY
)

// prOut runs PERSISTENT RESERVE OUT with the basic 24-byte parameter list.
func prOut(ctx context.Context, t *testing.T, s *initiator.Session, lun uint64, sa, typ byte, key, sakey uint64, aptpl bool) initiator.Response {
	t.Helper()
	cdb := make([]byte, 10)
	cdb[0], cdb[1], cdb[2] = 0x5f, sa, typ&0x0f // scope LU
	binary.BigEndian.PutUint32(cdb[5:9], 24)
	pl := make([]byte, 24)
	binary.BigEndian.PutUint64(pl[0:], key)
	binary.BigEndian.PutUint64(pl[8:], sakey)
	if aptpl {
		pl[20] = 0x01
	}
	return do(ctx, t, s, lun, cdb, pl, 0)
}

func prIn(ctx context.Context, t *testing.T, s *initiator.Session, lun uint64, sa byte) []byte {
	t.Helper()
	cdb := make([]byte, 10)
	cdb[0], cdb[1] = 0x5e, sa
	binary.BigEndian.PutUint16(cdb[7:9], 1024)
	r := good(ctx, t, s, lun, cdb, nil, 1024)
	if len(r.Data) < 8 {
		t.Fatalf("PERSISTENT RESERVE IN: %d bytes", len(r.Data))
	}
	return r.Data
}

// readKeys returns the registered keys (READ KEYS).
func readKeys(ctx context.Context, t *testing.T, s *initiator.Session, lun uint64) []uint64 {
	t.Helper()
	d := prIn(ctx, t, s, lun, prInReadKeys)
	n := int(binary.BigEndian.Uint32(d[4:8]))
	var keys []uint64
	for off := 8; off+8 <= 8+n && off+8 <= len(d); off += 8 {
		keys = append(keys, binary.BigEndian.Uint64(d[off:]))
	}
	return keys
}

// readReservation returns the holder's key and the type (READ
// RESERVATION); ok is false when there is no reservation.
func readReservation(ctx context.Context, t *testing.T, s *initiator.Session, lun uint64) (key uint64, typ byte, ok bool) {
	t.Helper()
	d := prIn(ctx, t, s, lun, prInReadResv)
	if binary.BigEndian.Uint32(d[4:8]) == 0 {
		return 0, 0, false
	}
	if len(d) < 24 {
		t.Fatalf("READ RESERVATION: %d bytes", len(d))
	}
	return binary.BigEndian.Uint64(d[8:16]), d[21] & 0x0f, true
}

// TestPersistentReservationAPTPLAcrossCrash: a reservation made with
// APTPL through iSCSI survives kill -9 of stmfd and a restart (same key,
// same holder, still enforced); one made without APTPL is gone.
func TestPersistentReservationAPTPLAcrossCrash(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	dir := tempDir(t)
	state := filepath.Join(dir, "state")
	d := startDaemon(ctx, t, state)
	luP := d.createLU(backing(t, dir, "persist", 16*mib))
	luV := d.createLU(backing(t, dir, "volatile", 16*mib))
	d.ok("stmfadm", "add-view", "-n", "0", luP)
	d.ok("stmfadm", "add-view", "-n", "1", luV)
	d.ok("itadm", "create-target", "-n", tgtDefault)

	const keyP, keyV uint64 = 0x1111222233334444, 0x5555666677778888
	holder := login(ctx, t, d.portal, tgtDefault, hostA, 7)
	other := login(ctx, t, d.portal, tgtDefault, hostB, 7)
	for _, s := range []*initiator.Session{holder, other} {
		ready(ctx, t, s, 0)
		ready(ctx, t, s, 1)
	}
	if r := prOut(ctx, t, holder, 0, prRegister, 0, 0, keyP, true); r.Status != initiator.StatusGood {
		t.Fatalf("REGISTER with APTPL: %v", r)
	}
	if r := prOut(ctx, t, holder, 0, prReserve, prTypeWERO, keyP, 0, true); r.Status != initiator.StatusGood {
		t.Fatalf("RESERVE WE-RO: %v", r)
	}
	if r := prOut(ctx, t, holder, 1, prRegister, 0, 0, keyV, false); r.Status != initiator.StatusGood {
		t.Fatalf("REGISTER without APTPL: %v", r)
	}
	if r := prOut(ctx, t, holder, 1, prReserve, prTypeEARO, keyV, 0, false); r.Status != initiator.StatusGood {
		t.Fatalf("RESERVE EA-RO: %v", r)
	}
	check := func(when string, lun uint64, wantKey uint64, wantType byte) {
		t.Helper()
		if keys := readKeys(ctx, t, holder, lun); !slices.Equal(keys, []uint64{wantKey}) {
			t.Fatalf("%s: READ KEYS on LUN %d: %x, want [%x]", when, lun, keys, wantKey)
		}
		if k, typ, ok := readReservation(ctx, t, holder, lun); !ok || k != wantKey || typ != wantType {
			t.Fatalf("%s: READ RESERVATION on LUN %d: key %x type %d (%v), want %x type %d", when, lun, k, typ, ok, wantKey, wantType)
		}
	}
	check("before the crash", 0, keyP, prTypeWERO)
	check("before the crash", 1, keyV, prTypeEARO)
	// Enforced: the unregistered host may read but not write LUN 0, and
	// may not even read LUN 1.
	good(ctx, t, other, 0, initiator.Read16(0, 1), nil, 512)
	if r := do(ctx, t, other, 0, initiator.Write16(0, 1), make([]byte, 512), 0); r.Status != initiator.StatusReservationConflict {
		t.Fatalf("unregistered WRITE under WE-RO: %v, want RESERVATION CONFLICT", r)
	}
	if r := do(ctx, t, other, 1, initiator.Read16(0, 1), nil, 512); r.Status != initiator.StatusReservationConflict {
		t.Fatalf("unregistered READ under EA-RO: %v, want RESERVATION CONFLICT", r)
	}

	d.kill9()
	d = startDaemon(ctx, t, state)
	holder = login(ctx, t, d.portal, tgtDefault, hostA, 7) // same I_T nexus: same initiator port (ISID) and target port
	other = login(ctx, t, d.portal, tgtDefault, hostB, 7)
	for _, s := range []*initiator.Session{holder, other} {
		ready(ctx, t, s, 0)
		ready(ctx, t, s, 1)
	}

	// APTPL: the same key and holder, still enforced.
	check("after kill -9 and restart", 0, keyP, prTypeWERO)
	good(ctx, t, holder, 0, initiator.Write16(0, 1), make([]byte, 512), 0) // the holder's registration is restored for its nexus
	if r := do(ctx, t, other, 0, initiator.Write16(0, 1), make([]byte, 512), 0); r.Status != initiator.StatusReservationConflict {
		t.Fatalf("unregistered WRITE under the restored WE-RO: %v, want RESERVATION CONFLICT", r)
	}
	// Without APTPL the restart cleared everything.
	if keys := readKeys(ctx, t, holder, 1); len(keys) != 0 {
		t.Fatalf("READ KEYS on the LU without APTPL after restart: %x, want none", keys)
	}
	if k, typ, ok := readReservation(ctx, t, holder, 1); ok {
		t.Fatalf("READ RESERVATION on the LU without APTPL after restart: key %x type %d, want none", k, typ)
	}
	good(ctx, t, other, 1, initiator.Write16(0, 1), make([]byte, 512), 0)
}

package harness

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/costar-project/costar/internal/initiator"
)

// Persistent reservation service actions and types (SPC-4 6.15, 6.16).
const (
	PRRegister        = 0x00
	PRReserve         = 0x01
	PRInReadKeys      = 0x00
	PRInReadResv      = 0x01
	PRTypeWERO   byte = 0x5 // WRITE EXCLUSIVE - REGISTRANTS ONLY
	PRTypeEARO   byte = 0x6 // EXCLUSIVE ACCESS - REGISTRANTS ONLY
)

// PROut runs PERSISTENT RESERVE OUT with the basic 24-byte parameter list.
func PROut(ctx context.Context, t *testing.T, s *initiator.Session, lun uint64, sa, typ byte, key, sakey uint64, aptpl bool) initiator.Response {
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
	return Do(ctx, t, s, lun, cdb, pl, 0)
}

// PRIn runs PERSISTENT RESERVE IN with service action sa (must be GOOD).
func PRIn(ctx context.Context, t *testing.T, s *initiator.Session, lun uint64, sa byte) []byte {
	t.Helper()
	cdb := make([]byte, 10)
	cdb[0], cdb[1] = 0x5e, sa
	binary.BigEndian.PutUint16(cdb[7:9], 1024)
	r := Good(ctx, t, s, lun, cdb, nil, 1024)
	if len(r.Data) < 8 {
		t.Fatalf("PERSISTENT RESERVE IN: %d bytes", len(r.Data))
	}
	return r.Data
}

// ReadKeys returns the registered keys (READ KEYS).
func ReadKeys(ctx context.Context, t *testing.T, s *initiator.Session, lun uint64) []uint64 {
	t.Helper()
	d := PRIn(ctx, t, s, lun, PRInReadKeys)
	n := int(binary.BigEndian.Uint32(d[4:8]))
	var keys []uint64
	for off := 8; off+8 <= 8+n && off+8 <= len(d); off += 8 {
		keys = append(keys, binary.BigEndian.Uint64(d[off:]))
	}
	return keys
}

// ReadReservation returns the holder's key and the type (READ
// RESERVATION); ok is false when there is no reservation.
func ReadReservation(ctx context.Context, t *testing.T, s *initiator.Session, lun uint64) (key uint64, typ byte, ok bool) {
	t.Helper()
	d := PRIn(ctx, t, s, lun, PRInReadResv)
	if binary.BigEndian.Uint32(d[4:8]) == 0 {
		return 0, 0, false
	}
	if len(d) < 24 {
		t.Fatalf("READ RESERVATION: %d bytes", len(d))
	}
	return binary.BigEndian.Uint64(d[8:16]), d[21] & 0x0f, true
}

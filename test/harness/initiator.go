package harness

import (
	"context"
	"encoding/hex"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/initiator"
)

// Login opens a session from initiatorName (ISID ending in isid) to target
// at portal with internal/initiator; it is closed at the end of the test.
func Login(ctx context.Context, t *testing.T, portal, target, initiatorName string, isid byte) *initiator.Session {
	t.Helper()
	lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	s, err := initiator.Dial(lctx, initiator.Config{Portal: portal, Target: target, Initiator: initiatorName,
		ISID: [6]byte{0x80, 0x00, 0x45, 0x53, 0x58, isid}})
	if err != nil {
		t.Fatalf("login to %s at %s as %s: %v", target, portal, initiatorName, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Do runs one command that must reach a SCSI status (any) within the
// context and returns the response.
func Do(ctx context.Context, t *testing.T, s *initiator.Session, lun uint64, cdb, dataOut []byte, readLen uint32) initiator.Response {
	t.Helper()
	r, err := s.Do(ctx, lun, cdb, dataOut, readLen)
	if err != nil {
		t.Fatalf("CDB % x: %v", cdb, err)
	}
	return r
}

// Good runs a command that must answer GOOD.
func Good(ctx context.Context, t *testing.T, s *initiator.Session, lun uint64, cdb, dataOut []byte, readLen uint32) initiator.Response {
	t.Helper()
	r := Do(ctx, t, s, lun, cdb, dataOut, readLen)
	if r.Status != initiator.StatusGood {
		t.Fatalf("CDB % x: %v, want GOOD", cdb, r)
	}
	return r
}

// Ready clears the unit attentions a new session starts with.
func Ready(ctx context.Context, t *testing.T, s *initiator.Session, lun uint64) {
	t.Helper()
	r, err := s.ClearUnitAttentions(ctx, lun)
	if err != nil || r.Status != initiator.StatusGood {
		t.Fatalf("TEST UNIT READY on LUN %d: %v %v", lun, r, err)
	}
}

// GUIDBytes decodes a GUID as it appears in an NAA designator.
func GUIDBytes(t *testing.T, g string) []byte {
	t.Helper()
	b, err := hex.DecodeString(g)
	if err != nil || len(b) != 16 {
		t.Fatalf("GUID %q: %v", g, err)
	}
	return b
}

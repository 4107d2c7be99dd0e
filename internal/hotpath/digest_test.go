package hotpath

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/initiator"
)

// costar-loadgen's digest figures use internal/initiator with CRC32C
// header and data digests: against the target they must move data intact
// both ways (a digest either side got wrong drops the connection).
func TestInitiatorDigests(t *testing.T) {
	addr := StartTarget(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, digests := range []bool{false, true} {
		s, err := initiator.Dial(ctx, initiator.Config{Portal: addr, Target: target, Initiator: initName, Digests: digests})
		if err != nil {
			t.Fatalf("digests %v: %v", digests, err)
		}
		if _, err := s.ClearUnitAttentions(ctx, 0); err != nil {
			t.Fatal(err)
		}
		want := bytes.Repeat([]byte{0x5a, 0xc3, 0x01}, 400000)[:1<<20] // several PDUs each way, R2Ts too
		if r, err := s.Do(ctx, 0, initiator.Write16(64, 2048), want, 0); err != nil || r.Status != initiator.StatusGood {
			t.Fatalf("digests %v: write: %v %v", digests, r, err)
		}
		r, err := s.Do(ctx, 0, initiator.Read16(64, 2048), nil, uint32(len(want)))
		if err != nil || r.Status != initiator.StatusGood || !bytes.Equal(r.Data, want) {
			t.Fatalf("digests %v: read: err %v status %v, data equal %v", digests, err, r.Status, bytes.Equal(r.Data, want))
		}
		if got := s.TargetParams["HeaderDigest"]; (got == "CRC32C") != digests {
			t.Errorf("digests %v: HeaderDigest=%q", digests, got)
		}
		if err := s.Logout(ctx); err != nil {
			t.Error(err)
		}
	}
}

package esx

import (
	"bytes"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/test/harness"
)

// TestWriteEDTLInsideABlock is libiscsi's test_write_residuals case
// "one block with expected data transfer length 200" over a real
// session to stmfd: the target must not answer GOOD for 200 bytes it
// drops. It answers CHECK CONDITION, ILLEGAL REQUEST, INVALID FIELD IN
// COMMAND INFORMATION UNIT with the overflow residual, and the block
// keeps its old contents.
func TestWriteEDTLInsideABlock(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	_, s := oneLU(ctx, t)
	_, bs32, err := s.Capacity(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	bs := int(bs32)
	as := bytes.Repeat([]byte{'a'}, bs)
	for _, tc := range []struct {
		name string
		cdb  []byte
	}{
		{"WRITE (10)", []byte{0x2a, 0, 0, 0, 0, 7, 0, 0, 1, 0}},
		{"WRITE (12)", []byte{0xaa, 0, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0}},
		{"WRITE (16)", initiator.Write16(7, 1)},
	} {
		harness.Good(ctx, t, s, 0, initiator.Write16(7, 1), as, 0)
		r := harness.Do(ctx, t, s, 0, tc.cdb, bytes.Repeat([]byte{'b'}, 200), 0) // EDTL 200
		if !r.Is(0x05, 0x0e, 0x03) {
			t.Errorf("%s, EDTL 200: %v, want CHECK CONDITION 5/0e03", tc.name, r)
		}
		if r.Overflow != uint32(bs-200) {
			t.Errorf("%s, EDTL 200: overflow residual %d, want %d", tc.name, r.Overflow, bs-200)
		}
		got := harness.Good(ctx, t, s, 0, initiator.Read16(7, 1), nil, uint32(bs)).Data
		if !bytes.Equal(got, as) {
			t.Errorf("%s, EDTL 200: block changed to %q...", tc.name, got[:8])
		}
	}
}

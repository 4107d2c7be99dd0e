package lu

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/lu/backing/filestore"
	"github.com/costar-project/costar/scsi"
)

// TestSetFenceReplaysJournal: node A crashes after the journal step of a
// WRITE ATOMIC; node B has the LU open with deferred replay (a cluster
// standby). B leaves the record alone and refuses WRITE ATOMIC as a
// standby; a SetFence the store refuses (a bigger token is recorded)
// replays nothing; the SetFence that records B's token replays it.
func TestSetFenceReplaysJournal(t *testing.T) {
	ctx := context.Background()
	a, data, meta := journalLU(t, false)
	defer a.Close()
	old, rec := vpattern(8*512, 1), vpattern(8*512, 2)
	expectGood(t, "A WRITE ATOMIC", atomicWrite(t, a, 10, old))
	fileStore(a).StopAfterJournal(func() bool { return true })
	expectSense(t, "A crashes after the journal step", atomicWrite(t, a, 10, rec), scsi.KeyMediumError, scsi.ASCWriteError)
	jpath := fileStore(a).JournalPath()
	pending := func() bool {
		t.Helper()
		p, err := filestore.JournalPending(jpath)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	st, err := filestore.OpenDeferred(ctx, data, meta, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, st, OpenOptions{Log: quietLog()})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	defer b.Close()
	if b.maxAtomicBlocks() == 0 {
		t.Fatal("the deferred LU does not offer WRITE ATOMIC (its VPD would change at takeover)")
	}
	if !bytes.Equal(readBlocks(t, b, 10, 8), old) || !pending() {
		t.Fatal("opening with deferred replay replayed the record")
	}
	expectSense(t, "B WRITE ATOMIC before takeover", atomicWrite(t, b, 20, vpattern(512, 3)),
		scsi.KeyNotReady, scsi.ASCLUNotAccessibleStandby)

	if err := fileStore(a).Fence(9); err != nil { // another node took the LU over meanwhile
		t.Fatal(err)
	}
	if err := b.SetFence(7); !errors.Is(err, backing.ErrFenced) {
		t.Fatalf("SetFence(7) under token 9: %v, want ErrFenced", err)
	}
	if !bytes.Equal(readBlocks(t, b, 10, 8), old) || !pending() {
		t.Fatal("a refused takeover replayed the record")
	}

	if err := b.SetFence(10); err != nil {
		t.Fatalf("SetFence(10): %v", err)
	}
	if !bytes.Equal(readBlocks(t, b, 10, 8), rec) || pending() {
		t.Fatal("the takeover did not replay the record")
	}
	neu := vpattern(512, 4)
	expectGood(t, "B WRITE ATOMIC after takeover", atomicWrite(t, b, 20, neu))
	if !bytes.Equal(readBlocks(t, b, 20, 1), neu) {
		t.Fatal("B's WRITE ATOMIC did not land")
	}
}

package lu

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// Fencing on the data path (cluster mode). Each takeover of an LU has a
// fencing token that only grows; the owner records it with the LU in the
// shared store (SetFence, backing.Fencer) before it serves, and every
// media-modifying store call is preceded by checkFence, which refuses the
// call once the store holds a bigger token: a deposed owner (a process
// frozen past its self-fence deadline) that resumes with a write admitted
// cannot land it after the new owner started writing.
//
// Reading the store for every write would cost a metadata read per
// command, so a check that found this node's token still the newest is
// trusted for FenceWindow, judged on the monotonic clock when the next
// store call is about to be made. The argument:
//   - the new owner records its token before it serves and then waits
//     FenceWindow before turning the LU active (the daemon's Serve), so a
//     check the old owner made before the new token was recorded stays
//     trusted only until before the new owner's first write;
//   - a freeze (SIGSTOP, swap) between two checks moves the monotonic
//     clock on (CLOCK_MONOTONIC runs while a process is stopped), so the
//     first store call after the resume finds the cache stale and reads
//     the store again. A frozen owner cannot have been replaced unless it
//     was frozen longer than the cluster's fence margin, far above
//     FenceWindow.
//
// What remains: a freeze between the check and the store call it guards
// (a few instructions; a file offers no compare-and-write), and a guest
// whose monotonic clock the hypervisor stops while the VM is paused: it
// trusts its last check for up to FenceWindow of its own time after the
// resume. Stores without backing.Fencer (zvols: the exclusive pool import
// is their fence) are not checked.

// FenceWindow is how long a successful fence check is trusted; the new
// owner waits it out after SetFence before it serves.
const FenceWindow = 100 * time.Millisecond

// fenceState is the LU's fencing token and the cached outcome of the last
// check. The zero value does not fence.
type fenceState struct {
	f      backing.Fencer // nil: the store cannot fence
	token  atomic.Int64   // this node's token; 0 = not fencing
	last   atomic.Pointer[fenceCheck]
	fenced atomic.Int64 // a token found superseded: refused without a read (tokens only grow)
	logged atomic.Int64 // token whose refusal was logged (once per tenure)

	mu     sync.Mutex // one store read at a time; the others use its outcome
	window time.Duration
	base   time.Time            // monotonic reference for now
	now    func() time.Duration // monotonic time since base; tests replace it
}

// fenceCheck is a check that found token still the newest at (monotonic,
// taken before the store was read).
type fenceCheck struct {
	token int64
	at    time.Duration
}

func (f *fenceState) setup(st backing.Store) {
	f.f, _ = st.(backing.Fencer)
	f.window = FenceWindow
	f.base = time.Now()
	f.now = func() time.Duration { return time.Since(f.base) } // monotonic: time.Now carries the reading
}

// SetFence makes token this node's fencing token for the LU: recorded in
// the store (backing.Fencer) durably, refused with backing.ErrFenced when
// the store already holds a bigger one (the caller then gives the LU up).
// From then on every media-modifying command checks it. 0 stops fencing.
// A store without Fencer, or opened read-only, records nothing and is
// never checked. A token (not 0) is a takeover: once it is recorded the
// store's journal is replayed (backing.JournalReplayer); a replay error
// is returned and the caller gives the LU up.
func (d *Device) SetFence(token int64) error {
	if token < 0 {
		return fmt.Errorf("lu: fencing token %d: must not be negative", token)
	}
	f := &d.fence
	if token == 0 || f.f == nil || d.caps.ReadOnly {
		// Nothing to record (or, read-only, nothing to protect: every
		// write is refused as write-protected anyway).
		f.token.Store(0)
		if token == 0 {
			return nil
		}
		// Still a takeover: a read-only store checks its journal (a
		// pending record it cannot replay fails the takeover).
		return d.replayJournal()
	}
	d.metaMu.Lock() // the token goes through the metadata: no save in between
	defer d.metaMu.Unlock()
	if d.state.Load()&closingBit != 0 {
		return errClosed
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	at := f.now()
	if err := f.f.Fence(token); err != nil {
		return fmt.Errorf("lu: fencing %s with token %d: %w", d.where(), token, err)
	}
	d.md.FenceToken = token
	f.last.Store(&fenceCheck{token: token, at: at})
	f.token.Store(token)
	// Only now, with the previous owner fenced, may a journal record it
	// left unapplied be replayed (backing.JournalReplayer).
	return d.replayJournal()
}

// replayJournal readies the store for this node's tenure: cached data
// from an earlier tenure is dropped (another host may have written the
// shared device since, backing.CacheDropper), then the redo journal is
// replayed when the store has one that waits for it
// (backing.JournalReplayer).
func (d *Device) replayJournal() error {
	if c, ok := d.store.(backing.CacheDropper); ok {
		if err := c.DropCache(); err != nil {
			d.log.Warn("lu: takeover may read data cached before another host wrote it", "guid", d.guid, "err", err)
		}
	}
	r, ok := d.store.(backing.JournalReplayer)
	if !ok {
		return nil
	}
	if err := r.ReplayJournal(); err != nil {
		return fmt.Errorf("lu: replaying the journal of %s on takeover: %w", d.where(), err)
	}
	return nil
}

// FenceToken is this node's fencing token for the LU (0: not fencing).
func (d *Device) FenceToken() int64 { return d.fence.token.Load() }

// checkFence is called right before a media-modifying store call:
// backing.ErrFenced (wrapped) when a newer owner holds the LU. See the
// argument above for why a recent check is trusted.
func (d *Device) checkFence() error {
	tok := d.fence.token.Load()
	if tok == 0 {
		return nil
	}
	return d.fence.check(tok)
}

func (f *fenceState) check(tok int64) error {
	if f.fenced.Load() == tok {
		return fmt.Errorf("%w: token %d", backing.ErrFenced, tok)
	}
	if f.fresh(tok, f.now()) {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	at := f.now()
	if f.fresh(tok, at) { // another command read the store meanwhile
		return nil
	}
	err := f.f.CheckFence(tok)
	switch {
	case errors.Is(err, backing.ErrFenced):
		f.fenced.Store(tok)
		return err
	case err != nil:
		return err
	}
	f.last.Store(&fenceCheck{token: tok, at: at})
	return nil
}

// fresh reports whether a check for tok made less than the window before
// now found it the newest.
func (f *fenceState) fresh(tok int64, now time.Duration) bool {
	c := f.last.Load()
	return c != nil && c.token == tok && now-c.at < f.window
}

// fenced is the answer to a command a newer owner's token refused: NOT
// READY, LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE, so
// the initiator fails over to the owner's path. Logged once per token.
func (d *Device) fenced(err error) *stmf.Result {
	tok := d.fence.token.Load()
	if d.fence.logged.Swap(tok) != tok {
		d.log.Error("lu: a newer owner fenced this LU; refusing writes here (the initiator fails over)",
			"guid", d.guid, "path", d.where(), "fencing_token", tok, "err", err)
	}
	return fail(scsi.NewSense(scsi.KeyNotReady, scsi.ASCLUNotAccessibleStandby))
}

package lu

import (
	"context"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/costar-project/costar/stmf"
)

// Write ordering and atomicity.
//
// stmf runs the tasks of an LU concurrently. Writes whose LBA ranges
// overlap must still reach the medium in the order they arrived (SAM's
// task set is one queue; ESXi's VMFS relies on it), and COMPARE AND WRITE,
// ORWRITE and WRITE ATOMIC must be atomic against every other write to
// their range, from any I_T nexus.
//
// Admit (called by stmf synchronously, in arrival order, before the task
// runs) registers the block range of every write-type command (its row's
// lock class, command.go) in the LU's rangeLock and keeps the entry in
// t.LUPrivate. An entry records the
// earlier entries it overlaps; Execute waits for those to be released
// before running the command, and releases its own entry when the command
// is done, on every path (errors, NOT READY, a recovered panic, an abort
// while waiting). Entries of tasks aborted before they ever reached
// Execute are let go when stmf retires the task (Discard), or reaped by
// whoever waits for them, or swept. I/O that
// overlaps nothing never waits, and reads take no entry unless an atomic
// command overlaps them (so that they see it whole). The hot path is one
// short mutex section on one of 16 LBA-region shards at Admit and one at
// release, plus an allocation.

// Entry states.
const (
	entryAdmitted = iota // registered, its task not yet in Execute
	entryRunning         // in Execute (waiting for its dependencies, or holding)
	entryReleased        // done, or reaped after its task was aborted
)

// The range lock is sharded by LBA region so that I/O to different parts
// of the LU takes different mutexes. An entry is listed in the shard of
// every region it touches (all shards when it spans lockShards regions or
// more); shards are always locked in ascending order. Overlapping entries
// share a shard, so their registration order is well defined.
const (
	lockShards      = 16 // a power of two
	lockRegionShift = 9  // 512 blocks per region: 256 KiB at 512-byte blocks
	allShards       = 1<<lockShards - 1
	minSweep        = 64
)

// lockEntry is one registered range.
type lockEntry struct {
	lo, hi uint64
	kind   lockKind
	mask   uint32     // shards the entry is listed in
	task   *stmf.Task // nil for ranges locked during execution (EXTENDED COPY)
	seq    uint64     // registration order among entries sharing a shard
	state  atomic.Int32
	// deps are the earlier entries this one waits for; kept after the
	// wait, so that dependents of an entry that gave up (aborted) can wait
	// for them instead. Immutable after registration.
	deps []*lockEntry
	// held is set once all deps were released and the entry got the
	// range; read by dependents after done is closed.
	held bool
	// done is made when a later entry first depends on this one (under
	// one of this entry's shard locks, hence the CAS) and closed when the
	// entry leaves the lock.
	done atomic.Pointer[chan struct{}]
}

func (e *lockEntry) doneChan() chan struct{} {
	if p := e.done.Load(); p != nil {
		return *p
	}
	c := make(chan struct{})
	if e.done.CompareAndSwap(nil, &c) {
		return c
	}
	return *e.done.Load()
}

type lockShard struct {
	mu      sync.Mutex
	active  []*lockEntry // entries touching this shard, in no particular order
	sweepAt int
	clock   uint64   // highest seq registered here
	_       [16]byte // keep shards' mutexes on separate cache lines
}

// rangeLock orders overlapping writes of one LU. The zero value is ready.
type rangeLock struct {
	shards [lockShards]lockShard
	// Only atomic commands update it; reads load it in Admit.
	atomics atomic.Int64 // registered lockAtomic entries
}

// shardMask returns the shards of the regions [lo, hi) touches (hi > lo).
func shardMask(lo, hi uint64) uint32 {
	r0, r1 := lo>>lockRegionShift, (hi-1)>>lockRegionShift
	if r1-r0 >= lockShards-1 {
		return allShards
	}
	var m uint32
	for r := r0; ; r++ {
		m |= 1 << (r & (lockShards - 1))
		if r == r1 {
			return m
		}
	}
}

func (l *rangeLock) lockMask(m uint32) {
	if m&(m-1) == 0 { // one shard: the common case
		l.shards[home(m)].mu.Lock()
		return
	}
	for ; m != 0; m &= m - 1 {
		l.shards[bits.TrailingZeros32(m)].mu.Lock()
	}
}

func (l *rangeLock) unlockMask(m uint32) {
	if m&(m-1) == 0 {
		l.shards[home(m)].mu.Unlock()
		return
	}
	for ; m != 0; m &= m - 1 {
		l.shards[bits.TrailingZeros32(m)].mu.Unlock()
	}
}

// home is the lowest shard of m.
func home(m uint32) int { return bits.TrailingZeros32(m) }

// Admit implements stmf.Admitter: it decodes the task's CDB once, onto
// t.LUDecoded, and registers the block range of a write-type task, in
// arrival order, before the task runs, keeping the entry in t.LUPrivate
// for Execute. It never blocks (beyond short mutex sections) and never
// fails: a CDB it cannot parse, or one the port's access state refuses,
// gets no entry and is rejected by Execute.
func (d *Device) Admit(t *stmf.Task) {
	t.LUDecoded = d.cmds.decode(t.CDB)
	c := d.cmds.row(t.LUDecoded)
	if c != nil {
		t.SetKind(c.kind)
		t.Throttle = d.throttle(c, t.LUDecoded)
	}
	if aluaRefusal(t.Access, c) != nil {
		return
	}
	kind, lo, hi := c.span(t.LUDecoded)
	switch kind {
	case lockNone:
		return
	case lockRead:
		if d.vaai.locks.atomics.Load() == 0 {
			return
		}
	}
	if e := d.vaai.locks.register(t, kind, lo, hi); e != nil {
		t.LUPrivate = e
	}
}

// Discard implements stmf.Discarder: the entry of a task stmf retires
// without Execute (aborted while it waited) leaves the lock now, so that
// neither the entry nor the task it names outlives the abort.
func (d *Device) Discard(t *stmf.Task) {
	if e, ok := t.LUPrivate.(*lockEntry); ok && e.state.CompareAndSwap(entryAdmitted, entryReleased) {
		d.vaai.locks.unlink(e)
	}
}

// register adds an entry for t (nil: a range locked during execution) and
// returns it, or returns nil for a read that overlaps no atomic entry.
func (l *rangeLock) register(t *stmf.Task, kind lockKind, lo, hi uint64) *lockEntry {
	m := shardMask(lo, hi)
	l.lockMask(m)
	if kind == lockRead && !l.overlapsAtomicLocked(m, lo, hi) {
		l.unlockMask(m)
		return nil
	}
	e := &lockEntry{lo: lo, hi: hi, kind: kind, mask: m, task: t, seq: l.nextSeqLocked(m)}
	if t == nil {
		e.state.Store(entryRunning)
	}
	e.deps = l.depsLocked(m, lo, hi)
	for _, dep := range e.deps {
		dep.doneChan()
	}
	var victims []*lockEntry
	for mm := m; mm != 0; mm &= mm - 1 {
		i := bits.TrailingZeros32(mm)
		sh := &l.shards[i]
		if len(sh.active) >= sh.sweepAt {
			victims = sh.sweepLocked(victims)
		}
		sh.active = append(sh.active, e)
	}
	if kind == lockAtomic {
		l.atomics.Add(1)
	}
	l.unlockMask(m)
	for _, v := range victims {
		l.unlink(v)
	}
	return e
}

// nextSeqLocked returns a registration number above every entry
// registered in the shards of m, and advances their clocks to it (a
// Lamport clock per shard): two entries that overlap share a shard, so
// their numbers give their registration order, with no counter shared by
// the whole LU.
func (l *rangeLock) nextSeqLocked(m uint32) uint64 {
	var seq uint64
	for mm := m; mm != 0; mm &= mm - 1 {
		seq = max(seq, l.shards[bits.TrailingZeros32(mm)].clock)
	}
	seq++
	for mm := m; mm != 0; mm &= mm - 1 {
		l.shards[bits.TrailingZeros32(mm)].clock = seq
	}
	return seq
}

func (l *rangeLock) overlapsAtomicLocked(m uint32, lo, hi uint64) bool {
	for ; m != 0; m &= m - 1 {
		for _, o := range l.shards[bits.TrailingZeros32(m)].active {
			if o.kind == lockAtomic && o.lo < hi && lo < o.hi {
				return true
			}
		}
	}
	return false
}

// depsLocked returns the entries a new [lo, hi) entry must wait for: the
// newest earlier entry that covers the whole range (it already waits for
// everything older that overlaps), and every overlapping entry newer than
// it. Without a covering entry, every overlapping entry. This keeps a
// queue of writes to one block a chain instead of a quadratic mesh. The
// shards of m are locked; every overlapping entry is listed in one of them.
func (l *rangeLock) depsLocked(m uint32, lo, hi uint64) []*lockEntry {
	var cover *lockEntry
	for mm := m; mm != 0; mm &= mm - 1 {
		i := bits.TrailingZeros32(mm)
		for _, o := range l.shards[i].active {
			if o.lo <= lo && hi <= o.hi && (cover == nil || o.seq > cover.seq) {
				cover = o
			}
		}
	}
	var deps []*lockEntry
	for mm := m; mm != 0; mm &= mm - 1 {
		i := bits.TrailingZeros32(mm)
	next:
		for _, o := range l.shards[i].active {
			if o.lo < hi && lo < o.hi && (cover == nil || o.seq >= cover.seq) {
				for _, x := range deps { // listed in several shards
					if x == o {
						continue next
					}
				}
				deps = append(deps, o)
			}
		}
	}
	return deps
}

// sweepLocked claims the entries of tasks that were aborted before they
// reached Execute (stmf completes those without running them), so the
// lists stay as long as the work in flight. The caller unlinks them once
// it has let go of its shard locks.
func (sh *lockShard) sweepLocked(victims []*lockEntry) []*lockEntry {
	n := len(sh.active)
	for _, e := range sh.active {
		if e.task != nil && e.task.Aborted() && e.state.CompareAndSwap(entryAdmitted, entryReleased) {
			victims = append(victims, e)
			n--
		}
	}
	sh.sweepAt = max(minSweep, 2*n)
	return victims
}

// unlink removes e from its shards and wakes its dependents. The caller
// owns e's removal (it ran it, or claimed it by CAS).
func (l *rangeLock) unlink(e *lockEntry) {
	e.state.Store(entryReleased)
	l.lockMask(e.mask)
	for mm := e.mask; mm != 0; mm &= mm - 1 {
		i := bits.TrailingZeros32(mm)
		sh := &l.shards[i]
		for j, o := range sh.active {
			if o == e {
				last := len(sh.active) - 1
				sh.active[j] = sh.active[last]
				sh.active[last] = nil
				sh.active = sh.active[:last]
				break
			}
		}
	}
	l.unlockMask(e.mask)
	if e.kind == lockAtomic {
		l.atomics.Add(-1)
	}
	if p := e.done.Load(); p != nil {
		close(*p)
	}
}

// release gives up e, which its caller holds or waits for (nil: no-op).
func (l *rangeLock) release(e *lockEntry) {
	if e == nil || e.state.Load() == entryReleased {
		return
	}
	l.unlink(e)
}

// acquire is called when t starts executing. It waits until every earlier
// overlapping write has been released and returns t's entry (nil when t
// has none) to release once the command is done. It returns false when t
// was aborted before or while waiting; t must then not touch the medium.
// A read-modify-write or atomic command that was never admitted (an LU
// driven without stmf) locks its range here, so it is atomic regardless.
func (l *rangeLock) acquire(t *stmf.Task, c *command) (*lockEntry, bool) {
	e, _ := t.LUPrivate.(*lockEntry)
	if e != nil && !e.state.CompareAndSwap(entryAdmitted, entryRunning) {
		return nil, false // reaped: its task was aborted
	}
	if t.Aborted() {
		l.release(e)
		return nil, false
	}
	if e == nil {
		kind, lo, hi := c.span(t.LUDecoded)
		if kind != lockAtomic {
			return nil, true
		}
		e = l.register(nil, kind, lo, hi)
	}
	if !l.waitTask(t, e) {
		l.release(e)
		return nil, false
	}
	return e, true
}

// waitTask is wait with t's context, made only when there is something to
// wait for: most writes overlap nothing in flight, and a context costs
// three allocations.
func (l *rangeLock) waitTask(t *stmf.Task, e *lockEntry) bool {
	if len(e.deps) == 0 {
		e.held = true
		return true
	}
	return l.wait(t.Context(), e)
}

// lock registers [lo, hi) now (not in arrival order) and waits for the
// overlapping entries registered before it: for commands whose ranges are
// only known once their parameter data has arrived (EXTENDED COPY).
func (l *rangeLock) lock(ctx context.Context, lo, hi uint64) (*lockEntry, bool) {
	e := l.register(nil, lockWrite, lo, hi)
	if !l.wait(ctx, e) {
		l.release(e)
		return nil, false
	}
	return e, true
}

// wait blocks until every dependency of e is released and marks e held.
// A dependency released without ever holding its range (its task was
// aborted) is replaced by its own dependencies. A dependency whose task
// was aborted before it reached Execute is reaped here. It returns false
// if ctx ends first.
func (l *rangeLock) wait(ctx context.Context, e *lockEntry) bool {
	deps := e.deps // shared with other waiters: only ever resliced here
	var extra []*lockEntry
	var seen map[*lockEntry]bool
	for len(deps) > 0 || len(extra) > 0 {
		var dep *lockEntry
		if n := len(extra); n > 0 {
			dep, extra = extra[n-1], extra[:n-1]
		} else {
			dep, deps = deps[0], deps[1:]
		}
		var depCtx <-chan struct{}
		if dep.task != nil {
			depCtx = dep.task.Context().Done()
		}
		done := *dep.done.Load() // made when e registered
	waiting:
		for {
			select {
			case <-done:
				break waiting
			case <-ctx.Done():
				return false
			case <-depCtx:
				// Its task ended; if it never reached Execute it never will.
				if dep.state.CompareAndSwap(entryAdmitted, entryReleased) {
					l.unlink(dep)
				}
				depCtx = nil
			}
		}
		if !dep.held && !seen[dep] { // rare: it gave up, so wait for what it waited for
			if seen == nil {
				seen = map[*lockEntry]bool{}
			}
			seen[dep] = true
			extra = append(extra, dep.deps...)
		}
	}
	e.held = true
	// Dependents read deps only of an entry that never held; dropping
	// them here keeps a chain of finished writes (and their tasks'
	// buffers) from staying reachable through the newest entry.
	e.deps = nil
	return true
}

// vaaiState is a Device's state for write ordering and the VAAI commands.
type vaaiState struct {
	locks  rangeLock
	copies copyManager
	// copyChunkHook, when set (tests only), runs before each chunk an
	// EXTENDED COPY moves.
	copyChunkHook func()
}

package stmf

import (
	"sync"
	"sync/atomic"

	"github.com/costar-project/costar/scsi"
)

// luReg is a registered LU with its task set. The task set is shared by
// every I_T nexus (SAM's TST=000b: one task set per logical unit).
type luReg struct {
	lu  LogicalUnit
	ts  taskSet
	seq atomic.Uint64           // arrival order of tasks at this LU
	qos atomic.Pointer[qosGate] // nil: no limit (qos.go)
	// access is the cluster's per-LU state (nil: none; lu_access.go).
	access atomic.Pointer[LUAccess]

	stats counters // every task the LU's LUNs received, from any session
}

// Admitter is optionally implemented by an LU that needs to see tasks in
// arrival order, synchronously, before they run concurrently — for
// example to order overlapping writes. Admit must not block.
type Admitter interface {
	Admit(t *Task)
}

// Discarder is optionally implemented by an Admitter that keeps per-task
// state from Admit: stmf calls Discard for an admitted task it retires
// without Execute (aborted while it waited), so the LU lets that state go
// at once instead of holding the task, and its transport, until it next
// looks.
type Discarder interface {
	Discard(t *Task)
}

// QuickChecker is optionally implemented by an LU that can tell commands
// that finish in microseconds (small reads and writes that hit the page
// cache) from slow ones (flushes, copies, large transfers). Only quick
// commands run inline (Task.Inline). Quick is called after Admit and must
// not block.
type QuickChecker interface {
	Quick(t *Task) bool
}

// Resetter is optionally implemented by an LU that keeps state a reset
// clears (SCSI-2 reservations, for instance). nexus is nil for a reset of
// the whole LU, or the nexus being reset (I_T NEXUS RESET, nexus loss).
type Resetter interface {
	Reset(nexus *Nexus)
}

// taskSet enforces SAM task attributes for one LU: a SIMPLE task may start
// unless an ORDERED task is ahead of it; an ORDERED task starts only when
// every earlier task is done, and holds back every later one; HEAD OF
// QUEUE starts at once. With no ORDERED tasks about, admission is a
// counter increment under an uncontended mutex.
type taskSet struct {
	mu             sync.Mutex
	running        int
	orderedRunning bool
	queue          []*Task            // waiting to start, arrival order
	active         map[*Task]struct{} // running or queued, for resets
}

// admit registers t and reports whether it may start now; otherwise it is
// queued and started later by done.
func (ts *taskSet) admit(t *Task) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.active == nil {
		ts.active = map[*Task]struct{}{}
	}
	ts.active[t] = struct{}{}
	switch t.Attr {
	case scsi.TaskHeadOfQueue:
		ts.running++
		return true
	case scsi.TaskOrdered:
		if ts.running == 0 && len(ts.queue) == 0 {
			ts.running++
			ts.orderedRunning = true
			return true
		}
	default:
		if !ts.orderedRunning && len(ts.queue) == 0 {
			ts.running++
			return true
		}
	}
	ts.queue = append(ts.queue, t)
	return false
}

// done retires a running task and returns the queued tasks that may now
// start, in order.
func (ts *taskSet) done(t *Task) []*Task {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	delete(ts.active, t)
	ts.running--
	if t.Attr == scsi.TaskOrdered {
		ts.orderedRunning = false
	}
	var start []*Task
	for len(ts.queue) > 0 && !ts.orderedRunning {
		head := ts.queue[0]
		if head.Attr == scsi.TaskOrdered {
			if ts.running > 0 {
				break
			}
			ts.orderedRunning = true
		}
		ts.queue = ts.queue[1:]
		ts.running++
		start = append(start, head)
	}
	if len(ts.queue) == 0 {
		ts.queue = nil
	}
	return start
}

// tasks returns the LU's running and queued tasks that match keep.
func (ts *taskSet) tasks(keep func(*Task) bool) []*Task {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var out []*Task
	for t := range ts.active {
		if keep(t) {
			out = append(out, t)
		}
	}
	return out
}

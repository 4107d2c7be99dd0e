package stmf

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/costar-project/costar/scsi"
)

// Transport is what a port provider supplies with every task: the way to
// pull the initiator's data and to deliver the outcome. It is COMSTAR's
// stmf_data_buf_t/xfer_data/send_status pair reduced to two calls.
type Transport interface {
	// ReceiveData blocks until the command's Data-Out has arrived in full
	// (up to the expected data transfer length) and returns it. The buffer
	// stays valid until Deliver or Drop. It returns an error when the
	// connection fails or ctx is cancelled.
	ReceiveData(ctx context.Context) ([]byte, error)
	// Deliver sends data (for reads), status and sense. Called at most once.
	Deliver(r *Result)
	// Drop ends a task without any response to the initiator (it was
	// aborted). Called at most once, instead of Deliver.
	Drop()
}

// ReadyTransport is a Transport that can hand over a write's Data-Out
// without waiting when all of it is already in (iSCSI immediate and
// unsolicited data): Task.Data then makes no context for the wait, which
// is three allocations per write.
type ReadyTransport interface {
	Transport
	// ReadyData returns what ReceiveData would when it would return at
	// once (ready); not ready says nothing, ReceiveData then decides.
	ReadyData() (data []byte, ready bool, err error)
}

// Result is the outcome of a task.
type Result struct {
	Status scsi.Status
	Sense  []byte // encoded sense data, with CHECK CONDITION
	Data   []byte // Data-In for read-direction commands
	// TransferLen is the number of bytes the CDB itself asked to move (for
	// reads, normally len(Data)). The transport compares it with the
	// expected data transfer length to report residual over/underflow.
	TransferLen uint32
	// Release, if set, is called once the transport no longer needs Data
	// (lets the LU return buffers to a pool).
	Release func()
}

// Task is one SCSI command travelling from a port provider to an LU.
type Task struct {
	Session     *Session
	LUN         scsi.LUN
	RawLUN      [8]byte
	CDB         []byte
	Attr        scsi.TaskAttr
	Tag         uint64 // transport's task tag (iSCSI ITT, FC OX_ID)
	Dir         scsi.DataDir
	ExpectedLen uint32 // expected data transfer length from the transport
	// Seq is the task's arrival order at its LU (set by Submit), for LUs
	// that keep overlapping writes in arrival order.
	Seq uint64
	// Inline, set by the transport, allows Submit to run the task in the
	// caller's goroutine when the LU calls the command quick (QuickChecker).
	// A transport sets it when nothing else waits on that goroutine (no
	// other command in flight, no input pending) and all Data-Out is in:
	// the hand-off to a worker and back is then pure latency.
	Inline bool
	// InlineNoWait, set by the transport with Inline, says its goroutine
	// has other work (commands in flight, input pending): the task may run
	// there only if it never blocks. The LU's Quick accepts only commands
	// it can finish without waiting (reads the page cache answers, see
	// backing.NoWaitReader) and hands the rest to a goroutine of its own.
	// Cleared when the task goes to a worker.
	InlineNoWait bool
	// Access is the access state of the target port group the task came
	// through (SPC-4 5.15.2), set by Submit: the LU decides which commands
	// a port in a standby, unavailable or transitioning state may run.
	Access ALUAState
	// LUPrivate is the LU provider's own per-task state, set in Admit and
	// read in Execute (COMSTAR's task_lu_private). stmf never touches it.
	LUPrivate any
	// LUDecoded is the LU provider's decoding of the CDB, set in Admit (or
	// Execute) and read until the task completes. stmf never touches it.
	LUDecoded Decoded
	// Throttle is the task's cost against the LU's QoS limits, set by the
	// LU at Admit; the zero value moves no data and is never held.
	Throttle Throttle

	// The task's context is made on first use (most reads never ask for
	// it): parent is the session's, ctx and cancel are guarded by cmu, and
	// ended records that the task was aborted or completed, so a context
	// asked for afterwards is born cancelled.
	parent    context.Context
	cmu       sync.Mutex
	ctx       context.Context
	cancel    context.CancelFunc
	ended     bool
	transport Transport
	mu        sync.Mutex // orders Complete against markAborted
	finished  atomic.Bool
	aborted   atomic.Bool
	tracked   bool // in its session's task set: Complete tells the session
	reg       *luReg
	qosHeld   atomic.Pointer[qosGate] // the gate the task waited in, for aborts

	// Counting (begin, routed, count): set by Submit, so a task an LU
	// runs without a session counts nowhere.
	start   time.Time
	kind    Kind
	sessC   *counters
	luC     *counters
	dataOut uint32 // Data-Out bytes received

	good Result // the result Good hands out
}

// NewTask builds a task for Session.Submit. tr must not be nil.
func NewTask(tr Transport) *Task { return &Task{transport: tr} }

// InitTask prepares a zero Task that lives inside a transport's own
// command struct, so a command costs one allocation instead of two.
func InitTask(t *Task, tr Transport) { t.transport = tr }

// Context is cancelled when the task is aborted or its session ends;
// long-running work should watch it.
func (t *Task) Context() context.Context {
	t.cmu.Lock()
	defer t.cmu.Unlock()
	if t.ctx == nil {
		if t.parent == nil {
			return context.Background()
		}
		t.ctx, t.cancel = context.WithCancel(t.parent)
		if t.ended {
			t.cancel()
		}
	}
	return t.ctx
}

// endContext cancels the task's context, now or when it is made.
func (t *Task) endContext() {
	t.cmu.Lock()
	t.ended = true
	cancel := t.cancel
	t.cmu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// Aborted reports whether a task management function aborted the task.
func (t *Task) Aborted() bool { return t.aborted.Load() }

// Data returns the initiator's Data-Out for a write-direction task.
func (t *Task) Data() ([]byte, error) {
	if rt, ok := t.transport.(ReadyTransport); ok {
		if b, ready, err := rt.ReadyData(); ready {
			if err == nil {
				t.dataOut = uint32(len(b))
			}
			return b, err
		}
	}
	b, err := t.transport.ReceiveData(t.Context())
	if err == nil {
		t.dataOut = uint32(len(b))
	}
	return b, err
}

// begin starts the task's clock, classifies it and counts it as started
// on its session.
func (t *Task) begin(c *counters) {
	t.start = time.Now()
	t.kind = KindOther
	t.sessC = c
	c.started.Add(1)
}

// SetKind classes the task for the counters. The LU calls it from its
// command table (in Admit), so adding a command touches one table row.
func (t *Task) SetKind(k Kind) {
	if k < NumKinds {
		t.kind = k
	}
}

// routed counts the task as started on the LU its LUN maps to (none: nil).
func (t *Task) routed(reg *luReg) {
	if reg == nil {
		return
	}
	t.luC = &reg.stats
	t.luC.started.Add(1)
}

// count records the finished task on its session's and LU's counters (a
// port sums its sessions). Complete calls it before the response leaves,
// so the counters include every response an initiator has seen.
func (t *Task) count(r *Result, aborted bool) {
	if t.sessC == nil && t.luC == nil {
		return
	}
	d := completion{kind: t.kind, latency: time.Since(t.start), status: stAborted}
	d.bucket = latencyBucket(d.latency)
	if !aborted {
		d.status = statusIndex(r.Status)
		switch r.Status {
		case scsi.StatusCheckCondition:
			d.senseKey, d.hasKey = senseKey(r.Sense)
		case scsi.StatusGood, scsi.StatusConditionMet:
			d.read = uint64(min(uint32(len(r.Data)), t.ExpectedLen))
			d.written = uint64(t.dataOut)
		}
	}
	if t.sessC != nil {
		t.sessC.add(&d)
	}
	if t.luC != nil {
		t.luC.add(&d)
	}
}

// Complete finishes the task with r. An aborted task's result is dropped:
// SAM requires that an aborted task never completes to the initiator.
func (t *Task) Complete(r *Result) {
	if !t.finished.CompareAndSwap(false, true) {
		if r.Release != nil {
			r.Release()
		}
		return
	}
	if t.tracked {
		// Forget the tag before the response can reach the initiator, so a
		// QUERY TASK sent after it never finds the finished task.
		t.Session.forgetTag(t)
	}
	t.mu.Lock()
	aborted := t.aborted.Load()
	t.count(r, aborted)
	if aborted {
		if r.Release != nil {
			r.Release()
		}
		t.transport.Drop()
	} else {
		// Deliver only queues the response, so holding mu here is short.
		t.transport.Deliver(r)
	}
	t.mu.Unlock()
	if t.tracked {
		t.Session.taskDone(t)
	}
	t.endContext()
}

// Good returns a GOOD result that lives in the task, so the READ and
// WRITE paths complete without allocating one. The task owns a single
// such result: an LU asks for it once, when the command has succeeded,
// and returns or completes with it.
func (t *Task) Good(data []byte, transferLen uint32, release func()) *Result {
	t.good = Result{Status: scsi.StatusGood, Data: data, TransferLen: transferLen, Release: release}
	return &t.good
}

// CompleteStatus finishes the task with a status and no data.
func (t *Task) CompleteStatus(s scsi.Status) { t.Complete(&Result{Status: s}) }

// CompleteSense finishes the task with CHECK CONDITION and the given sense.
func (t *Task) CompleteSense(s *scsi.Sense) {
	t.Complete(&Result{Status: scsi.StatusCheckCondition, Sense: s.Bytes()})
}

// CompleteData finishes a read-direction task with GOOD and data.
func (t *Task) CompleteData(data []byte, release func()) {
	t.Complete(&Result{Status: scsi.StatusGood, Data: data, TransferLen: uint32(len(data)), Release: release})
}

package stmf

import (
	"sync/atomic"
	"time"

	"github.com/costar-project/costar/scsi"
)

// Kind is the class of a command in the counters.
type Kind uint8

// The LU decides a task's kind from its command table (Task.SetKind);
// a task no LU classed is KindOther.
const (
	KindOther Kind = iota // everything else
	KindRead              // READ(6/10/12/16)
	KindWrite             // WRITE, WRITE AND VERIFY, WRITE SAME, ORWRITE, WRITE ATOMIC
	KindUnmap             // UNMAP
	KindATS               // COMPARE AND WRITE
	KindXCopy             // EXTENDED COPY
	KindFlush             // SYNCHRONIZE CACHE(10/16)
	NumKinds
)

func (k Kind) String() string {
	switch k {
	case KindRead:
		return "read"
	case KindWrite:
		return "write"
	case KindUnmap:
		return "unmap"
	case KindATS:
		return "ats"
	case KindXCopy:
		return "xcopy"
	case KindFlush:
		return "flush"
	}
	return "other"
}

// NumLatencyBuckets is the number of latency histogram buckets: one per
// bound of LatencyBounds, and a last one for anything slower.
const NumLatencyBuckets = len(latencyBounds) + 1

// latencyBounds are the inclusive upper bounds of the latency buckets,
// 1-2-5 log-spaced from 10 µs to 10 s. Read-only.
var latencyBounds = [...]time.Duration{
	10 * time.Microsecond, 20 * time.Microsecond, 50 * time.Microsecond,
	100 * time.Microsecond, 200 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second,
	10 * time.Second,
}

// LatencyBounds returns the inclusive upper bound of each latency bucket
// but the last (Prometheus's "le" labels).
func LatencyBounds() [NumLatencyBuckets - 1]time.Duration { return latencyBounds }

func latencyBucket(d time.Duration) int {
	for i, b := range latencyBounds {
		if d <= b {
			return i
		}
	}
	return len(latencyBounds)
}

// Statuses counted apart from GOOD, as indexes of counters.status.
const (
	stCheckCondition = iota
	stReservationConflict
	stBusy
	stTaskSetFull
	stAborted // TASK ABORTED, or dropped because a TMF aborted the task
	numStatuses
)

func statusIndex(s scsi.Status) int {
	switch s {
	case scsi.StatusCheckCondition:
		return stCheckCondition
	case scsi.StatusReservationConflict:
		return stReservationConflict
	case scsi.StatusBusy:
		return stBusy
	case scsi.StatusTaskSetFull:
		return stTaskSetFull
	case scsi.StatusTaskAborted:
		return stAborted
	}
	return -1
}

// senseKey reads the sense key from fixed or descriptor sense data.
func senseKey(b []byte) (scsi.SenseKey, bool) {
	if len(b) < 3 {
		return 0, false
	}
	switch b[0] & 0x7f {
	case 0x70, 0x71:
		return scsi.SenseKey(b[2] & 0x0f), true
	case 0x72, 0x73:
		return scsi.SenseKey(b[1] & 0x0f), true
	}
	return 0, false
}

// counters are one LU's or one session's task counters. The command path
// only adds to them atomically; Snapshot reads them. Commands in flight
// are started minus finished, so starting a task costs one add.
type counters struct {
	started      atomic.Uint64
	cmds         [NumKinds]atomic.Uint64
	bytesRead    atomic.Uint64
	bytesWritten atomic.Uint64
	status       [numStatuses]atomic.Uint64
	senseKeys    [16]atomic.Uint64
	miscompares  atomic.Uint64 // COMPARE AND WRITE answered MISCOMPARE
	// Latency by kind, so read, write and flush service times stay apart.
	latency    [NumKinds][NumLatencyBuckets]atomic.Uint64
	latencySum [NumKinds]atomic.Int64 // nanoseconds
}

// completion is what the counters learn about one finished task.
type completion struct {
	kind     Kind
	bucket   int
	latency  time.Duration
	status   int // statusIndex, or -1
	senseKey scsi.SenseKey
	hasKey   bool
	read     uint64
	written  uint64
}

func (c *counters) add(d *completion) {
	c.cmds[d.kind].Add(1)
	c.latency[d.kind][d.bucket].Add(1)
	c.latencySum[d.kind].Add(int64(d.latency))
	if d.read != 0 {
		c.bytesRead.Add(d.read)
	}
	if d.written != 0 {
		c.bytesWritten.Add(d.written)
	}
	if d.status >= 0 {
		c.status[d.status].Add(1)
	}
	if d.hasKey {
		c.senseKeys[d.senseKey&0x0f].Add(1)
		if d.kind == KindATS && d.senseKey == scsi.KeyMiscompare {
			c.miscompares.Add(1)
		}
	}
}

// snapshot reads the counters. Finished commands are read before started
// ones, so InFlight is never negative.
func (c *counters) snapshot() Snapshot {
	var s Snapshot
	var done uint64
	for i := range c.cmds {
		s.Commands[i] = c.cmds[i].Load()
		done += s.Commands[i]
	}
	if started := c.started.Load(); started > done {
		s.InFlight = started - done
	}
	s.BytesRead = c.bytesRead.Load()
	s.BytesWritten = c.bytesWritten.Load()
	s.CheckCondition = c.status[stCheckCondition].Load()
	s.ReservationConflict = c.status[stReservationConflict].Load()
	s.Busy = c.status[stBusy].Load()
	s.TaskSetFull = c.status[stTaskSetFull].Load()
	s.Aborted = c.status[stAborted].Load()
	for i := range c.senseKeys {
		s.SenseKeys[i] = c.senseKeys[i].Load()
	}
	s.ATSMiscompares = c.miscompares.Load()
	for k := range c.latency {
		for i := range c.latency[k] {
			s.Latency[k].Buckets[i] = c.latency[k][i].Load()
		}
		s.Latency[k].Sum = time.Duration(c.latencySum[k].Load())
	}
	return s
}

package stmf

import (
	"sort"
	"time"
)

// Snapshot is a point-in-time copy of task counters (for the metrics
// exporter and stmfadm list-stats). Every finished task counts once in
// Commands and in Latency; bytes count only for tasks that completed GOOD.
type Snapshot struct {
	Commands     [NumKinds]uint64 // finished tasks by Kind
	InFlight     uint64           // submitted, not yet finished
	BytesRead    uint64           // Data-In sent (clipped to the expected length)
	BytesWritten uint64           // Data-Out received

	CheckCondition      uint64
	ReservationConflict uint64
	Busy                uint64
	TaskSetFull         uint64
	Aborted             uint64 // TASK ABORTED, or dropped after an abort

	SenseKeys      [16]uint64 // CHECK CONDITIONs by sense key
	ATSMiscompares uint64     // COMPARE AND WRITE answered MISCOMPARE (also in SenseKeys)

	Latency [NumKinds]Histogram // from Submit to completion, by Kind
}

// AllLatency is the latency histogram of every kind together.
func (s *Snapshot) AllLatency() Histogram {
	var h Histogram
	for k := range s.Latency {
		h.add(&s.Latency[k])
	}
	return h
}

// Histogram counts latencies in the buckets of LatencyBounds.
type Histogram struct {
	Buckets [NumLatencyBuckets]uint64 // per bucket, not cumulative
	Sum     time.Duration
}

func (h *Histogram) add(o *Histogram) {
	for i := range h.Buckets {
		h.Buckets[i] += o.Buckets[i]
	}
	h.Sum += o.Sum
}

// Count is the number of latencies observed.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, b := range h.Buckets {
		n += b
	}
	return n
}

// Total is the number of finished tasks.
func (s *Snapshot) Total() uint64 {
	var n uint64
	for _, c := range s.Commands {
		n += c
	}
	return n
}

// add sums o into s.
func (s *Snapshot) add(o *Snapshot) {
	for i := range s.Commands {
		s.Commands[i] += o.Commands[i]
	}
	s.InFlight += o.InFlight
	s.BytesRead += o.BytesRead
	s.BytesWritten += o.BytesWritten
	s.CheckCondition += o.CheckCondition
	s.ReservationConflict += o.ReservationConflict
	s.Busy += o.Busy
	s.TaskSetFull += o.TaskSetFull
	s.Aborted += o.Aborted
	for i := range s.SenseKeys {
		s.SenseKeys[i] += o.SenseKeys[i]
	}
	s.ATSMiscompares += o.ATSMiscompares
	for k := range s.Latency {
		s.Latency[k].add(&o.Latency[k])
	}
}

// SessionStats are one open session's counters.
type SessionStats struct {
	ID            uint64 // unique within the framework, in opening order
	InitiatorPort string
	TargetPort    string
	Snapshot
}

// Stats holds every counter the framework keeps.
type Stats struct {
	LUs      map[GUID]Snapshot   // registered LUs; counts restart when an LU is registered again
	Ports    map[string]Snapshot // by target port name; kept while the framework lives
	Sessions []SessionStats      // open sessions (and closing ones until their last task ends), by ID
}

// sessionStats are one session's counters and the names Stats gives them.
type sessionStats struct {
	id            uint64
	initiatorPort string
	targetPort    string
	c             counters
}

// portStats sums a target port's sessions: the command path counts only
// per session and per LU, so a port costs nothing per command.
type portStats struct {
	retired Snapshot                   // sessions that have closed
	open    map[*sessionStats]struct{} // sessions still counting
}

// openSessionStatsLocked starts a session's counters. fw.mu is held.
func (fw *Framework) openSessionStatsLocked(initiatorPort, targetPort string) *sessionStats {
	fw.nextSessionID++
	ss := &sessionStats{id: fw.nextSessionID, initiatorPort: initiatorPort, targetPort: targetPort}
	ps := fw.portStats[targetPort]
	if ps == nil {
		ps = &portStats{open: map[*sessionStats]struct{}{}}
		fw.portStats[targetPort] = ps
	}
	ps.open[ss] = struct{}{}
	return ss
}

// retireSessionStats folds a closed session's counters into its port's,
// once its last task has finished.
func (fw *Framework) retireSessionStats(ss *sessionStats) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	ps := fw.portStats[ss.targetPort]
	if _, ok := ps.open[ss]; !ok {
		return
	}
	delete(ps.open, ss)
	snap := ss.c.snapshot()
	ps.retired.add(&snap)
}

// Stats returns a snapshot of the per-LU, per-target-port and per-session
// task counters.
func (fw *Framework) Stats() Stats {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	st := Stats{
		LUs:   make(map[GUID]Snapshot, len(fw.lus)),
		Ports: make(map[string]Snapshot, len(fw.portStats)),
	}
	for g, reg := range fw.lus {
		st.LUs[g] = reg.stats.snapshot()
	}
	for name := range fw.ports {
		st.Ports[name] = Snapshot{}
	}
	for name, ps := range fw.portStats {
		sum := ps.retired
		for ss := range ps.open {
			snap := ss.c.snapshot()
			sum.add(&snap)
			st.Sessions = append(st.Sessions, SessionStats{
				ID: ss.id, InitiatorPort: ss.initiatorPort, TargetPort: ss.targetPort, Snapshot: snap,
			})
		}
		st.Ports[name] = sum
	}
	sort.Slice(st.Sessions, func(i, j int) bool { return st.Sessions[i].ID < st.Sessions[j].ID })
	return st
}

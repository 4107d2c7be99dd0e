package main

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// stats are the load's counters.
type stats struct {
	reads, writes, writeBlocks, syncs  atomic.Int64
	blocksVerified, unknownWrites      atomic.Int64
	unitAttentions, busy, taskAborted  atomic.Int64
	timeouts, reconnects, dialFailures atomic.Int64
	lockMisses, cmdErrors, cleared     atomic.Int64
	lost, mismatches                   atomic.Int64

	mu       sync.Mutex
	examples []string // the first few failures, for the report
}

const maxExamples = 20

// note counts an event on c and keeps its description among the first
// maxExamples.
func (s *stats) note(c *atomic.Int64, format string, args ...any) {
	c.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.examples) < maxExamples {
		s.examples = append(s.examples, fmt.Sprintf(format, args...))
	}
}

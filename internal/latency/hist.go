// Package latency is the log-linear latency histogram the load tools
// (costar-loadgen, costar-soak) share: 32 sub-buckets per power of two of
// nanoseconds, so a percentile is within ~3 % of the true value, in fixed
// memory however long the run, updated lock-free.
package latency

import (
	"math/bits"
	"sync/atomic"
	"time"
)

const sub = 32

// Hist collects latencies; the zero value is ready. Add is safe from many
// goroutines.
type Hist struct {
	counts [64 * sub]atomic.Uint64
	max    atomic.Uint64
}

func bucketOf(ns uint64) int {
	if ns < sub {
		return int(ns)
	}
	e := bits.Len64(ns) - 6 // ns >> e lies in [32, 64)
	return (e+1)*sub + int(ns>>e) - sub
}

// lowOf is the smallest value of bucket i.
func lowOf(i int) uint64 {
	if i < sub {
		return uint64(i)
	}
	e := i/sub - 1
	return uint64(i%sub+sub) << e
}

// Add records one latency (negative counts as 0).
func (h *Hist) Add(d time.Duration) {
	ns := uint64(max(d.Nanoseconds(), 0))
	h.counts[bucketOf(ns)].Add(1)
	for {
		m := h.max.Load()
		if ns <= m || h.max.CompareAndSwap(m, ns) {
			return
		}
	}
}

// Summary is a point-in-time merge of histograms.
type Summary struct {
	counts [64 * sub]uint64
	n      uint64
	max    uint64
}

// Merge adds h's counts as they are now.
func (s *Summary) Merge(h *Hist) {
	for i := range h.counts {
		c := h.counts[i].Load()
		s.counts[i] += c
		s.n += c
	}
	s.max = max(s.max, h.max.Load())
}

// Count is the number of latencies merged.
func (s *Summary) Count() uint64 { return s.n }

// Max is the largest latency merged.
func (s *Summary) Max() time.Duration { return time.Duration(s.max) }

// Percentile is the nearest-rank percentile p (0..100), as the lower
// bound of its bucket (the maximum for p = 100); 0 when empty.
func (s *Summary) Percentile(p float64) time.Duration {
	if s.n == 0 {
		return 0
	}
	rank := uint64(p/100*float64(s.n) + 0.999999)
	rank = min(max(rank, 1), s.n)
	var seen uint64
	for i, c := range s.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(lowOf(i), s.max))
		}
	}
	return time.Duration(s.max)
}

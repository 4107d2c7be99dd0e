package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// hist is a log-linear latency histogram in nanoseconds: 32 sub-buckets
// per power of two (a percentile is within ~3 % of the true value) in
// fixed memory, updated lock-free by the workers of one session.
type hist struct {
	counts [64 * histSub]atomic.Uint64
	max    atomic.Uint64
}

const histSub = 32

func bucketOf(ns uint64) int {
	if ns < histSub {
		return int(ns)
	}
	e := bits.Len64(ns) - 6 // ns >> e lies in [32, 64)
	return (e+1)*histSub + int(ns>>e) - histSub
}

// lowOf is the smallest value of bucket i.
func lowOf(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e := i/histSub - 1
	return uint64(i%histSub+histSub) << e
}

func (h *hist) add(d time.Duration) {
	ns := uint64(max(d.Nanoseconds(), 0))
	h.counts[bucketOf(ns)].Add(1)
	for {
		m := h.max.Load()
		if ns <= m || h.max.CompareAndSwap(m, ns) {
			return
		}
	}
}

// summary merges histograms into counts and a maximum.
type summary struct {
	counts [64 * histSub]uint64
	n      uint64
	max    uint64
}

func (s *summary) merge(h *hist) {
	for i := range h.counts {
		c := h.counts[i].Load()
		s.counts[i] += c
		s.n += c
	}
	s.max = max(s.max, h.max.Load())
}

// percentile is the nearest-rank percentile p (0..100), as the lower
// bound of its bucket (the maximum for p = 100).
func (s *summary) percentile(p float64) time.Duration {
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

package main

import (
	"math/bits"
	"sync"
	"time"
)

// hist is a log-linear latency histogram in microseconds: 32 sub-buckets
// per power of two, so a reported percentile is within ~3 % of the true
// value, in fixed memory however long the run.
type hist struct {
	mu     sync.Mutex
	counts [64 * histSub]uint64
	n      uint64
	max    uint64
}

const histSub = 32

func bucketOf(us uint64) int {
	if us < histSub {
		return int(us)
	}
	e := bits.Len64(us) - 6 // us >> e lies in [32, 64)
	return (e+1)*histSub + int(us>>e) - histSub
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
	us := uint64(max(d.Microseconds(), 0))
	h.mu.Lock()
	h.counts[bucketOf(us)]++
	h.n++
	h.max = max(h.max, us)
	h.mu.Unlock()
}

// merge adds o's counts into h.
func (h *hist) merge(o *hist) {
	o.mu.Lock()
	defer o.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the value below which a fraction q of samples lie.
func (h *hist) quantile(q float64) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return 0
	}
	rank := uint64(q * float64(h.n))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen > rank {
			return min(lowOf(i), h.max)
		}
	}
	return h.max
}

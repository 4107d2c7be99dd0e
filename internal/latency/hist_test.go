package latency

import (
	"sync"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int // samples 1..n µs
		p    float64
		want time.Duration
	}{
		{"p50 of 1000", 1000, 50, 500 * time.Microsecond},
		{"p99 of 1000", 1000, 99, 990 * time.Microsecond},
		{"max of 1000", 1000, 100, time.Millisecond},
		{"p50 of 10000", 10000, 50, 5 * time.Millisecond},
		{"p99.9 of 10000", 10000, 99.9, 9990 * time.Microsecond},
	} {
		var h Hist
		for i := 1; i <= tc.n; i++ {
			h.Add(time.Duration(i) * time.Microsecond)
		}
		var s Summary
		s.Merge(&h)
		if got := s.Percentile(tc.p); got > tc.want || float64(got) < 0.96*float64(tc.want) {
			t.Errorf("%s: %v, want within 4 %% below %v", tc.name, got, tc.want)
		}
		if s.Count() != uint64(tc.n) || s.Max() != time.Duration(tc.n)*time.Microsecond {
			t.Errorf("%s: count %d max %v", tc.name, s.Count(), s.Max())
		}
	}
	var empty Summary
	if empty.Percentile(99) != 0 {
		t.Error("empty histogram: want 0")
	}
}

func TestMergeAndConcurrentAdd(t *testing.T) {
	var a, b Hist
	var wg sync.WaitGroup
	for _, h := range []*Hist{&a, &a, &b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				h.Add(time.Duration(i) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	var s Summary
	s.Merge(&a)
	s.Merge(&b)
	if s.Count() != 3000 || s.Max() != 999*time.Microsecond {
		t.Errorf("count %d max %v", s.Count(), s.Max())
	}
}

func TestBuckets(t *testing.T) {
	prev := -1
	for ns := uint64(0); ns < 1<<40; ns = ns*9/8 + 1 {
		b := bucketOf(ns)
		if b < prev || lowOf(b) > ns || float64(ns-lowOf(b)) > 0.04*float64(ns) {
			t.Fatalf("ns %d: bucket %d (low %d) after %d", ns, b, lowOf(b), prev)
		}
		prev = b
	}
}
